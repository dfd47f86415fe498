"""Bad input gets a clear error, never an assert or silent NaN weights."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete

from sb3_denoise_pg import DenoisePG


@pytest.mark.parametrize("env", [IdentityEnv(3), IdentityEnvMultiDiscrete(2), IdentityEnvMultiBinary(2)])
def test_non_box_action_spaces(env):
    with pytest.raises(ValueError, match="DenoisePG needs a continuous Box action space"):
        DenoisePG("MlpPolicy", env)


def test_discrete_env_by_name():
    with pytest.raises(ValueError, match="Box action space"):
        DenoisePG("MlpPolicy", "CartPole-v1")


class _UnboundedEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, shape=(2,))
    action_space = spaces.Box(-np.inf, np.inf, shape=(2,))

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_unbounded_box():
    with pytest.raises(ValueError, match="finite bounds"):
        DenoisePG("MlpPolicy", _UnboundedEnv())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(denoiser_sigma=0.0), "denoiser_sigma must be a finite number > 0"),
        (dict(denoiser_sigma=-0.1), "denoiser_sigma must be a finite number > 0"),
        (dict(denoiser_sigma=float("nan")), "denoiser_sigma must be a finite number > 0"),
        (dict(denoiser_sigma="0.1"), "denoiser_sigma must be a finite number > 0"),
        (dict(n_noise_samples=0), r"n_noise_samples must be an integer >= 1"),
        (dict(n_noise_samples=2.5), r"n_noise_samples must be an integer >= 1"),
        (dict(n_noise_samples=True), r"n_noise_samples must be an integer >= 1"),
        (dict(actor_kernel_width=float("nan")), r"actor_kernel_width must be None or a finite number > 0"),
        (dict(cond_dropout=1.0), r"cond_dropout must be in \[0, 1\)"),
        (dict(cond_dropout=-0.1), r"cond_dropout must be in \[0, 1\)"),
        (dict(policy_delay=0), r"policy_delay must be an integer >= 1"),
        (dict(actor_gradient="critic"), "actor_gradient must be 'direct' or 'regression'"),
        (dict(actor_preactivation_penalty=-0.1), r"actor_preactivation_penalty must be a finite number >= 0"),
        (dict(actor_preactivation_penalty=float("inf")), r"actor_preactivation_penalty must be a finite number >= 0"),
        (dict(denoiser_sigma=[0.1, 0.2]), r"denoiser_sigma must be a finite number > 0 \(sigma levels and schedules"),
        (dict(critic_control_variate="best"), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
        (dict(critic_control_variate=1.5), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
        (dict(critic_control_variate=True), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
        (dict(actor_gradient="regression"), r"critic_control_variate needs actor_gradient='direct'"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenoisePG("MlpPolicy", "Pendulum-v1", **kwargs)


def test_numpy_scalar_hyperparameters_accepted():
    # Values read from a config or an optuna sampler are often numpy scalars
    model = DenoisePG(
        "MlpPolicy",
        "Pendulum-v1",
        denoiser_sigma=np.float32(0.3),
        n_noise_samples=np.int64(2),
        learning_starts=16,
        batch_size=8,
    )
    model.learn(24)
    assert model.denoiser_sigma == pytest.approx(0.3)


def test_zero_cond_dropout_warns():
    with pytest.warns(UserWarning, match="never trained"):
        DenoisePG("MlpPolicy", "Pendulum-v1", cond_dropout=0.0)


def test_unknown_policy_name():
    with pytest.raises(ValueError, match=r"policy must be one of \['CnnPolicy', 'MlpPolicy', 'MultiInputPolicy'\]"):
        DenoisePG("MlpPolicyy", "Pendulum-v1")


class _NanRewardEnv(gym.Env):
    """Pendulum-like spaces; the reward turns NaN after a while."""

    observation_space = spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
    action_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)

    def __init__(self, nan_after: int):
        self.nan_after, self.t = nan_after, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.t > self.nan_after else 0.0
        return np.zeros(3, dtype=np.float32), reward, False, self.t % 10 == 0, {}


def test_non_finite_loss_raises_before_touching_the_weights(tiny):
    model = DenoisePG("MlpPolicy", _NanRewardEnv(nan_after=40), buffer_size=60, seed=0, **tiny)
    with pytest.raises(FloatingPointError, match=r"non-finite critic_loss \(nan\) at update step \d+"):
        model.learn(200)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
