"""The gradient-truth probe: rewinding, the truth against known gradients, common random numbers, budgets, scores."""

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise

from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.diagnostics import GradientTruthCallback, GradientTruthProbe, ProbeConfig, RewindError, metrics
from sb3_denoise_pg.diagnostics.callback import logger_key
from sb3_denoise_pg.diagnostics.gradient_truth import Measurement
from sb3_denoise_pg.diagnostics.rewind import reseed_noise, restore, rollout_env, snapshot
from sb3_denoise_pg.envs import LINEAR_GAUSSIAN_ID, LinearGaussianWorld

FAST = dict(n_states=8, scales=(0.1,), pairs_per_round=4, max_pairs=4, horizon=5, n_bootstrap=50, critic_directions=8)


def model_on(env_id: str, algo=TD3, **kwargs):
    # Made here rather than by SB3, which asks for render_mode="rgb_array" (a warning where an env has no renderer)
    model = algo("MlpPolicy", gym.make(env_id), seed=0, policy_kwargs=dict(net_arch=[16]), **kwargs)
    model.action_noise = NormalActionNoise(np.zeros(model.action_space.shape), 0.1 * np.ones(model.action_space.shape))
    return model


def world_returns(env_id: str, snapshot_env_steps: int, n_steps: int, seed: int, **make_kwargs) -> list[float]:
    """Rewards of ``n_steps`` fixed actions in a copy of the env rewound to a state ``snapshot_env_steps`` steps in."""
    source = gym.make(env_id, **make_kwargs)
    source.reset(seed=0)
    actions = np.random.default_rng(1).uniform(-0.5, 0.5, size=(snapshot_env_steps + n_steps, *source.action_space.shape))
    for action in actions[:snapshot_env_steps]:
        source.step(action.astype(np.float32))
    state = snapshot(rollout_env(source))
    copy = gym.make(env_id, **make_kwargs)
    copy.reset(seed=123)
    world = rollout_env(copy)
    restore(world, state)
    reseed_noise(world, seed)
    return [float(world.step(action.astype(np.float32))[1]) for action in actions[snapshot_env_steps:]]


# ---- rewinding ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, make_kwargs",
    [
        ("Pendulum-v1", {}),
        ("HalfCheetah-v5", {}),
        ("Hopper-v5", {}),
        # A pulse under way at almost every step: its body and remaining steps are part of the state
        ("sb3_denoise_pg/NoisyHalfCheetah-v5", dict(pulse_prob=0.5, pulse_duration=3)),
        ("sb3_denoise_pg/StickyPendulum-v1", dict(sticky_prob=0.5)),
        ("sb3_denoise_pg/NoisyPendulum-v1", {}),
    ],
)
def test_a_rewound_copy_repeats_the_world_exactly(env_id, make_kwargs):
    first = world_returns(env_id, 7, 30, seed=5, **make_kwargs)
    assert world_returns(env_id, 7, 30, seed=5, **make_kwargs) == first


def test_noise_streams_are_common_for_a_seed_and_differ_across_seeds():
    noisy = "sb3_denoise_pg/NoisyPendulum-v1"
    assert world_returns(noisy, 3, 10, seed=1) == world_returns(noisy, 3, 10, seed=1)
    assert world_returns(noisy, 3, 10, seed=1) != world_returns(noisy, 3, 10, seed=2)
    # Without noise the seed changes nothing
    assert world_returns("Pendulum-v1", 3, 10, seed=1) == world_returns("Pendulum-v1", 3, 10, seed=2)


def test_noise_wrappers_reseed_publicly():
    env = gym.make("sb3_denoise_pg/NoisyHalfCheetah-v5", pulse_prob=0.3)
    env.reset(seed=0)
    world = rollout_env(env)
    draws = []
    for _ in range(2):
        reseed_noise(world, 9)
        draws.append([world.env._rng.random(), world._rng.random()])  # ForcePulses, then ActuatorNoise
    assert draws[0] == draws[1]


class _Opaque(gym.Wrapper):
    """A wrapper the rewinder knows nothing about."""


class _Stateless(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, False, False, {}


def test_what_cannot_be_rewound_is_refused_by_name():
    with pytest.raises(RewindError, match="_Opaque"):
        rollout_env(_Opaque(gym.make("Pendulum-v1")))
    with pytest.raises(RewindError, match="_Stateless"):
        rollout_env(_Stateless())
    model = model_on("Pendulum-v1")
    with pytest.raises(RewindError, match="_Opaque"):
        GradientTruthProbe(lambda: _Opaque(gym.make("Pendulum-v1")), ProbeConfig(**FAST)).run(model)


def test_bad_models_and_envs_get_clear_errors():
    config = ProbeConfig(**FAST)
    with pytest.raises(ValueError, match="Q-function critic"):
        GradientTruthProbe("Pendulum-v1", config).run(PPO("MlpPolicy", "Pendulum-v1", n_steps=64))
    with pytest.raises(ValueError, match="Box action space"):
        GradientTruthProbe("CartPole-v1", config).run(model_on("Pendulum-v1"))
    with pytest.raises(ValueError, match="not the model's env"):
        GradientTruthProbe("HalfCheetah-v5", config).run(model_on("Pendulum-v1"))
    for bad in (dict(pairs_per_round=3), dict(scales=(0.0,)), dict(points=("replay",)), dict(max_pairs=2)):
        with pytest.raises(ValueError, match="ProbeConfig"):
            ProbeConfig(**{**FAST, **bad})


# ---- the truth ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_the_truth_recovers_the_linear_gaussian_gradient(noise_std):
    model = model_on(LINEAR_GAUSSIAN_ID)
    make = lambda: gym.make(LINEAR_GAUSSIAN_ID, noise_std=noise_std)  # noqa: E731
    pairs = 256
    probe = GradientTruthProbe(make, ProbeConfig(**{**FAST, "n_states": 16, "pairs_per_round": pairs, "max_pairs": pairs}))
    states = probe.collect(model)
    truth = probe.truth(model, states, np.random.default_rng(0))
    world: LinearGaussianWorld = make().unwrapped
    observations = np.stack([state.base for state in states.snapshots])
    for point in ("behaviour", "policy"):
        actions = states.actions[point]
        inside = np.all(np.abs(actions) < 0.7, axis=1)  # the box's clipping bends the smoothed gradient near it
        assert inside.sum() >= 8
        expected = world.true_action_gradient(observations, actions.astype(np.float64))
        cosines = metrics._cosines(truth.gradient(point, 0.1), expected)[inside]
        # A quadratic's smoothed gradient is its gradient. The antithetic difference of a pair is exactly its linear
        # part, (z . g) z, whose mean over M pairs misses g by about sqrt((d + 1) / M) (the draws' z z^T is not I);
        # with noise, common random numbers leave only the noise's cross term with the action, a smaller error
        assert np.median(cosines) > 0.98 and cosines.min() > 0.95


def test_common_random_numbers_cut_the_noise_of_pair_differences():
    make = lambda: gym.make(LINEAR_GAUSSIAN_ID, noise_std=0.3)  # noqa: E731
    model = model_on(LINEAR_GAUSSIAN_ID)
    probe = GradientTruthProbe(make, ProbeConfig(**FAST))
    states = probe.collect(model)
    snaps = [states.snapshots[0]] * 400
    plus = np.repeat(states.actions["behaviour"][:1] + 0.1, 200, axis=0)
    minus = plus - 0.2
    first = np.concatenate([plus, minus])
    common = np.tile(np.arange(200), 2)
    independent = np.arange(400)
    spread = {}
    for name, seeds in (("common", common), ("independent", independent)):
        returns, _ = probe.rollout_returns(model, snaps, first, seeds)
        spread[name] = np.std(returns[:200] - returns[200:])
    assert spread["common"] < spread["independent"] / 2


def test_the_smallest_scale_agrees_with_central_differences_on_pendulum():
    model = model_on("Pendulum-v1", learning_starts=100)
    model.learn(300)
    probe = GradientTruthProbe(
        "Pendulum-v1", ProbeConfig(**{**FAST, "scales": (0.02,), "pairs_per_round": 200, "max_pairs": 200, "horizon": 20})
    )
    states = probe.collect(model)
    truth = probe.truth(model, states, np.random.default_rng(0))
    h = 1e-4
    for point in ("behaviour", "policy"):
        actions = states.actions[point]
        returns, _ = probe.rollout_returns(
            model, states.snapshots * 2, np.concatenate([actions + h, actions - h]), np.zeros(2 * len(actions))
        )
        central = (returns[: len(actions)] - returns[len(actions) :]) / (2 * h)
        measured = truth.gradient(point, 0.02)[:, 0]
        inside = np.abs(actions[:, 0]) < 0.9
        # 200 pairs: the mean of z^2 is within about 3 * sqrt(2 / 200) = 30% of 1
        np.testing.assert_allclose(measured[inside], central[inside], rtol=0.3, atol=1e-3 * np.abs(central).max())


def test_pairs_stop_at_the_budget_or_the_target_and_precision_is_reported():
    model = model_on("Pendulum-v1")
    spend_all = GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "max_pairs": 12, "target_split_half": None}))
    assert spend_all.run(model).info["pairs"] == 12
    # 13 pairs do not fit in rounds of 4: the budget is never exceeded
    assert GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "max_pairs": 13})).run(model).info["pairs"] <= 13
    reached = GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "max_pairs": 40, "target_split_half": -1.0}))
    result = reached.run(model)
    assert result.info["pairs"] == 4  # any precision reaches -1: one round
    timed = GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "max_pairs": 400, "max_seconds": 1e-6}))
    with pytest.raises(TimeoutError, match="first round"):  # a limit no round can keep: no truth, said so
        timed.run(model)
    split = result.select(signal="truth_split_half")
    assert {row["level"] for row in split} == {"state", "batch", "parameter"}
    for row in split:
        assert -1 <= row["cosine"] <= 1 and 0 <= row["ceiling"] <= 1


# ---- signals and scores ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [TD3, SAC, DenoisePG])
def test_every_signal_is_scored_at_every_level(algo):
    kwargs = dict(learning_starts=50, batch_size=16)
    if algo is DenoisePG:
        kwargs["n_noise_samples"] = 4
    model = model_on("Pendulum-v1", algo=algo, **kwargs)
    model.learn(100)
    result = GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "scales": (0.05, 0.2), "estimate_draws": 16})).run(model)
    expected = {("critic", p) for p in ("behaviour", "policy")} | {("critic_fd", p) for p in ("behaviour", "policy")}
    if algo is DenoisePG:
        estimates = ("estimate", "estimate_no_cv", "estimate_many", "estimate_many_no_cv")
        expected |= {(name, "behaviour") for name in estimates} | {("actor_update", "policy"), ("anchored", "policy")}
    scored = {(row["signal"], row["point"]) for row in result.rows if row["signal"] != "truth_split_half"}
    assert scored == expected
    for row in result.rows:
        assert np.isfinite(row["cosine"])
        if row["signal"] not in ("truth_split_half", "critic"):
            # A percentile interval need not hold the sample's value (8 states here), but it is an interval
            assert np.isfinite(row["diff"]) and row["diff_low"] <= row["diff_high"]
    assert len(result.select(signal="critic", level="parameter")) == 4  # 2 points x 2 scales
    assert "critic" in result.to_markdown()


def test_a_saved_measurement_scores_as_the_whole_probe(tmp_path):
    model = model_on("Pendulum-v1", algo=DenoisePG, learning_starts=50, batch_size=16, n_noise_samples=4)
    model.learn(100)
    probe = GradientTruthProbe("Pendulum-v1", ProbeConfig(**{**FAST, "estimate_draws": 16}))
    whole = probe.run(model)
    probe.measure(model).save(tmp_path / "measurement.npz")
    rescored = probe.score(model, Measurement.load(tmp_path / "measurement.npz"))
    assert rescored.rows == whole.rows
    assert rescored.info["pairs"] == whole.info["pairs"]


def test_the_probe_leaves_the_model_as_it_was():
    def trained(with_probe: bool):
        model = model_on("Pendulum-v1", learning_starts=50, batch_size=16)
        callback = GradientTruthCallback("Pendulum-v1", 60, ProbeConfig(**FAST)) if with_probe else None
        model.learn(150, callback=callback)
        return th.cat([p.detach().flatten() for p in model.policy.parameters()])

    assert th.equal(trained(True), trained(False))


def test_the_callback_logs_and_appends_its_table(tmp_path):
    model = model_on("Pendulum-v1", learning_starts=50, batch_size=16)
    model.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    table = tmp_path / "gradient_truth.csv"
    callback = GradientTruthCallback("Pendulum-v1", 100, ProbeConfig(**FAST), table_path=table)
    model.learn(250, callback=callback)
    assert [result.info["num_timesteps"] for result in callback.results] == [100, 200]
    with open(table) as file:
        rows = list(csv.DictReader(file))
    assert {row["num_timesteps"] for row in rows} == {"100", "200"}
    assert len(rows) == 2 * len(callback.results[0].rows)
    with open(tmp_path / "log" / "progress.csv") as file:
        header = next(csv.reader(file))
    assert {logger_key(row) for row in callback.results[0].rows} <= set(header)
    assert "gradient_truth/pairs" in header


def test_parameter_level_cosine_is_the_cosine_of_the_actor_updates():
    rng = np.random.default_rng(0)
    n, d, p = 5, 2, 7
    jacobians = rng.normal(size=(n, d, p))
    signal, truth = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    flat = jacobians.reshape(n * d, p)
    gram = flat @ flat.T
    update = lambda g: np.einsum("ndp,nd->p", jacobians, g)  # noqa: E731
    expected = update(signal) @ update(truth) / np.linalg.norm(update(signal)) / np.linalg.norm(update(truth))
    counts = metrics.bootstrap_counts(n, 3, rng)
    levels = metrics.level_cosines(signal, truth, counts, gram)
    assert np.isclose(levels["parameter"][0], expected)
    assert np.isclose(levels["state"][0], metrics._cosines(signal, truth).mean())
    # A resample that holds state 0 twice weighs it twice
    weights = counts[1]
    expected_resample = update(signal * weights[:, None]) @ update(truth * weights[:, None])
    expected_resample /= np.linalg.norm(update(signal * weights[:, None])) * np.linalg.norm(update(truth * weights[:, None]))
    assert np.isclose(levels["parameter"][1], expected_resample)


def test_split_half_ceiling():
    assert metrics.split_half_ceiling(1.0) == 1.0
    assert metrics.split_half_ceiling(-0.2) == 0.0
    assert metrics.split_half_ceiling(0.5) == pytest.approx(np.sqrt(2 / 3))
