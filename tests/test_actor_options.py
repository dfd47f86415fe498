"""The actor's options: the regression head G_omega, the recency window of its batch, s'-only conditioning, the
baseline's reduction of the critics, the pre-activation penalty and an annealed sigma."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.utils import LinearSchedule

from sb3_denoise_pg import DenoisePG

SMALL = dict(policy_kwargs=dict(net_arch=[32, 32]), learning_starts=50, batch_size=32, n_noise_samples=4)


def test_regression_head_trains_saves_and_loads(tmp_path):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_gradient="regression", **SMALL)
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


def test_direct_form_has_no_regression_head():
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    assert model.gradient_head is None
    assert not any(name.startswith("gradient_head") for name in model._get_torch_save_params()[0])


def test_actor_follows_the_regression_head_at_the_policy_action():
    """One regression step on the batch's estimates, then G_omega evaluated at mu(s) is the actor's gradient."""
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_gradient="regression", **SMALL).learn(100)
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


def _recorded_indices(model: DenoisePG, n_batches: int = 20) -> np.ndarray:
    captured = []
    get_samples = model.replay_buffer._get_samples

    def spy(batch_inds, env=None):
        captured.append(np.asarray(batch_inds).copy())
        return get_samples(batch_inds, env=env)

    model.replay_buffer._get_samples = spy
    for _ in range(n_batches):
        model._sample_recent(64)
    return np.concatenate(captured)


def test_actor_batch_window_samples_the_most_recent_transitions():
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_batch_window=30, **SMALL).learn(120)
    indices = _recorded_indices(model)
    assert set(indices) == set(range(120 - 30, 120))


@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_actor_batch_window_wraps_around_a_full_buffer(optimize_memory_usage):
    model = DenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        buffer_size=100,
        actor_batch_window=500,
        optimize_memory_usage=optimize_memory_usage,
        replay_buffer_kwargs=dict(handle_timeout_termination=not optimize_memory_usage),
        **SMALL,
    ).learn(230)
    buffer = model.replay_buffer
    assert buffer.full and buffer.pos == 30
    indices = _recorded_indices(model, n_batches=50)
    # Every slot but the one at pos (the oldest, and no valid transition with optimize_memory_usage)
    assert set(indices) == set(range(100)) - {30}


def test_actor_batch_window_trains():
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_batch_window=40, **SMALL).learn(150)
    assert model._n_updates > 0


def test_actor_batch_window_refuses_her():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.raises(ValueError, match="HerReplayBuffer"):
        DenoisePG("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, actor_batch_window=100)


@pytest.mark.parametrize("condition_on_reward", [True, False])
def test_outcome_without_reward(condition_on_reward):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, condition_on_reward=condition_on_reward, **SMALL).learn(100)
    batch = model.replay_buffer.sample(32)
    other = batch._replace(rewards=batch.rewards + 10.0)
    outputs = []
    for data in (batch, other):
        th.manual_seed(0)
        outputs.append(model.estimate(data).denoised_cond)
    assert th.equal(outputs[0], outputs[1]) != condition_on_reward


@pytest.mark.parametrize("reduction", ["mean", "min", "first"])
def test_baseline_reductions(reduction):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, baseline_reduction=reduction, **SMALL)
    obs = th.randn(5, 3)
    actions = th.rand(2, 5, 1) * 2 - 1
    with th.no_grad():
        q_values = th.stack([th.cat(model.critic(obs, draw), dim=1) for draw in actions]).reshape(10, 2)
        expected = {"mean": q_values.mean(1), "min": q_values.min(1).values, "first": q_values[:, 0]}[reduction]
        baselines = model._baseline_values(model.policy.critic_features(obs), actions)
    th.testing.assert_close(baselines, expected.unsqueeze(1))


def test_preactivation_penalty_pulls_a_saturated_actor_back():
    """A heavy penalty outweighs the (unit-RMS) estimate: the actor's pre-tanh outputs shrink from saturation."""

    def saturated(penalty: float) -> DenoisePG:
        model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, actor_preactivation_penalty=penalty, **SMALL).learn(60)
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


def test_annealed_sigma_follows_its_schedule_and_survives_save_load(tmp_path):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=LinearSchedule(0.4, 0.1, 1.0), **SMALL)
    assert model.current_sigma == pytest.approx(0.4)
    model.learn(200)
    # The last train() ran at progress remaining ~1/200: sigma ~0.1
    assert model.logger.name_to_value["train/denoiser_sigma"] == pytest.approx(0.1, abs=0.01)
    model.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip")
    assert loaded.denoiser_sigma(0.5) == pytest.approx(0.25)


def test_several_sigma_levels_are_drawn_per_transition_and_survive_save_load(tmp_path):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=[0.1, 0.4], **SMALL)
    assert model.denoiser_sigma == (0.1, 0.4) and model.current_sigma == pytest.approx(0.25)
    sigmas = model.sample_sigma(1000)
    assert sigmas.shape == (1000, 1) and sorted(sigmas.unique().tolist()) == pytest.approx([0.1, 0.4])
    model.learn(200)
    assert np.isfinite(model.logger.name_to_value["train/denoiser_loss"])
    batch = model.replay_buffer.sample(16)
    estimate = model.estimate(batch)
    assert estimate.per_draw.shape == (4, 16, 1)
    # Each transition's draws share one level, so antithetic pairs stay pairs around its action
    offsets = estimate.noisy_actions - batch.actions
    th.testing.assert_close(offsets[:2], -offsets[2:])
    model.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.denoiser_sigma == (0.1, 0.4)
    loaded.learn(60, reset_num_timesteps=False)


def test_a_schedule_that_leaves_the_positive_numbers_fails_clearly():
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=LinearSchedule(0.2, -0.2, 1.0), **SMALL)
    with pytest.raises(ValueError, match="denoiser_sigma must be a finite number > 0"):
        model.learn(200)
