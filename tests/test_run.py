"""DenoisePG runs wherever SB3 users run TD3 (adapted from SB3's test_run, test_spaces, test_her, test_callbacks)."""

import glob
import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv, FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from sb3_denoise_pg import DenoisePG


@pytest.mark.parametrize("action_noise", [None, NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))])
@pytest.mark.parametrize("train_freq", [4, (1, "episode")])
def test_run(action_noise, train_freq, small):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", action_noise=action_noise, train_freq=train_freq, seed=0, **small)
    assert model.learn(total_timesteps=300) is model


def test_vec_env_with_action_noise_and_all_gradient_steps(small):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1))
    from stable_baselines3.common.noise import VectorizedActionNoise

    model = DenoisePG("MlpPolicy", env, action_noise=VectorizedActionNoise(noise, 2), gradient_steps=-1, seed=0, **small)
    model.learn(total_timesteps=300)
    # gradient_steps=-1: one update per env step collected (2 envs per step)
    assert model._n_updates == pytest.approx(300 - small["learning_starts"], abs=4)


@pytest.mark.parametrize(
    "kwargs", [dict(n_steps=3), dict(optimize_memory_usage=True, replay_buffer_kwargs=dict(handle_timeout_termination=False))]
)
def test_replay_buffer_variants(kwargs, small):
    DenoisePG("MlpPolicy", "Pendulum-v1", buffer_size=1000, seed=0, **small, **kwargs).learn(200)


def test_cnn_policy_on_images():
    env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=False)
    model = DenoisePG(
        "CnnPolicy",
        env,
        buffer_size=300,
        learning_starts=50,
        batch_size=16,
        n_noise_samples=2,
        policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)),
        seed=0,
    )
    model.learn(120)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_multi_input_policy_on_dict_observations(small):
    env = SimpleMultiObsEnv(random_start=True, discrete_actions=False)
    model = DenoisePG("MultiInputPolicy", env, buffer_size=500, seed=0, **small)
    model.learn(90)  # 40 updates through the image and vector extractors
    assert model._n_updates == 40
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        DenoisePG("MlpPolicy", env)


def test_her_with_goal_env():
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    model = DenoisePG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        buffer_size=1000,
        learning_starts=20,
        batch_size=16,
        n_noise_samples=2,
        policy_kwargs=dict(net_arch=[32]),
        seed=0,
    )
    model.learn(150)
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    assert model._n_updates > 0


class _CountingCallback(BaseCallback):
    def __init__(self):
        super().__init__()
        self.n_calls_seen = 0
        self.ended = False

    def _on_step(self) -> bool:
        self.n_calls_seen += 1
        return True

    def _on_training_end(self) -> None:
        self.ended = True


def test_callbacks_and_progress_bar(tmp_path, small):
    counting = _CountingCallback()
    eval_env = gym.make("Pendulum-v1")
    callbacks = [
        counting,
        CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"), name_prefix="dpg"),
        EvalCallback(eval_env, eval_freq=100, n_eval_episodes=1, log_path=str(tmp_path / "eval"), warn=False),
    ]
    DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **small).learn(200, callback=callbacks, progress_bar=True)
    assert counting.n_calls_seen == 200 and counting.ended
    assert len(glob.glob(str(tmp_path / "ckpt" / "dpg_*_steps.zip"))) == 2
    assert os.path.isfile(tmp_path / "eval" / "evaluations.npz")


def test_stop_training_callback(small):
    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps < 70

    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **small).learn(500, callback=Stop())
    assert model.num_timesteps == 70


def test_tensorboard_keys_under_train(tmp_path, small):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, tensorboard_log=str(tmp_path), **small)
    model.learn(400, log_interval=1)
    (run_dir,) = glob.glob(str(tmp_path / "DenoisePG_1"))
    tags = set(EventAccumulator(run_dir).Reload().Tags()["scalars"])
    expected = {
        "train/actor_loss",
        "train/critic_loss",
        "train/denoiser_loss",
        "train/action_gradient_norm",
        "train/denoiser_mse_cond",
        "train/denoiser_mse_uncond",
        "train/cos_critic_gradient",
        "train/actor_saturation",
        "train/learning_rate",
    }
    assert expected <= tags, expected - tags


class _Float64ActionEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, shape=(2,), dtype=np.float32)
    action_space = spaces.Box(-1, 1, shape=(2,), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert action.dtype == np.float64
        self._t += 1
        return self.observation_space.sample(), -float(np.sum(action**2)), False, self._t >= 20, {}


def test_float64_action_space(small):
    model = DenoisePG("MlpPolicy", _Float64ActionEnv(), seed=0, **small).learn(150)
    action, _ = model.predict(np.zeros(2, dtype=np.float32))
    assert action.dtype == np.float64


def test_asymmetric_action_bounds_are_respected(small):
    env = gym.make("MountainCarContinuous-v0")
    model = DenoisePG("MlpPolicy", env, seed=0, **small).learn(120)
    actions = np.array([model.predict(env.observation_space.sample())[0] for _ in range(20)])
    assert np.all(actions >= env.action_space.low) and np.all(actions <= env.action_space.high)


def test_predict_on_vectorized_observations(small):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, **small)
    actions, _ = model.predict(np.zeros((5, 3), dtype=np.float32), deterministic=True)
    assert actions.shape == (5, 1)
    assert th.is_tensor(model.policy.actor(th.zeros(1, 3)))
