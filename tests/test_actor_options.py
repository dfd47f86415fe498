"""The actor's options: the pre-activation penalty."""

import torch as th

from sb3_denoise_pg import DenoisePG


def test_preactivation_penalty_pulls_a_saturated_actor_back(small):
    """A heavy penalty outweighs the (unit-RMS) estimate: the actor's pre-tanh outputs shrink from saturation."""

    def saturated(penalty: float) -> DenoisePG:
        model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_preactivation_penalty=penalty, **small).learn(60)
        with th.no_grad():
            model.actor.mu[-2].bias.fill_(4.0)  # tanh(4) = 0.9993: beyond the 0.99 of train/actor_saturation
        return model

    observations = th.as_tensor(saturated(0.0).replay_buffer.observations[:50, 0])
    for penalty, shrinks in ((0.0, False), (10.0, True)):
        model = saturated(penalty)
        before = model._actor_preactivations(observations).abs().mean().item()
        model.learn(100, reset_num_timesteps=False)
        after = model._actor_preactivations(observations).abs().mean().item()
        assert (after < before - 1.0) == shrinks, (penalty, before, after)
