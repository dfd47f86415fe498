"""Reward-free pretraining of the denoiser: what it trains, the masked reward slot, save/load, and bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv

from sb3_denoise_pg import DenoisePG


@pytest.fixture
def settings(small):
    """The shared small settings with seed 0 and DenoisePG's default n_noise_samples."""
    del small["n_noise_samples"]
    return dict(small, seed=0)


def _parameters(module: th.nn.Module) -> list[th.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[th.Tensor], b: list[th.Tensor]) -> bool:
    return all(th.equal(x, y) for x, y in zip(a, b, strict=True))


def test_pretraining_trains_the_denoiser_alone(settings):
    model = DenoisePG("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), **settings)
    actor, critic, denoiser = _parameters(model.actor), _parameters(model.critic), _parameters(model.denoiser)
    assert model.pretrain_denoiser(collect_steps=200, gradient_steps=20) is model
    assert not _same(denoiser, _parameters(model.denoiser))
    assert _same(actor, _parameters(model.actor)) and _same(critic, _parameters(model.critic))
    # Exploration steps are not the model's: no timesteps, nothing in its replay buffer
    assert model.num_timesteps == 0 and model.replay_buffer.size() == 0
    model.learn(100)  # fine-tuning afterwards
    assert model.num_timesteps == 100


def test_reward_slot_is_masked(settings):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", **settings)
    obs, next_obs = th.randn(4, 3), th.randn(4, 3)
    dones = th.zeros(4, 1)
    _, masked_a = model.denoiser.encode(obs, next_obs, th.full((4, 1), 5.0), dones, reward_known=False)
    _, masked_b = model.denoiser.encode(obs, next_obs, th.full((4, 1), -7.0), dones, reward_known=False)
    th.testing.assert_close(masked_a, masked_b)  # the denoiser cannot see the reward
    _, known = model.denoiser.encode(obs, next_obs, th.full((4, 1), 5.0), dones)
    assert th.all(known[:, -3] == 5.0) and th.all(known[:, -1] == 1.0)  # reward, then its flag
    assert th.all(masked_a[:, -3] == 0.0) and th.all(masked_a[:, -1] == 0.0)


def test_pretraining_from_a_buffer_with_rewards(settings):
    source = DenoisePG("MlpPolicy", "Pendulum-v1", **settings).learn(120)
    model = DenoisePG("MlpPolicy", "Pendulum-v1", **settings)
    denoiser = _parameters(model.denoiser)
    model.pretrain_denoiser(source.replay_buffer, gradient_steps=10, use_rewards=True)
    assert not _same(denoiser, _parameters(model.denoiser))


def test_pretraining_with_dict_observations(settings):
    model = DenoisePG("MultiInputPolicy", SimpleMultiObsEnv(random_start=True, discrete_actions=False), **settings)
    model.pretrain_denoiser(collect_steps=64, gradient_steps=5)


def test_save_load_after_pretraining(tmp_path, settings):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", **settings).pretrain_denoiser(collect_steps=100, gradient_steps=10)
    model.save(tmp_path / "model.zip")
    loaded = DenoisePG.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert _same(_parameters(model.denoiser), _parameters(loaded.denoiser))
    saved_state, loaded_state = model.denoiser.optimizer.state_dict(), loaded.denoiser.optimizer.state_dict()
    assert saved_state["state"].keys() == loaded_state["state"].keys() and saved_state["state"]
    for key, state in saved_state["state"].items():
        th.testing.assert_close(state["exp_avg"], loaded_state["state"][key]["exp_avg"])
    loaded.learn(100)


def test_bad_pretraining_input(settings):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", **settings)
    wrong_actions = ReplayBuffer(10, model.observation_space, gym.spaces.Box(-1, 1, (2,), np.float32))
    wrong_actions.add(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])
    with pytest.raises(ValueError, match=r"actions of shape \(2,\).*\(1,\)"):
        model.pretrain_denoiser(wrong_actions, gradient_steps=1)
    with pytest.raises(ValueError, match="holds no transitions"):
        model.pretrain_denoiser(ReplayBuffer(10, model.observation_space, model.action_space), gradient_steps=1)
    with pytest.raises(ValueError, match="must be a ReplayBuffer"):
        model.pretrain_denoiser(np.zeros((10, 3)), gradient_steps=1)
    with pytest.raises(ValueError, match="gradient_steps must be an integer >= 1"):
        model.pretrain_denoiser(collect_steps=10, gradient_steps=0)
    with pytest.raises(ValueError, match="collect_steps must be an integer >= 1"):
        model.pretrain_denoiser(gradient_steps=1)
    with pytest.raises(ValueError, match="either data or collect_steps"):
        model.pretrain_denoiser(model.replay_buffer, collect_steps=10)
    model.env = None
    with pytest.raises(ValueError, match="needs an env"):
        model.pretrain_denoiser(collect_steps=10)
