"""
Shared test settings and fitted models.

Settings (each fixture returns a fresh copy, free to change):

- ``small``: small networks and batches, for tests that run ``learn`` for a few hundred steps
- ``tiny``: smaller still, for tests that only need a model to run at all

Fitted models on the linear-Gaussian world (``sb3_denoise_pg.envs.LinearGaussianWorld``), whose ``grad_a Q`` is
known (docs/estimator.rst): a DenoisePG's critic and denoiser trained on a replay buffer of one-step transitions from a
Gaussian behaviour policy (its actor untrained). Fitting takes up to a minute each, so the models are shared by the
whole session: ``known_world(**config)`` fits once per distinct configuration, and the named fixtures below are
configurations of it. A ``KnownWorld`` is shared: read it, and draw fresh batches with ``world.batch(n, seed)``;
a test that changes the model (an attribute, its weights) must work on ``copy.deepcopy(world.model)`` instead.
"""

import copy
import inspect
import os
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.envs import LinearGaussianWorld

# One torch thread per test process, for subprocesses of the tests too: pytest-xdist runs a process per core, and a
# second thread per process then fights the other process for its core (with small networks every step waits)
os.environ["OMP_NUM_THREADS"] = "1"
th.set_num_threads(1)

# MuJoCo writes each warning to MUJOCO_LOG.TXT in the working directory (the repository root) unless a handler is
# set: the tests make them Python warnings instead, which pytest reports (setup.cfg filters the known ones)
try:
    import mujoco

    mujoco.set_mju_user_warning(lambda message: warnings.warn(f"MuJoCo warning {message}", RuntimeWarning, stacklevel=1))
except ImportError:
    pass

SMALL: dict[str, Any] = dict(policy_kwargs=dict(net_arch=[32, 32]), learning_starts=50, batch_size=32, n_noise_samples=4)
TINY: dict[str, Any] = dict(policy_kwargs=dict(net_arch=[16]), learning_starts=20, batch_size=16, n_noise_samples=2)


@pytest.fixture
def small() -> dict[str, Any]:
    """``SMALL``: ``net_arch=[32, 32]``, ``learning_starts=50``, ``batch_size=32``, ``n_noise_samples=4``."""
    return copy.deepcopy(SMALL)


@pytest.fixture
def tiny() -> dict[str, Any]:
    """``TINY``: ``net_arch=[16]``, ``learning_starts=20``, ``batch_size=16``, ``n_noise_samples=2``."""
    return copy.deepcopy(TINY)


# ---- the linear-Gaussian world: fitted models --------------------------------------------------------------------


def fill_with_behaviour(model: DenoisePG, env: LinearGaussianWorld, n: int, tau: float, seed: int = 0) -> None:
    """Replay buffer of one-step transitions with Gaussian behaviour actions a ~ N(0.2, tau^2)."""
    obs, actions, next_obs, rewards = env.behaviour_transitions(n, tau, np.random.default_rng(seed))
    for i in range(n):
        model.replay_buffer.add(obs[i : i + 1], next_obs[i : i + 1], actions[i : i + 1], rewards[i : i + 1], np.ones(1), [{}])


@dataclass(frozen=True)
class KnownWorld:
    """A DenoisePG fitted on a linear-Gaussian world, the world, and the behaviour policy's spread ``tau``."""

    model: DenoisePG
    env: LinearGaussianWorld
    tau: float

    def batch(self, n: int, seed: int) -> ReplayBufferSamples:
        """``n`` fresh transitions from the behaviour policy (not in the replay buffer), the same for the same seed."""
        obs, actions, next_obs, rewards = self.env.behaviour_transitions(n, self.tau, np.random.default_rng(seed))
        to_torch = self.model.replay_buffer.to_torch
        columns = (obs, actions, next_obs, np.ones((n, 1)), rewards.reshape(-1, 1))
        return ReplayBufferSamples(*(to_torch(column.astype(np.float32)) for column in columns))

    def true_gradient(self, batch: ReplayBufferSamples) -> np.ndarray:
        """The world's ``grad_a Q(s, a)`` at the batch's observations and actions, ``(batch, action_dim)``."""
        obs, actions = batch.observations.cpu().numpy(), batch.actions.cpu().numpy()
        return self.env.true_action_gradient(obs.astype(np.float64), actions.astype(np.float64))

    def agreement(self, batch: ReplayBufferSamples, model: DenoisePG | None = None) -> tuple[float, float, float]:
        """
        How ``action_gradient`` of ``model`` (default: the fitted one) agrees with the true ``grad_a Q`` on ``batch``,
        with the noise drawn from seed 1: batch-mean cosine, mean per-transition cosine, and the norm ratio of the
        batch means.
        """
        th.manual_seed(1)
        estimate = (model or self.model).action_gradient(batch).cpu().numpy().astype(np.float64)
        truth = self.true_gradient(batch)
        mean_estimate, mean_truth = estimate.mean(0), truth.mean(0)
        batch_cosine = mean_estimate @ mean_truth / np.linalg.norm(mean_estimate) / np.linalg.norm(mean_truth)
        norms = np.linalg.norm(estimate, axis=1) * np.linalg.norm(truth, axis=1) + 1e-12
        per_transition = np.sum(estimate * truth, 1) / norms
        ratio = np.linalg.norm(mean_estimate) / np.linalg.norm(mean_truth)
        return float(batch_cosine), float(per_transition.mean()), float(ratio)


def fit_known_world(
    action_dim: int = 4,
    noise_std: float = 0.3,
    sigma: float = 0.1,
    n_transitions: int = 10_000,
    gradient_steps: int = 1500,
    seed: int = 0,
    tau: float = 0.3,
    batch_size: int = 256,
    algo_class: type[DenoisePG] = DenoisePG,
    **model_kwargs: Any,
) -> KnownWorld:
    """
    Fit a DenoisePG on ``LinearGaussianWorld(action_dim, noise_std=noise_std)`` (its world matrices of seed 0).

    :param action_dim: The world's action dimension (and its observation dimension)
    :param noise_std: The world's outcome noise: 0.3 noisy, 0.02 nearly deterministic
    :param sigma: The model's ``denoiser_sigma``
    :param n_transitions: Replay buffer size, of behaviour actions ``a ~ N(0.2, tau^2)``
    :param gradient_steps: Updates of the critic and the denoiser, as ``model.train`` makes them, on minibatches of
        ``batch_size`` transitions. The actor is left as it was built: the estimate at the data does not involve it,
        and its updates (the estimate at 32 draws) were three quarters of a fit's time
    :param seed: The model's seed and the replay data's
    :param algo_class: ``DenoisePG`` or a subclass (the benchmarks' ablation variants)
    :param model_kwargs: More DenoisePG arguments; by default ``n_noise_samples=32``, ``net_arch=[128, 128]`` and a
        denoiser of the critic's size (the tests' margins were measured with it)
    """
    env = LinearGaussianWorld(action_dim=action_dim, noise_std=noise_std)
    kwargs = dict(n_noise_samples=32, policy_kwargs=dict(net_arch=[128, 128], denoiser_net_arch=None)) | model_kwargs
    model = algo_class("MlpPolicy", env, seed=seed, denoiser_sigma=sigma, **kwargs)
    model.set_logger(configure(None, []))
    fill_with_behaviour(model, env, n=n_transitions, tau=tau, seed=seed)
    stats: dict[str, list[float]] = defaultdict(list)
    for _ in range(gradient_steps):
        batch = model.replay_buffer.sample(batch_size)
        model._update_critic(batch, model.td_target(batch), stats)
        model._update_denoiser(batch, stats)
    return KnownWorld(model, env, tau)


@pytest.fixture(scope="session")
def known_world() -> Callable[..., KnownWorld]:
    """``known_world(**config)``: ``fit_known_world(**config)``, fitted once per distinct config in the session."""
    fitted: dict[str, KnownWorld] = {}

    def get(**config: Any) -> KnownWorld:
        arguments = inspect.signature(fit_known_world).bind(**config)
        arguments.apply_defaults()
        model_kwargs = arguments.arguments.pop("model_kwargs")
        key = repr(sorted(arguments.arguments.items()) + sorted(model_kwargs.items()))
        if key not in fitted:
            fitted[key] = fit_known_world(**config)
        return fitted[key]

    return get


@pytest.fixture(scope="session")
def noisy_world_4d(known_world) -> KnownWorld:
    """The noisy world (noise_std 0.3) at action dimension 4, sigma 0.1, 10k transitions, 1500 gradient steps."""
    return known_world(action_dim=4, noise_std=0.3)


@pytest.fixture(scope="session")
def quiet_world_16d(known_world) -> KnownWorld:
    """The nearly deterministic world (noise_std 0.02) at action dimension 16, otherwise as ``noisy_world_4d``."""
    return known_world(action_dim=16, noise_std=0.02)
