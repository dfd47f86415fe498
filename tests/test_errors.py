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
        (dict(actor_preactivation_penalty=-0.1), r"actor_preactivation_penalty must be a finite number >= 0"),
        (dict(actor_preactivation_penalty=float("inf")), r"actor_preactivation_penalty must be a finite number >= 0"),
        (dict(denoiser_sigma=[0.1, 0.2]), r"denoiser_sigma must be a finite number > 0 \(sigma levels and schedules"),
        (dict(critic_control_variate="best"), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
        (dict(critic_control_variate=1.5), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
        (dict(critic_control_variate=True), r"critic_control_variate must be None, 'optimal' or a number in \[0, 1\]"),
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


def test_unsupported_action_space_error_is_also_sb3s_assertion_error():
    # SB3's algorithms assert the action space; code written against either convention catches DenoisePG's error
    with pytest.raises(AssertionError):
        DenoisePG("MlpPolicy", "CartPole-v1")


@pytest.mark.parametrize("name", ["antithetic", "normalize_action_gradient", "center_advantages"])
@pytest.mark.parametrize("value", ["no", "False", 1, None])
def test_switches_must_be_booleans(name, value):
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        DenoisePG("MlpPolicy", "Pendulum-v1", **{name: value})


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_batch_size_is_checked_by_name(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DenoisePG("MlpPolicy", "Pendulum-v1", batch_size=batch_size)


def test_policy_kwargs_of_the_caller_are_left_alone(tmp_path):
    from stable_baselines3 import TD3

    policy_kwargs = dict(net_arch=[8, 8])
    model = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs)
    assert policy_kwargs == dict(net_arch=[8, 8])
    TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs)  # the same dict still suits TD3
    model.save(tmp_path / "model")
    DenoisePG.load(tmp_path / "model", policy_kwargs=dict(net_arch=[8, 8]))
    with open(tmp_path / "model.zip", "rb") as file:  # a file object is read twice: for policy_kwargs, then to load
        DenoisePG.load(file, policy_kwargs=dict(net_arch=[8, 8]))
    with pytest.raises(ValueError, match="policy kwargs do not equal"):  # a denoiser size it was not made with
        DenoisePG.load(tmp_path / "model", policy_kwargs=dict(net_arch=[8, 8], denoiser_net_arch=[32]))


def test_another_algorithms_policy_or_file_is_refused_with_a_message(tmp_path):
    from stable_baselines3 import TD3
    from stable_baselines3.td3.policies import TD3Policy

    with pytest.raises(ValueError, match="DenoisePG needs a DenoisePGPolicy"):
        DenoisePG(TD3Policy, "Pendulum-v1")
    TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "td3")
    with pytest.raises(ValueError, match="saved by another algorithm"):
        DenoisePG.load(tmp_path / "td3")


def test_kernel_localised_rows_stay_finite_when_the_kernel_is_far_narrower_than_the_noise():
    from sb3_denoise_pg.common.estimator import kernel_localised_rows

    th.manual_seed(0)
    actions = th.zeros(4, 1)
    noisy = actions + 0.2 * th.randn(8, 4, 1)
    rows, _, weights = kernel_localised_rows(th.randn(8, 4, 1), noisy, actions.clone(), 0.001, (actions, 0.2, th.ones(4, 1)))
    assert th.isfinite(weights).all() and th.isfinite(rows).all()
    assert weights.max() <= 2


def test_a_huge_sigma_trains_without_nan():
    model = DenoisePG("MlpPolicy", "Pendulum-v1", seed=0, denoiser_sigma=100.0, learning_starts=50, batch_size=32)
    model.learn(600)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
