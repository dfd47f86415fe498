from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class LinearGaussianWorld(gym.Env):
    """
    A one-step world whose action gradient is known (docs/estimator.rst, "A world with a known answer").

    ``s ~ N(0, I)``; after action ``a``: ``s' = W a + C s + nu`` with ``nu ~ N(0, v(a) I)``,
    reward ``r = -||s' - goal||^2``, and the episode ends. Hence
    ``Q(s, a) = E[r] = -||W a + C s - goal||^2 - obs_dim * v(a)`` and
    ``grad_a Q(s, a) = -2 W^T (W a + C s - goal) - obs_dim * grad_a v(a)``.

    With ``relevant_dims=k``, only the first ``k`` action dimensions move the state (the columns of ``W`` beyond are
    zero): the others are *distractor actuators*. They move nothing; with ``distractor_noise = e > 0`` their only
    effect is to add noise, ``v(a) = noise_std^2 + e^2 mean_j a_j^2`` over the distractors, so that the best policy
    holds them at zero. Without distractors ``v(a) = noise_std^2``.

    :param action_dim: Dimension of the action ``a`` (in ``[-1, 1]``)
    :param obs_dim: Dimension of ``s`` and ``s'``; ``action_dim`` when ``None``, so the outcome scales with it
    :param noise_std: Standard deviation of the outcome noise ``nu``: the world's stochasticity
    :param matrix_seed: Seed of the fixed random ``W``, ``C`` and ``goal`` (the world itself)
    :param relevant_dims: How many action dimensions move the state (the first ones); ``None``: all
    :param distractor_noise: The outcome noise a distractor adds per unit of its action (RMS over the distractors)
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        action_dim: int = 4,
        obs_dim: int | None = None,
        noise_std: float = 0.3,
        matrix_seed: int = 0,
        relevant_dims: int | None = None,
        distractor_noise: float = 0.0,
    ):
        super().__init__()
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        relevant_dims = action_dim if relevant_dims is None else relevant_dims
        if not 1 <= relevant_dims <= action_dim:
            raise ValueError(f"relevant_dims must be in [1, action_dim={action_dim}], got {relevant_dims}")
        if distractor_noise < 0 or (distractor_noise > 0 and relevant_dims == action_dim):
            raise ValueError(f"distractor_noise must be >= 0, and 0 without distractors, got {distractor_noise}")
        obs_dim = (action_dim if relevant_dims == action_dim else relevant_dims) if obs_dim is None else obs_dim
        self.noise_std = float(noise_std)
        self.relevant_dims = relevant_dims
        self.distractor_noise = float(distractor_noise)
        rng = np.random.default_rng(matrix_seed)
        # W well conditioned and of unit gain on average, so that every relevant action direction matters
        self.W = rng.normal(size=(obs_dim, relevant_dims)) / np.sqrt(relevant_dims) + np.eye(obs_dim, relevant_dims)
        self.W = np.concatenate([self.W, np.zeros((obs_dim, action_dim - relevant_dims))], axis=1)
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

    def outcome_std(self, actions: np.ndarray) -> np.ndarray:
        """``sqrt(v(a))``, the standard deviation of each outcome dimension's noise, batched: shape ``(..., 1)``."""
        distractors = actions[..., self.relevant_dims :]
        variance = self.noise_std**2 + (self.distractor_noise**2 * np.mean(distractors**2, axis=-1) if distractors.size else 0)
        return np.sqrt(np.asarray(variance))[..., None]

    def sample_outcome(self, obs: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``s'`` of each ``(s, a)``, batched, its noise drawn from ``rng``."""
        mean = self.mean_outcome(obs, actions)
        return mean + self.outcome_std(actions) * rng.normal(size=mean.shape)

    def expected_reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``Q(s, a)``, batched."""
        residual = self.mean_outcome(obs, actions) - self.goal
        return -np.sum(residual**2, axis=-1) - self.goal.shape[0] * self.outcome_std(actions)[..., 0] ** 2

    def true_action_gradient(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``grad_a Q(s, a) = -2 W^T (W a + C s - goal) - obs_dim grad_a v(a)``, batched."""
        gradient = -2.0 * (self.mean_outcome(obs, actions) - self.goal) @ self.W
        n_distractors = actions.shape[-1] - self.relevant_dims
        if self.distractor_noise > 0:
            scale = self.goal.shape[0] * self.distractor_noise**2 * 2.0 / n_distractors
            gradient[..., self.relevant_dims :] -= scale * actions[..., self.relevant_dims :]
        return gradient

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
        next_obs = self.sample_outcome(obs, actions, rng)
        return obs, actions, next_obs, -np.sum((next_obs - self.goal) ** 2, axis=1)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        next_obs = self.sample_outcome(self._state, action, self.np_random)
        reward = -float(np.sum((next_obs - self.goal) ** 2))
        self._state = next_obs
        return next_obs.astype(np.float32), reward, True, False, {}
