"""The actor's options: the regression head G_omega and the pre-activation penalty."""

import gymnasium as gym
import torch as th

from sb3_denoise_pg import DenoisePG

# The regression head fits E[G | s, a~], where the control variate has no zero mean: it runs without it
REGRESSION = dict(actor_gradient="regression", critic_control_variate=None)


def test_regression_head_trains_saves_and_loads(tmp_path, small):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **REGRESSION, **small)
    model.learn(200)
    assert model.gradient_head is model.policy.gradient_head is not None
    assert model.gradient_head.optimizer.state, "the regression head was never stepped"
    assert "gradient_head.optimizer" in model._get_torch_save_params()[0]
    assert "train/gradient_head_loss" in model.logger.name_to_value

    model.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.actor_gradient == "regression" and loaded.gradient_head is loaded.policy.gradient_head
    for key, value in model.gradient_head.state_dict().items():
        th.testing.assert_close(loaded.gradient_head.state_dict()[key], value, rtol=0, atol=0)
    saved_state = model.gradient_head.optimizer.state_dict()["state"]
    for index, state in loaded.gradient_head.optimizer.state_dict()["state"].items():
        th.testing.assert_close(state["exp_avg"], saved_state[index]["exp_avg"], rtol=0, atol=0)
    loaded.learn(60, reset_num_timesteps=False)


def test_direct_form_has_no_regression_head(small):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **small)
    assert model.gradient_head is None
    assert not any(name.startswith("gradient_head") for name in model._get_torch_save_params()[0])


def test_actor_follows_the_regression_head_at_the_policy_action(small):
    """One regression step on the batch's estimates, then G_omega evaluated at mu(s) is the actor's gradient."""
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **REGRESSION, **small).learn(100)
    batch = model.replay_buffer.sample(32)
    estimate = model.estimate(batch)
    actions = model.actor(batch.observations)
    stats = {"gradient_head_loss": []}
    for _ in range(30):
        gradient = model._regression_gradient(batch, estimate, actions, stats)
    with th.no_grad():
        expected = model.gradient_head(batch.observations, actions.unsqueeze(0))[0]
    th.testing.assert_close(gradient, expected)
    assert not gradient.requires_grad
    # The head fits the estimates it is given
    assert stats["gradient_head_loss"][-1] < 0.8 * stats["gradient_head_loss"][0]


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
