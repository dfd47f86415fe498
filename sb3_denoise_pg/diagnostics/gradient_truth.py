"""
A ground-truth probe of the action gradient an actor follows.

An actor-critic's actor climbs ``grad_a Q^mu(s, a)`` of its current deterministic policy ``mu``; TD3 takes it from a
critic's input-gradient, DenoisePG from a score-difference estimate. A simulator can be rewound, so the quantity itself
can be measured: restore the simulator to a state ``s`` of the model's own behaviour, take ``a + scale z`` and
``a - scale z``, follow ``mu`` (no exploration) for ``horizon`` steps with the model's ``gamma``, and
``mean_m (Q(a + scale z_m) - Q(a - scale z_m)) z_m / (2 scale)`` over antithetic pairs estimates the Gaussian-smoothed
gradient ``grad_a E_z[Q^mu(s, a + scale z)]``: smoothed, because over hundreds of steps the return of a contact-rich
system is a rough function of the first action, where a local gradient is neither well defined nor what a noisy
actor can use. In a noisy world both rollouts of a pair see the same noise (common random numbers), and pairs see
different noise.

The truth's own precision is measured, not assumed: each state's pairs are split in two halves, and the cosine between
the halves' estimates (split-half) is reported at every level where a signal is scored. Pairs are added, a round at a
time, until the median split-half cosine over states reaches a target or the pair or time budget runs out.

Every rollout of a round runs in lockstep, one env copy per rollout and one batched actor forward per step. Signals
(:mod:`sb3_denoise_pg.diagnostics.signals`) are scored against the truth at the same states
(:mod:`sb3_denoise_pg.diagnostics.metrics`); the result is a long table, one row per (point, scale, signal, level).

    probe = GradientTruthProbe("HalfCheetah-v5", ProbeConfig(n_states=64, scales=(0.05, 0.2)))
    result = probe.run(model)
    print(result.to_markdown())
"""

import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv

from sb3_denoise_pg.common.estimator import orthogonal_normal
from sb3_denoise_pg.denoise_pg.checks import _is_integer, _is_number
from sb3_denoise_pg.diagnostics import metrics
from sb3_denoise_pg.diagnostics.rewind import RewindError, Snapshot, reseed_noise, restore, rollout_env, snapshot
from sb3_denoise_pg.diagnostics.signals import check_model, model_signals, policy_actions

POINTS = ("behaviour", "policy")
# Steps of the rollouts that check, before a probe, that a rewound env repeats itself
REPEAT_CHECK_STEPS = 20


class NonFiniteError(ValueError):
    """A reward, observation, truth or signal of the probe is NaN or infinite: no cosine of it means anything."""


class _OutOfTime(Exception):
    """A round of rollouts passed its deadline."""


REFERENCE_SIGNAL = "critic"
EnvSource = str | Callable[[], gym.Env]


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


@dataclass(frozen=True)
class ProbeConfig:
    """
    :param n_states: States to measure, from the model's behaviour (its policy and its exploration noise)
    :param scales: Smoothing scales of the truth (standard deviation of ``z``'s multiplier, scaled action space)
    :param points: Where the gradient is taken: ``"behaviour"``, the behaviour action ``a`` (where a replay
        transition's estimate lives), and/or ``"policy"``, ``mu(s)`` (where the actor needs it)
    :param horizon: Steps of each rollout; ``None``: the fewest with ``gamma^H <= 0.05``
    :param pairs_per_round: Antithetic pairs added to every (state, point, scale) per round (even, >= 2)
    :param max_pairs: The most pairs per (state, point, scale)
    :param target_split_half: Stop adding pairs once the split-half cosine reaches this at every (point, scale) and at
        every level of ``precision_levels`` (a cosine in ``[-1, 1]``; ``-1``: one round); ``None`` spends the whole
        pair budget
    :param precision_levels: Where the target must be reached: ``"state"`` (the median over states of each state's
        split-half cosine; with one action dimension only a sign), ``"batch"``, ``"parameter"`` (the actor's update)
    :param max_seconds: Start no round that would end after this many seconds of rollouts, and stop one still running
        then (the rounds done so far are the truth; a first round still running is a ``TimeoutError``)
    :param stride: Behaviour steps between two kept states
    :param warmup: Behaviour steps before the first kept state
    :param n_envs: Env copies stepped in lockstep
    :param critic_directions: Antithetic pairs of the critic's finite differences
    :param estimate_draws: Draws of DenoisePG's many-draw estimate
    :param n_bootstrap: Bootstrap resamples of the states for the intervals
    :param seed: Seed of the probe's states, directions and noise streams (the model's random state is left alone)
    """

    n_states: int = 64
    scales: tuple[float, ...] = (0.05, 0.1, 0.2)
    points: tuple[str, ...] = POINTS
    horizon: int | None = None
    pairs_per_round: int = 8
    max_pairs: int = 48
    target_split_half: float | None = 0.9
    precision_levels: tuple[str, ...] = ("state", "parameter")
    max_seconds: float | None = None
    stride: int = 10
    warmup: int = 0
    n_envs: int = 256
    critic_directions: int = 64
    estimate_draws: int = 256
    n_bootstrap: int = 1000
    seed: int = 0

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ProbeConfig":
        """The config of ``asdict(config)`` after a trip through JSON (lists back to tuples)."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in config.items()})

    def __post_init__(self) -> None:
        def require(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"ProbeConfig: {message}")

        counts = dict(
            n_states=2, pairs_per_round=2, max_pairs=2, stride=1, warmup=0, n_envs=1, critic_directions=1, estimate_draws=1
        )
        for name, least in {**counts, "n_bootstrap": 0, "seed": 0}.items():
            value = getattr(self, name)
            require(_is_integer(value) and value >= least, f"{name} must be an integer >= {least}, got {value!r}")
        require(
            isinstance(self.scales, (tuple, list)) and len(self.scales) >= 1 and all(_is_positive(s) for s in self.scales),
            f"scales must be finite numbers > 0, got {self.scales!r}",
        )
        # Plain floats: numpy scalars would not survive a trip through JSON (a saved measurement's info and keys)
        object.__setattr__(self, "scales", tuple(float(scale) for scale in self.scales))
        require(
            self.target_split_half is None or (_is_number(self.target_split_half) and -1 <= self.target_split_half <= 1),
            f"target_split_half must be None or a cosine in [-1, 1] (None spends the whole pair budget), "
            f"got {self.target_split_half!r}",
        )
        require(
            self.max_seconds is None or _is_positive(self.max_seconds),
            f"max_seconds must be None or a finite number > 0, got {self.max_seconds!r}",
        )
        require(len(self.points) >= 1 and set(self.points) <= set(POINTS), f"points must be among {POINTS}, got {self.points}")
        require(
            len(self.precision_levels) >= 1 and set(self.precision_levels) <= set(metrics.LEVELS),
            f"precision_levels must be among {metrics.LEVELS}, got {self.precision_levels}",
        )
        require(
            self.horizon is None or (_is_integer(self.horizon) and self.horizon >= 1),
            f"horizon must be None or an integer >= 1, got {self.horizon!r}",
        )
        require(
            self.pairs_per_round >= 2 and self.pairs_per_round % 2 == 0,
            f"pairs_per_round must be even and >= 2 (the split halves), got {self.pairs_per_round}",
        )
        require(self.max_pairs >= self.pairs_per_round, f"max_pairs must be >= pairs_per_round, got {self.max_pairs}")


@dataclass
class ProbeStates:
    """
    States of the model's behaviour, each with what the probe needs of it.

    :param observations: Raw observations ``s`` (an array of shape ``(n, ...)``, or a dict of them)
    :param snapshots: The simulator's state at each ``s``
    :param actions: Scaled actions at each point (``behaviour`` and ``policy``), point -> ``(n, action_dim)``
    :param next_observations: ``s'`` of the behaviour transition
    :param rewards: ``r`` of the behaviour transition, shape ``(n,)``
    :param dones: Whether the behaviour transition terminated (a time limit does not count), shape ``(n,)``
    """

    observations: Any
    snapshots: list[Snapshot]
    actions: dict[str, np.ndarray]
    next_observations: Any
    rewards: np.ndarray
    dones: np.ndarray


@dataclass
class Truth:
    """
    The smoothed gradient at every (point, scale), from antithetic rollouts split in two halves.

    :param halves: (point, scale) -> the two halves' estimates, each ``(n, action_dim)``
    :param pairs: Pairs per (state, point, scale)
    :param seconds: Time spent in rollouts
    :param env_seconds: Of which stepping the envs
    """

    halves: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]]
    pairs: int
    seconds: float
    env_seconds: float

    def gradient(self, point: str, scale: float) -> np.ndarray:
        """The estimate from all pairs (the halves have equal numbers of pairs)."""
        first, second = self.halves[point, scale]
        return (first + second) / 2

    def state_split_half(self, point: str, scale: float) -> np.ndarray:
        """Per state, the cosine between the two halves, shape ``(n,)``."""
        return metrics._cosines(*self.halves[point, scale])

    def split_half(self, point: str, scale: float, gram: np.ndarray | None = None) -> dict[str, float]:
        """
        The split-half cosine at each level: ``state``, the median over states; ``batch``; ``parameter`` when the
        actor's Gram matrix is given.
        """
        first, second = self.halves[point, scale]
        levels = metrics.level_cosines(first, second, np.ones((1, first.shape[0])), gram)
        return {level: float(values[0]) for level, values in levels.items()} | {
            "state": float(np.median(self.state_split_half(point, scale)))
        }


@dataclass
class ProbeResult:
    """
    One probe of one model.

    :param rows: One dict per (point, scale, signal, level): ``cosine`` and its 95% interval (``low``, ``high``),
        ``median`` at the state level, the paired difference with the reference signal (``diff``, ``diff_low``,
        ``diff_high``); for the signal ``truth_split_half``, the truth's split-half cosine (at the state level the median
        over states) and its ``ceiling`` (:func:`metrics.split_half_ceiling`)
    :param info: What was probed and how: model, steps, states, pairs, horizon, timings, scalars of the signals
    :param signals: Each signal's vectors at the states, ``(signal, point, scale) -> (n, action_dim)``
    """

    rows: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    signals: dict[tuple[str, str, float | None], np.ndarray] = field(default_factory=dict)

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """The rows whose columns equal every ``where`` value."""
        return [row for row in self.rows if all(row.get(key) == value for key, value in where.items())]

    def value(self, signal: str, point: str, scale: float, level: str, column: str = "cosine") -> float:
        """One cell of the table."""
        (row,) = self.select(signal=signal, point=point, scale=scale, level=level)
        return row[column]

    def to_markdown(self) -> str:
        """The table, one line per row: cosine [interval], the state level's median, the paired difference."""

        def cell(value: Any, low: Any = None, high: Any = None) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return ""
            if low is None or math.isnan(low):
                return f"{value:+.2f}"
            return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"

        lines = ["| point | scale | signal | level | cosine [95% CI] | median | vs critic [95% CI] | truth ceiling |"]
        lines.append("|---|---|---|---|---|---|---|---|")
        for row in self.rows:
            lines.append(
                f"| {row['point']} | {row['scale']:g} | {row['signal']} | {row['level']} | "
                f"{cell(row['cosine'], row.get('low'), row.get('high'))} | {cell(row.get('median'))} | "
                f"{cell(row.get('diff'), row.get('diff_low'), row.get('diff_high'))} | {cell(row.get('ceiling'))} |"
            )
        return "\n".join(lines)


class GradientTruthProbe:
    """
    Measures a model's action-gradient signals against the smoothed ``grad_a Q^mu`` of its current policy.

    :param env: A gymnasium id or a function that makes the env (as the model was trained on it, noise wrappers
        included; its time limit ends the behaviour's episodes, never a rollout)
    :param config: What to measure and how much to spend
    """

    def __init__(self, env: EnvSource, config: ProbeConfig | None = None):
        if isinstance(env, (gym.Env, VecEnv)) or not (isinstance(env, str) or callable(env)):
            raise TypeError(
                f"The probe needs a gymnasium id or a function that makes the env (it makes one copy per rollout), "
                f"got {type(env).__name__}: pass the id, or lambda: <the code that made it>"
            )
        self.make_env: Callable[[], gym.Env] = (lambda: gym.make(env)) if isinstance(env, str) else env
        self.env_name = env if isinstance(env, str) else getattr(env, "__name__", type(env).__name__)
        self.config = config or ProbeConfig()
        self._collector: gym.Env | None = None
        self._pool: list[gym.Env] = []

    # ---- set-up -------------------------------------------------------------------------------------------------

    def _new_rollout_env(self) -> gym.Env:
        outer = self.make_env()
        outer.reset(seed=self.config.seed)
        return rollout_env(outer)

    def _env_pool(self, size: int) -> list[gym.Env]:
        while len(self._pool) < size:
            self._pool.append(self._new_rollout_env())
        return self._pool[:size]

    def _check(self, model: BaseAlgorithm) -> None:
        check_model(model)
        if self._collector is None:
            self._collector = self.make_env()
            self._collector.reset(seed=self.config.seed)  # classic-control envs make their state at reset
        if not isinstance(self._collector.action_space, spaces.Box):
            raise ValueError(f"The gradient-truth probe needs a Box action space, got {self._collector.action_space}")
        rollout_env(self._collector)  # raises if a layer cannot be rewound
        if self._collector.action_space.shape != model.action_space.shape:
            raise ValueError(
                f"The probe's env has actions of shape {self._collector.action_space.shape}, the model "
                f"{model.action_space.shape}: not the model's env"
            )

    def horizon(self, model: BaseAlgorithm) -> int:
        """The rollouts' length: the config's, or the fewest steps with ``gamma^H <= 0.05``."""
        if self.config.horizon is not None:
            return self.config.horizon
        return 1 if model.gamma <= 0.05 else math.ceil(math.log(0.05) / math.log(model.gamma))

    def close(self) -> None:
        """Close the probe's envs."""
        for env in [*self._pool, *([self._collector] if self._collector is not None else [])]:
            env.close()
        self._pool, self._collector = [], None

    # ---- the model's side -------------------------------------------------------------------------------------------

    @staticmethod
    def _model_observations(model: BaseAlgorithm, observations: Any) -> Any:
        """The observations as the model's networks take them (normalised when it trains under ``VecNormalize``)."""
        normalizer = model.get_vec_normalize_env()
        if normalizer is not None:
            observations = normalizer.normalize_obs(observations)
        return model.policy.obs_to_tensor(observations)[0]

    def _policy(self, model: BaseAlgorithm, observations: Any, deterministic: bool = True) -> np.ndarray:
        with th.no_grad():
            return model.policy._predict(self._model_observations(model, observations), deterministic).cpu().numpy()

    def _behaviour_action(self, model: BaseAlgorithm, observation: Any, noise: ActionNoise | None) -> np.ndarray:
        """As in training: the policy (SAC: a sample of it) plus exploration noise, clipped to the box."""
        action = self._policy(model, _batch_of_one(observation), deterministic=not isinstance(model, SAC))[0]
        if noise is not None:
            action = action + noise()
        return np.clip(action, -1.0, 1.0)

    # ---- states ------------------------------------------------------------------------------------------------------

    def collect(self, model: BaseAlgorithm) -> ProbeStates:
        """``config.n_states`` states of the model's behaviour, every ``stride`` steps after ``warmup``."""
        self._check(model)
        assert self._collector is not None
        env, world, cfg = self._collector, rollout_env(self._collector), self.config
        noise = exploration_noise(model)
        observation, _ = env.reset(seed=cfg.seed)
        if noise is not None:
            noise.reset()
        kept: list[tuple] = []
        step = 0
        while len(kept) < cfg.n_states:
            keep = step >= cfg.warmup and (step - cfg.warmup) % cfg.stride == 0
            action = self._behaviour_action(model, observation, noise)
            state = snapshot(world) if keep else None
            next_observation, reward, terminated, truncated, _ = env.step(model.policy.unscale_action(action))
            self._check_finite(next_observation, reward, f"the behaviour's step {step}")
            if keep:
                kept.append((observation, state, action, next_observation, float(reward), bool(terminated)))
            observation = next_observation
            if terminated or truncated:
                observation, _ = env.reset()
                if noise is not None:
                    noise.reset()
            step += 1
        observations = _stack([k[0] for k in kept])
        states = ProbeStates(
            observations,
            [k[1] for k in kept],
            {"behaviour": np.stack([k[2] for k in kept]), "policy": self._policy(model, observations)},
            _stack([k[3] for k in kept]),
            np.array([k[4] for k in kept]),
            np.array([k[5] for k in kept], dtype=np.float64),
        )
        self.check_repeatable(model, states)
        return states

    def _check_finite(self, observation: Any, reward: Any, where: str) -> None:
        values = observation.values() if isinstance(observation, dict) else [observation]
        if not (np.isfinite(reward) and all(np.all(np.isfinite(np.asarray(value, dtype=float))) for value in values)):
            raise NonFiniteError(
                f"{self.env_name}: a non-finite reward ({reward}) or observation at {where}. The probe measures returns: "
                "an env that returns NaN or inf has no gradient to measure."
            )

    def check_repeatable(self, model: BaseAlgorithm, states: ProbeStates) -> None:
        """
        Refuse an env whose rewinding does not repeat the world, before any truth is measured from it: from the last
        collected state, the behaviour action and then ``mu`` for a few steps (one noise seed) in two env copies at
        once, twice (the second time after the copies have moved on); the four returns must agree (to a relative
        ``1e-6``: a batched forward pass of the actor may round differently from one batch size to another).

        :raise RewindError: When they do not
        """
        index = len(states.snapshots) - 1
        horizon = min(self.horizon(model), REPEAT_CHECK_STEPS)
        rollouts = ([states.snapshots[index]] * 2, states.actions["behaviour"][[index, index]], np.full(2, self.config.seed))
        returns = np.concatenate([self.rollout_returns(model, *rollouts, horizon, np.full(2, index))[0] for _ in range(2)])
        if not np.allclose(returns, returns[0], rtol=1e-6, atol=1e-9):
            raise RewindError(
                f"{self.env_name} does not repeat itself when rewound: four rollouts of {horizon} steps from one saved "
                f"state, with the same actions and noise, returned {', '.join(f'{value:.6g}' for value in returns)}. "
                "Part of its state lives where the rewinder does not look (a physics engine other than MuJoCo, a counter, "
                "a wrapper's attribute): the probe cannot measure a truth in it."
            )

    # ---- the truth ---------------------------------------------------------------------------------------------------

    def rollout_returns(
        self,
        model: BaseAlgorithm,
        snapshots: list[Snapshot],
        first_actions: np.ndarray,
        seeds: np.ndarray,
        horizon: int | None = None,
        state_index: np.ndarray | None = None,
        deadline: float | None = None,
    ) -> tuple[np.ndarray, float]:
        """
        Discounted returns of rollouts: restore a snapshot, restart the noise streams from a seed, take a first scaled
        action (clipped to the box), then follow ``mu`` for the rest of ``horizon`` steps; a termination ends the sum.

        :param model: The model whose ``mu`` and ``gamma`` the rollouts use
        :param snapshots: Where each rollout starts
        :param first_actions: Shape ``(n_rollouts, action_dim)``, scaled
        :param seeds: Shape ``(n_rollouts,)``, the noise streams' seeds
        :param horizon: Steps per rollout (default: :meth:`horizon`)
        :param state_index: Per rollout, the index of its state among the probe's, to name it in an error
        :param deadline: A ``time.perf_counter()`` value past which the rollouts stop with ``_OutOfTime``
        :return: Returns, shape ``(n_rollouts,)``, and the seconds spent stepping envs
        :raise NonFiniteError: At a NaN or infinite reward or observation
        """
        horizon = self.horizon(model) if horizon is None else horizon
        returns = np.zeros(len(snapshots))
        env_seconds = 0.0
        for start in range(0, len(snapshots), self.config.n_envs):
            chunk = range(start, min(start + self.config.n_envs, len(snapshots)))
            envs = self._env_pool(len(chunk))
            for env, i in zip(envs, chunk, strict=True):
                restore(env, snapshots[i])
                reseed_noise(env, int(seeds[i]))
            actions = np.clip(first_actions[chunk.start : chunk.stop], -1.0, 1.0)
            alive = np.ones(len(chunk), dtype=bool)
            observations: list[Any] = [None] * len(chunk)
            discount = 1.0
            for t in range(horizon):
                live = np.flatnonzero(alive)
                if t > 0:
                    actions = np.zeros_like(actions)
                    actions[live] = self._policy(model, _stack([observations[j] for j in live]))
                env_actions = model.policy.unscale_action(actions)
                tic = time.perf_counter()
                for j in live:
                    observations[j], reward, terminated, _, _ = envs[j].step(env_actions[j])
                    i = chunk.start + j
                    self._check_finite(
                        observations[j],
                        reward,
                        f"step {t} of a rollout from state {state_index[i] if state_index is not None else i}",
                    )
                    returns[i] += discount * float(reward)
                    alive[j] = not terminated
                env_seconds += time.perf_counter() - tic
                if deadline is not None and time.perf_counter() > deadline:
                    raise _OutOfTime
                discount *= model.gamma
                if not alive.any():
                    break
        return returns, env_seconds

    def truth(
        self, model: BaseAlgorithm, states: ProbeStates, rng: np.random.Generator, gram: np.ndarray | None = None
    ) -> Truth:
        """
        The smoothed gradient at every (point, scale) of the config, pairs added until precise or out of budget.

        :param gram: The actor's Gram matrix at the states (:func:`metrics.actor_gram_matrix`), for the precision
            target at the parameter level (without it, that level is not checked)
        """
        cfg = self.config
        units = [(point, scale) for point in cfg.points for scale in cfg.scales]
        n, action_dim = states.actions["behaviour"].shape
        sums = {unit: [np.zeros((n, action_dim)), np.zeros((n, action_dim))] for unit in units}
        pairs = 0
        start = time.perf_counter()
        env_seconds = 0.0
        truth: Truth | None = None
        while True:
            round_start = time.perf_counter()
            m = cfg.pairs_per_round
            # (m, units * n, d): orthogonal directions per (unit, state) within a round
            directions = orthogonal_normal(m, (len(units) * n, action_dim), antithetic=False).double().numpy()
            directions = directions.reshape(m, len(units), n, action_dim)
            centres = np.stack([states.actions[point] for point, _ in units])  # (units, n, d)
            scales = np.array([scale for _, scale in units]).reshape(1, -1, 1, 1)
            signs = np.array([1.0, -1.0]).reshape(2, 1, 1, 1, 1)
            first = centres[None, None] + signs * scales[None] * directions[None]  # (2, m, units, n, d)
            seeds = np.broadcast_to((rng.integers(0, 2**31 - 1, size=m)).reshape(1, m, 1, 1), (2, m, len(units), n)).reshape(
                -1
            )
            snaps = [states.snapshots[i] for _ in range(2 * m * len(units)) for i in range(n)]
            deadline = None if cfg.max_seconds is None else start + cfg.max_seconds
            try:
                returns, seconds = self.rollout_returns(
                    model,
                    snaps,
                    first.reshape(-1, action_dim),
                    seeds,
                    None,
                    np.tile(np.arange(n), 2 * m * len(units)),
                    deadline,
                )
            except _OutOfTime:
                if truth is None:
                    raise TimeoutError(
                        f"The probe's first round ({len(snaps)} rollouts of {self.horizon(model)} steps) did not finish "
                        f"within max_seconds={cfg.max_seconds}: lower horizon, n_states or pairs_per_round, or allow "
                        "more time"
                    ) from None
                truth.seconds, truth.env_seconds = time.perf_counter() - start, env_seconds
                return truth
            env_seconds += seconds
            returns = returns.reshape(2, m, len(units), n, 1)
            contributions = (returns[0] - returns[1]) * directions / (2 * scales)  # (m, units, n, d)
            for u, unit in enumerate(units):
                sums[unit][0] += contributions[0::2, u].sum(axis=0)
                sums[unit][1] += contributions[1::2, u].sum(axis=0)
            pairs += m
            truth = Truth({unit: (s[0] / (pairs / 2), s[1] / (pairs / 2)) for unit, s in sums.items()}, pairs, 0.0, 0.0)
            if not all(np.all(np.isfinite(half)) for halves in truth.halves.values() for half in halves):
                raise NonFiniteError(f"{self.env_name}: the truth overflowed (returns too large to difference)")
            precise = cfg.target_split_half is not None and all(
                split >= cfg.target_split_half
                for unit in units
                for level, split in truth.split_half(*unit, gram).items()
                if level in cfg.precision_levels
            )
            elapsed, round_time = time.perf_counter() - start, time.perf_counter() - round_start
            over_time = cfg.max_seconds is not None and elapsed + round_time > cfg.max_seconds
            if precise or pairs + m > cfg.max_pairs or over_time:
                truth.seconds, truth.env_seconds = time.perf_counter() - start, env_seconds
                return truth

    # ---- signals and scores --------------------------------------------------------------------------------------------

    def _batch(self, model: BaseAlgorithm, states: ProbeStates) -> ReplayBufferSamples | DictReplayBufferSamples:
        """The behaviour transitions as a replay batch (rewards normalised as the model's buffer would hold them)."""
        rewards = states.rewards
        normalizer = model.get_vec_normalize_env()
        if normalizer is not None:
            rewards = normalizer.normalize_reward(rewards)
        device = model.device
        column = lambda array: th.as_tensor(np.asarray(array, dtype=np.float32), device=device).reshape(-1, 1)  # noqa: E731
        samples = ReplayBufferSamples if not isinstance(states.observations, dict) else DictReplayBufferSamples
        return samples(
            observations=self._model_observations(model, states.observations),
            actions=th.as_tensor(states.actions["behaviour"], dtype=th.float32, device=device),
            next_observations=self._model_observations(model, states.next_observations),
            dones=column(states.dones),
            rewards=column(rewards),
        )

    @staticmethod
    def _actor_gram(model: BaseAlgorithm, observations: Any) -> np.ndarray:
        """The actor's Gram matrix at the states (:func:`metrics.actor_gram_matrix`), for the parameter level."""
        with th.enable_grad():
            return metrics.actor_gram_matrix(policy_actions(model, observations), list(model.actor.parameters()))

    @contextmanager
    def _isolated(self, model: BaseAlgorithm) -> Iterator[np.random.Generator]:
        """
        Within the block: the probe's own seeded random streams (torch's and numpy's global ones included: the
        model's action noise draws from numpy's) and the model in evaluation mode; afterwards, all as they were.
        """
        numpy_state = np.random.get_state()
        was_training = model.policy.training
        model.policy.set_training_mode(False)
        try:
            with th.random.fork_rng(devices=[]):
                th.manual_seed(self.config.seed)
                np.random.seed(self.config.seed)
                yield np.random.default_rng(self.config.seed)
        finally:
            np.random.set_state(numpy_state)
            model.policy.set_training_mode(was_training)

    def measure(self, model: BaseAlgorithm) -> "Measurement":
        """
        Collect states and measure the truth there: what needs the simulator and the model's actor only (the
        expensive part; see :meth:`score` for the rest). The model's random state, training mode and weights are left
        as they were.
        """
        with self._isolated(model) as rng:
            tic = time.perf_counter()
            states = self.collect(model)
            gram = self._actor_gram(model, self._model_observations(model, states.observations))
            collect_s = time.perf_counter() - tic
            truth = self.truth(model, states, rng, gram)
        info = {
            "algo": type(model).__name__,
            "num_timesteps": int(model.num_timesteps),
            "n_states": self.config.n_states,
            "pairs": truth.pairs,
            "horizon": self.horizon(model),
            "gamma": float(model.gamma),
            "rollouts": 2 * truth.pairs * len(self.config.points) * len(self.config.scales) * self.config.n_states,
            "collect_s": round(collect_s, 2),
            "truth_s": round(truth.seconds, 2),
            "truth_env_s": round(truth.env_seconds, 2),
            "config": asdict(self.config),
        }
        return Measurement(states, truth, info)

    def score(self, model: BaseAlgorithm, measurement: "Measurement") -> ProbeResult:
        """
        Read the model's signals at the measured states and score them against the measured truth. ``model`` is the
        one measured, or the same checkpoint loaded again (with its critics and, for DenoisePG, its denoiser).
        """
        cfg = self.config
        check_model(model)
        with self._isolated(model) as rng:
            tic = time.perf_counter()
            states = measurement.states
            batch = self._batch(model, states)
            points = {
                point: th.as_tensor(states.actions[point], dtype=th.float32, device=model.device) for point in cfg.points
            }
            signals, extras = model_signals(
                model, batch.observations, points, cfg.scales, batch, cfg.critic_directions, cfg.estimate_draws
            )
            arrays = {key: signal.detach().cpu().double().numpy() for key, signal in signals.items()}
            for (name, point, _), array in arrays.items():
                if not np.all(np.isfinite(array)):
                    raise NonFiniteError(f"{self.env_name}: the model's signal {name!r} at the {point} action is not finite")
            rows = score_signals(arrays, measurement.truth, self._actor_gram(model, batch.observations), cfg, rng)
            seconds = time.perf_counter() - tic
        return ProbeResult(rows, {**measurement.info, "score_s": round(seconds, 2), **extras}, arrays)

    def run(self, model: BaseAlgorithm) -> ProbeResult:
        """:meth:`measure` then :meth:`score`: every signal of the model against the truth at its states."""
        return self.score(model, self.measure(model))


@dataclass
class Measurement:
    """
    The states of a probe and the truth there: all a model's signals need to be scored
    (:meth:`GradientTruthProbe.score`), with no simulator. Saved as one ``.npz`` file (the snapshots are not kept:
    the truth is already measured).

    :param states: The states (their snapshots may be empty)
    :param truth: The truth at every (point, scale)
    :param info: What was measured and how (model, steps, pairs, horizon, timings, the probe's config)
    """

    states: ProbeStates
    truth: Truth
    info: dict[str, Any]

    def save(self, path: str | Path) -> None:
        if isinstance(self.states.observations, dict):
            raise ValueError("Saving a measurement of dict observations is not supported")
        arrays = {
            "observations": self.states.observations,
            "next_observations": self.states.next_observations,
            "rewards": self.states.rewards,
            "dones": self.states.dones,
            **{f"action/{point}": actions for point, actions in self.states.actions.items()},
        }
        for (point, scale), halves in self.truth.halves.items():
            arrays[f"truth/{point}/{float(scale)!r}"] = np.stack(halves)
        info = {**self.info, "truth_pairs": self.truth.pairs}
        np.savez_compressed(path, info=np.array(json.dumps(info)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Measurement":
        with np.load(path) as data:
            info = json.loads(str(data["info"]))
            actions = {key.split("/", 1)[1]: data[key] for key in data.files if key.startswith("action/")}
            halves = {}
            for key in data.files:
                if key.startswith("truth/"):
                    _, point, scale = key.split("/")
                    halves[point, float(scale)] = (data[key][0], data[key][1])
            states = ProbeStates(data["observations"], [], actions, data["next_observations"], data["rewards"], data["dones"])
            truth = Truth(halves, info.pop("truth_pairs"), info["truth_s"], info["truth_env_s"])
            return cls(states, truth, info)


def score_signals(
    signals: dict[tuple[str, str, float | None], np.ndarray],
    truth: Truth,
    gram: np.ndarray | None,
    config: ProbeConfig,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """
    Score every signal against the truth at its point and every scale, at every level, with paired differences to
    the reference signal (``critic`` at the same point); and the truth's split-half precision.

    :return: The rows of a :class:`ProbeResult`
    """
    n = next(iter(truth.halves.values()))[0].shape[0]
    counts = metrics.bootstrap_counts(n, config.n_bootstrap, rng)
    rows: list[dict[str, Any]] = []
    for point, scale in truth.halves:
        for level, split in truth.split_half(point, scale, gram).items():
            rows.append(
                dict(
                    point=point,
                    scale=scale,
                    signal="truth_split_half",
                    level=level,
                    cosine=split,
                    ceiling=metrics.split_half_ceiling(split),
                )
            )
        target = truth.gradient(point, scale)
        here = {
            name: signal for (name, at, own_scale), signal in signals.items() if at == point and own_scale in (None, scale)
        }
        scored = {name: metrics.level_cosines(signal, target, counts, gram) for name, signal in here.items()}
        reference = scored.get(REFERENCE_SIGNAL)
        for name, signal in here.items():
            for level, values in scored[name].items():
                interval = metrics.Interval.of(values)
                row = dict(point=point, scale=scale, signal=name, level=level, cosine=interval.value)
                row.update(low=interval.low, high=interval.high)
                if level == "state":
                    row["median"] = float(np.median(metrics._cosines(signal, target)))
                if reference is not None and name != REFERENCE_SIGNAL:
                    diff = metrics.Interval.of(values - reference[level])
                    row.update(diff=diff.value, diff_low=diff.low, diff_high=diff.high)
                rows.append(row)
    return rows


def exploration_noise(model: BaseAlgorithm) -> ActionNoise | None:
    """
    A copy of the model's exploration noise for the probe's behaviour, so that the model's own process (an
    Ornstein-Uhlenbeck state, say) is neither reset nor advanced; of a model trained on several envs, the first env's.
    """
    noise = getattr(model, "action_noise", None)
    if isinstance(noise, VectorizedActionNoise):
        noise = noise.noises[0]
    return copy.deepcopy(noise)


def _batch_of_one(observation: Any) -> Any:
    if isinstance(observation, dict):
        return {key: np.asarray(value)[None] for key, value in observation.items()}
    return np.asarray(observation)[None]


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


__all__ = [
    "GradientTruthProbe",
    "Measurement",
    "NonFiniteError",
    "ProbeConfig",
    "ProbeResult",
    "ProbeStates",
    "Truth",
    "score_signals",
]
