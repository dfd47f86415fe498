"""The gradient-truth probe and its callback under bad input: what cannot be rewound, non-finite worlds, odd configs."""

import csv
import time
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.wrappers import StickyAction
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.diagnostics import (
    GradientTruthCallback,
    GradientTruthProbe,
    NonFiniteError,
    ProbeConfig,
    RewindError,
    metrics,
)
from sb3_denoise_pg.diagnostics.callback import TABLE_COLUMNS
from sb3_denoise_pg.diagnostics.gradient_truth import Measurement

CONFIG = ProbeConfig(
    n_states=4, scales=(0.2,), pairs_per_round=2, max_pairs=2, horizon=5, critic_directions=4, estimate_draws=8, n_bootstrap=20
)
SMALL = dict(learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[8, 8]), seed=0)


@pytest.fixture(scope="module")
def model():
    return DenoisePG("MlpPolicy", "Pendulum-v1", **SMALL).learn(120)


class _Counting(gym.Env):
    """A world with a ``state`` (so the rewinder's list lets it through) and a step counter it does not restore."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,))
    action_space = gym.spaces.Box(-2.0, 2.0, (1,))

    def __init__(self, reward=None):
        self.state, self.steps, self.reward = np.zeros(3), 0, reward

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.steps = np.zeros(3), 0
        return self.state.astype(np.float32), {}

    def step(self, action):
        self.steps += 1
        reward = -float(self.steps) if self.reward is None else self.reward
        return self.state.astype(np.float32), reward, False, False, {}


def test_a_world_that_does_not_repeat_itself_is_refused(model):
    with pytest.raises(RewindError, match="does not repeat itself"):
        GradientTruthProbe(lambda: _Counting(), CONFIG).run(model)


def test_car_racing_keeps_its_physics_out_of_reach_and_is_refused():
    pytest.importorskip("Box2D")
    car = DenoisePG("MlpPolicy", "CarRacing-v3", buffer_size=10, policy_kwargs=dict(net_arch=[4]), seed=0)
    with pytest.raises(RewindError, match="CarRacing-v3 does not repeat itself"):
        GradientTruthProbe("CarRacing-v3", CONFIG).collect(car)


@pytest.mark.parametrize("reward", [float("nan"), float("inf")])
def test_a_non_finite_reward_stops_the_probe_and_names_where(model, reward):
    with pytest.raises(NonFiniteError, match="non-finite reward"):
        GradientTruthProbe(lambda: _Counting(reward), CONFIG).run(model)


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul:RuntimeWarning")
def test_cosines_of_non_finite_vectors_are_nan_not_zero():
    cosines = metrics._cosines(np.array([[np.nan, 1.0], [0.0, 0.0], [1.0, 0.0]]), np.ones((3, 2)))
    assert np.isnan(cosines[0]) and cosines[1] == 0.0 and cosines[2] == pytest.approx(2**-0.5)
    gram = np.eye(2)
    assert np.isnan(metrics._quadratic_cosines(np.array([[np.inf, 0.0]]), np.ones((1, 2)), gram))[0]


def _weights_after(callback_config, **model_kwargs):
    model = DenoisePG("MlpPolicy", "Pendulum-v1", **{**SMALL, **model_kwargs})
    callback = GradientTruthCallback("Pendulum-v1", 100, callback_config) if callback_config else None
    model.learn(300, callback=callback)
    return th.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_the_callback_leaves_training_with_ornstein_uhlenbeck_noise_unchanged():
    noise = lambda: OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.3 * np.ones(1))  # noqa: E731
    assert th.equal(_weights_after(CONFIG, action_noise=noise()), _weights_after(None, action_noise=noise()))


def test_the_callback_runs_on_several_envs_with_action_noise():
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=0)
    model = DenoisePG("MlpPolicy", env, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), **SMALL)
    callback = GradientTruthCallback("Pendulum-v1", 100, CONFIG)
    model.learn(200, callback=callback)
    assert callback.results


@pytest.mark.parametrize("scales", [tuple(np.linspace(0.1, 0.2, 2)), (np.float32(0.2),)])
def test_a_measurement_with_numpy_scales_saves_and_loads(model, tmp_path, scales):
    measurement = GradientTruthProbe("Pendulum-v1", replace(CONFIG, scales=scales)).measure(model)
    measurement.save(tmp_path / "m.npz")
    loaded = Measurement.load(tmp_path / "m.npz")
    assert sorted(loaded.truth.halves) == sorted(measurement.truth.halves)


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_states=2.5),
        dict(scales=(float("inf"),)),
        dict(target_split_half=float("nan")),
        dict(target_split_half=-1.5),
        dict(target_split_half=2),
        dict(max_seconds=-1.0),
        dict(seed=-1),
        dict(n_bootstrap=-1),
        dict(horizon=True),
    ],
)
def test_config_values_out_of_range_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=f"ProbeConfig: {next(iter(bad))}"):
        replace(CONFIG, **bad)


def test_a_round_that_outlives_max_seconds_stops(model):
    tic = time.perf_counter()
    with pytest.raises(TimeoutError, match="max_seconds"):
        GradientTruthProbe("Pendulum-v1", replace(CONFIG, horizon=10**9, max_seconds=1.0)).run(model)
    assert time.perf_counter() - tic < 30


def test_env_instances_are_refused_and_inner_bookkeeping_layers_accepted(model):
    for env in (gym.make("Pendulum-v1"), make_vec_env("Pendulum-v1", n_envs=2)):
        with pytest.raises(TypeError, match="a function that makes the env"):
            GradientTruthProbe(env, CONFIG)
    result = GradientTruthProbe(lambda: StickyAction(gym.make("Pendulum-v1"), 0.25), CONFIG).run(model)
    assert result.rows


def test_the_table_is_checked_before_training_and_rows_carry_a_run_id(tmp_path, model):
    with pytest.raises(ValueError, match="is a directory"):
        GradientTruthCallback("Pendulum-v1", 100, CONFIG, table_path=tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other columns"):
        GradientTruthCallback("Pendulum-v1", 100, CONFIG, table_path=other)
    table = tmp_path / "empty.csv"
    table.touch()
    for run_id in ("first", "second"):
        callback = GradientTruthCallback("Pendulum-v1", 100, CONFIG, table_path=table, run_id=run_id)
        callback.init_callback(model)
        callback.probe_now()
    with open(table, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames) == TABLE_COLUMNS
    assert {row["run_id"] for row in rows} == {"first", "second"}
