"""The project's gymnasium ids: noisy worlds and the linear-Gaussian world."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sb3_denoise_pg.envs import LINEAR_GAUSSIAN_ID, NOISY_ENV_IDS, LinearGaussianWorld, register_envs

ZERO_NOISE = dict(actuator_noise_std=0.0, sticky_prob=0.0, pulse_prob=0.0)
MUJOCO_PULSE_IDS = ("sb3_denoise_pg/NoisyHalfCheetah-v5", "sb3_denoise_pg/NoisyHopper-v5")


def base_id(env_id: str) -> str:
    return gym.spec(env_id).kwargs["base_id"]


def rollout(env: gym.Env, seed: int, n_steps: int, action_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of ``n_steps`` uniform random actions, resetting (unseeded) at episode ends."""
    actions = np.random.default_rng(action_seed).uniform(
        env.action_space.low, env.action_space.high, size=(n_steps, *env.action_space.shape)
    )
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions.astype(env.action_space.dtype):
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            observations.append(obs)
    return np.array(observations), np.array(rewards)


def test_registration_is_idempotent():
    assert len(NOISY_ENV_IDS) == 5
    for env_id in (LINEAR_GAUSSIAN_ID, *NOISY_ENV_IDS):
        assert env_id in gym.registry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        import sb3_denoise_pg.envs  # noqa: F401


@pytest.mark.filterwarnings("ignore:.*(different from the unwrapped|symmetric and normalized|infinity)")
@pytest.mark.parametrize("env_id", [LINEAR_GAUSSIAN_ID, *NOISY_ENV_IDS])
def test_check_env(env_id):
    # Rendering is not part of the contract (MuJoCo's would need a display)
    check_env(gym.make(env_id), skip_render_check=True)


@pytest.mark.parametrize("env_id", NOISY_ENV_IDS)
def test_spaces_and_time_limit(env_id):
    env, base = gym.make(env_id), gym.make(base_id(env_id))
    assert env.observation_space == base.observation_space
    assert env.action_space == base.action_space
    assert env.spec.max_episode_steps == base.spec.max_episode_steps in (200, 1000)


def test_episodes_end():
    env = gym.make("sb3_denoise_pg/NoisyPendulum-v1")
    env.reset(seed=0)
    for step in range(1, 201):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and truncated == (step == 200)


@pytest.mark.parametrize("env_id", NOISY_ENV_IDS)
def test_zero_noise_is_base_env(env_id):
    # Long enough to cross an episode end (unseeded reset) on Pendulum and the MuJoCo tasks that fall
    observations, rewards = rollout(gym.make(env_id, **ZERO_NOISE), seed=1, n_steps=250)
    base_observations, base_rewards = rollout(gym.make(base_id(env_id)), seed=1, n_steps=250)
    np.testing.assert_array_equal(observations, base_observations)
    np.testing.assert_array_equal(rewards, base_rewards)


@pytest.mark.parametrize("env_id", NOISY_ENV_IDS)
def test_noise_changes_transitions(env_id):
    observations, rewards = rollout(gym.make(env_id), seed=1, n_steps=250)
    base_observations, base_rewards = rollout(gym.make(base_id(env_id)), seed=1, n_steps=250)
    np.testing.assert_array_equal(observations[0], base_observations[0])  # same initial state
    n_steps = min(len(rewards), len(base_rewards))
    assert not np.array_equal(rewards[:n_steps], base_rewards[:n_steps])
    assert not np.array_equal(observations[: n_steps + 1], base_observations[: n_steps + 1])


@pytest.mark.parametrize("env_id", NOISY_ENV_IDS)
def test_seeding_reproduces_noise(env_id):
    first = rollout(gym.make(env_id), seed=7, n_steps=150)
    second = rollout(gym.make(env_id), seed=7, n_steps=150)
    other_seed = rollout(gym.make(env_id), seed=8, n_steps=150)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other_seed[1])


def test_actuator_noise_scale_and_bounds():
    env = gym.make("sb3_denoise_pg/NoisyPendulum-v1", actuator_noise_std=0.3)
    env.reset(seed=0)
    wrapper = env.get_wrapper_attr("action")
    executed = np.array([wrapper(np.zeros(1, dtype=np.float32)) for _ in range(4000)])
    assert executed.dtype == np.float32
    # Pendulum's torque is in [-2, 2]: std 0.3 * 2 (clipping at ~3.3 std is negligible)
    assert np.std(executed) == pytest.approx(0.6, rel=0.05)
    saturated = np.array([wrapper(np.full(1, 2.0, dtype=np.float32)) for _ in range(1000)])
    assert saturated.max() <= 2.0 and saturated.min() >= -2.0 and np.mean(saturated == 2.0) > 0.4


@pytest.mark.parametrize("env_id", MUJOCO_PULSE_IDS)
def test_force_pulses_change_trajectories(env_id):
    env = gym.make(env_id, actuator_noise_std=0.0, pulse_prob=0.2, pulse_duration=3)
    without_pulses = gym.make(env_id, **ZERO_NOISE)
    data, n_bodies = env.unwrapped.data, env.unwrapped.model.nbody
    env.reset(seed=3)
    without_pulses.reset(seed=3)
    pushed, diverged = [], False
    for action in np.random.default_rng(0).uniform(-0.3, 0.3, size=(60, *env.action_space.shape)).astype(np.float32):
        obs, *_, info = env.step(action)
        base_obs, *_ = without_pulses.step(action)
        body = info["force_pulse_body"]
        pushed.append(body)
        assert body == -1 or 1 <= body < n_bodies  # never the world body
        if body == -1:
            assert np.count_nonzero(data.xfrc_applied) == 0
        diverged = diverged or not np.array_equal(obs, base_obs)
    assert diverged and np.count_nonzero(np.array(pushed) >= 0) >= 6
    # A pulse lasts pulse_duration steps (pulses may follow each other at once): runs between quiet steps,
    # the last one excepted (cut by the end of the rollout), are made of whole pulses
    quiet = np.flatnonzero(np.array(pushed) == -1)
    run_lengths = np.diff(np.concatenate([[-1], quiet])) - 1
    assert np.all(run_lengths % 3 == 0)
    env.reset()
    assert np.count_nonzero(data.xfrc_applied) == 0


def test_sticky_actions_repeat_previous_action():
    env = gym.make("sb3_denoise_pg/StickyPendulum-v1", sticky_prob=0.5)
    env.reset(seed=0)
    previous, repeated, fresh = None, 0, 0
    for action in np.random.default_rng(0).uniform(-2, 2, size=(200, 1)).astype(np.float32):
        env.step(action)
        executed = env.get_wrapper_attr("last_action")
        if np.array_equal(executed, action):
            fresh += 1
        else:
            np.testing.assert_array_equal(executed, previous)
            repeated += 1
        previous = executed
    assert 60 < repeated < 140 and fresh > 60


def test_noise_parameters_are_kwargs():
    env = gym.make("sb3_denoise_pg/NoisyHopper-v5", actuator_noise_std=0.2, pulse_magnitude=1.0, ctrl_cost_weight=0.0)
    assert env.get_wrapper_attr("noise_std") == 0.2
    assert env.get_wrapper_attr("pulse_magnitude") == 1.0
    assert env.unwrapped._ctrl_cost_weight == 0.0
    with pytest.raises(ValueError):
        gym.make("sb3_denoise_pg/NoisyPendulum-v1", actuator_noise_std=-1.0)
    with pytest.raises(TypeError):
        gym.make("sb3_denoise_pg/NoisyPendulum-v1", pulse_prob=0.1)  # not a MuJoCo env


def test_linear_gaussian_kwargs():
    env = gym.make(LINEAR_GAUSSIAN_ID, action_dim=2, obs_dim=3, noise_std=0.1, matrix_seed=5)
    assert env.action_space.shape == (2,) and env.observation_space.shape == (3,)
    assert env.unwrapped.noise_std == 0.1
    np.testing.assert_array_equal(env.unwrapped.W, LinearGaussianWorld(2, 3, 0.1, matrix_seed=5).W)


def test_linear_gaussian_gradient_matches_finite_differences():
    env = LinearGaussianWorld(action_dim=3, obs_dim=4, noise_std=0.3, matrix_seed=1)
    rng = np.random.default_rng(0)
    obs, actions = rng.normal(size=(5, 4)), rng.uniform(-1, 1, size=(5, 3))
    eps = 1e-5
    finite_diff = np.stack(
        [
            (env.expected_reward(obs, actions + eps * e) - env.expected_reward(obs, actions - eps * e)) / (2 * eps)
            for e in np.eye(3)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(env.true_action_gradient(obs, actions), finite_diff, rtol=1e-6, atol=1e-6)


def test_linear_gaussian_expected_reward_matches_monte_carlo():
    env = LinearGaussianWorld(action_dim=3, noise_std=0.5, matrix_seed=2)
    state, _ = env.reset(seed=0)
    state = state.astype(np.float64)
    action = np.array([0.5, -0.2, 0.1], dtype=np.float32)
    rewards = []
    for _ in range(4000):
        env._state = state.copy()  # the world is one-step: replay the same state
        _, reward, terminated, _, _ = env.step(action)
        assert terminated
        rewards.append(reward)
    standard_error = np.std(rewards) / np.sqrt(len(rewards))
    assert np.mean(rewards) == pytest.approx(env.expected_reward(state, action.astype(np.float64)), abs=4 * standard_error)


@pytest.mark.parametrize("distractor_noise", [0.0, 0.5])
def test_distractor_actuators_of_the_linear_gaussian_world(distractor_noise):
    world = LinearGaussianWorld(action_dim=8, relevant_dims=3, noise_std=0.1, distractor_noise=distractor_noise)
    assert world.W.shape == (3, 8) and np.all(world.W[:, 3:] == 0)
    rng = np.random.default_rng(0)
    obs, actions = rng.normal(size=(5, 3)), rng.uniform(-0.9, 0.9, size=(5, 8))
    gradient = world.true_action_gradient(obs, actions)
    h = 1e-5
    for j in range(8):
        step = np.zeros(8)
        step[j] = h
        central = (world.expected_reward(obs, actions + step) - world.expected_reward(obs, actions - step)) / (2 * h)
        np.testing.assert_allclose(gradient[:, j], central, rtol=1e-5, atol=1e-7)
    if distractor_noise == 0:
        assert np.all(gradient[:, 3:] == 0)  # inert: they move nothing
    # The distractors' noise grows with their actions, and the mean outcome ignores them
    quiet, loud = np.zeros((20000, 8)), np.zeros((20000, 8))
    loud[:, 3:] = 0.9
    spread = [np.std(world.sample_outcome(np.zeros((20000, 3)), a, rng)) for a in (quiet, loud)]
    expected = [0.1, np.sqrt(0.01 + distractor_noise**2 * 0.81)]
    np.testing.assert_allclose(spread, expected, rtol=0.03)


def test_without_distractors_the_linear_gaussian_world_is_unchanged():
    world, same = LinearGaussianWorld(action_dim=4), LinearGaussianWorld(action_dim=4, relevant_dims=4)
    assert np.array_equal(world.W, same.W) and world.W.shape == (4, 4)
    with pytest.raises(ValueError, match="distractor_noise"):
        LinearGaussianWorld(action_dim=4, distractor_noise=0.1)
    with pytest.raises(ValueError, match="relevant_dims"):
        LinearGaussianWorld(action_dim=4, relevant_dims=5)
