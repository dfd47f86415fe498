from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class LinearGaussianWorld(gym.Env):
    """
    A one-step world whose action gradient is known (docs/estimator.rst, "A world with a known answer").

    ``s ~ N(0, I)``; after action ``a``: ``s' = W a + C s + nu`` with ``nu ~ N(0, noise_std^2 I)``,
    reward ``r = -||s' - goal||^2``, and the episode ends. Hence
    ``Q(s, a) = E[r] = -||W a + C s - goal||^2 - obs_dim * noise_std^2`` and
    ``grad_a Q(s, a) = -2 W^T (W a + C s - goal)``.

    :param action_dim: Dimension of the action ``a`` (in ``[-1, 1]``)
    :param obs_dim: Dimension of ``s`` and ``s'``; ``action_dim`` when ``None``, so the outcome scales with it
    :param noise_std: Standard deviation of the outcome noise ``nu``: the world's stochasticity
    :param matrix_seed: Seed of the fixed random ``W``, ``C`` and ``goal`` (the world itself)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, action_dim: int = 4, obs_dim: int | None = None, noise_std: float = 0.3, matrix_seed: int = 0):
        super().__init__()
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        obs_dim = action_dim if obs_dim is None else obs_dim
        self.noise_std = float(noise_std)
        rng = np.random.default_rng(matrix_seed)
        # W well conditioned and of unit gain on average, so that every action direction matters
        self.W = rng.normal(size=(obs_dim, action_dim)) / np.sqrt(action_dim) + np.eye(obs_dim, action_dim)
        self.C = 0.5 * rng.normal(size=(obs_dim, obs_dim)) / np.sqrt(obs_dim)
        self.goal = rng.uniform(-1.0, 1.0, size=obs_dim)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(action_dim,), dtype=np.float32)
        self._state = np.zeros(obs_dim)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._state = self.np_random.normal(size=self.observation_space.shape)
        return self._state.astype(np.float32), {}

    def mean_outcome(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``E[s' | s, a] = W a + C s``, batched over leading dimensions."""
        return actions @ self.W.T + obs @ self.C.T

    def expected_reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``Q(s, a)``, batched."""
        residual = self.mean_outcome(obs, actions) - self.goal
        return -np.sum(residual**2, axis=-1) - self.goal.shape[0] * self.noise_std**2

    def true_action_gradient(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``grad_a Q(s, a) = -2 W^T (W a + C s - goal)``, batched."""
        return -2.0 * (self.mean_outcome(obs, actions) - self.goal) @ self.W

    def behaviour_transitions(
        self, n: int, tau: float, rng: np.random.Generator, mean: float = 0.2
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """
        ``n`` one-step transitions ``(obs, actions, next_obs, rewards)`` of a Gaussian behaviour policy,
        ``a ~ N(mean, tau^2 I)`` clipped to the action box: replay data for tests and measurements.

        :param n: Number of transitions
        :param tau: Standard deviation of the behaviour actions
        :param rng: Random generator of the observations, actions and outcome noise
        :param mean: Mean of the behaviour actions
        :return: Arrays of shapes ``(n, obs_dim)``, ``(n, action_dim)``, ``(n, obs_dim)`` and ``(n,)``
        """
        obs = rng.normal(size=(n, self.observation_space.shape[0]))
        actions = np.clip(mean + tau * rng.normal(size=(n, self.action_space.shape[0])), -1, 1)
        next_obs = self.mean_outcome(obs, actions) + self.noise_std * rng.normal(size=obs.shape)
        return obs, actions, next_obs, -np.sum((next_obs - self.goal) ** 2, axis=1)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        next_obs = self.mean_outcome(self._state, action) + self.noise_std * self.np_random.normal(size=self._state.shape)
        reward = -float(np.sum((next_obs - self.goal) ** 2))
        self._state = next_obs
        return next_obs.astype(np.float32), reward, True, False, {}
