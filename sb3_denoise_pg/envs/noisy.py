"""
Noisy worlds: standard gymnasium tasks made stochastic, the case DenoisePG targets.

Every source of noise is a small wrapper whose randomness comes from its own generator, seeded from
``reset(seed=...)``: seeded runs are reproducible, and the noise never shifts the base env's ``np_random``
stream, so with every noise parameter at zero the transitions are exactly the base env's, episode after episode.
"""

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from gymnasium.wrappers import StickyAction

# Standard gravity, the unit of the force pulses' magnitude (in robot weights)
STANDARD_GRAVITY = 9.81


def _noise_rng(seed: int | None, stream: int) -> np.random.Generator:
    """
    A generator for one noise source: reproducible from the reset seed, independent of the base env's
    ``np_random`` and of the other noise sources (distinct ``stream``), fresh entropy when ``seed`` is ``None``.

    :param seed: The seed given to ``reset``
    :param stream: Index of the noise source
    :return: The generator
    """
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


class ActuatorNoise(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """
    Executes ``clip(a + eps, low, high)`` instead of the agent's action ``a``, with
    ``eps ~ N(0, (noise_std * (high - low) / 2)^2)`` drawn independently per dimension and per step:
    the noise standard deviation is relative to half the range of the (bounded) ``Box`` action space.
    With ``noise_std=0`` the action passes through untouched (not even clipped).

    :param env: Environment with a bounded ``Box`` action space
    :param noise_std: Noise standard deviation, as a fraction of half the action range
    """

    _STREAM = 1

    def __init__(self, env: gym.Env, noise_std: float = 0.1):
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"ActuatorNoise needs a Box action space, got {env.action_space}")
        if not env.action_space.is_bounded():
            raise ValueError(f"ActuatorNoise needs a bounded action space, got {env.action_space}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        gym.utils.RecordConstructorArgs.__init__(self, noise_std=noise_std)
        gym.ActionWrapper.__init__(self, env)
        self.noise_std = float(noise_std)
        low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        self._low, self._high = low, high
        self._noise_scale = self.noise_std * (high - low) / 2.0
        self._rng = _noise_rng(None, self._STREAM)

    def reseed_noise(self, seed: int | None) -> None:
        """
        Restart the noise stream from ``seed`` without resetting the env, as ``reset(seed=seed)`` would start it:
        two rollouts from one restored state that reseed with the same seed see the same noise (common random
        numbers, ``sb3_denoise_pg.diagnostics``).

        :param seed: The seed; ``None`` for fresh entropy
        """
        self._rng = _noise_rng(seed, self._STREAM)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.reseed_noise(seed)
        return super().reset(seed=seed, options=options)

    def action(self, action: np.ndarray) -> np.ndarray:
        if self.noise_std == 0.0:
            return action
        noisy = np.asarray(action, dtype=np.float64) + self._noise_scale * self._rng.standard_normal(self._noise_scale.shape)
        return np.clip(noisy, self._low, self._high).astype(self.action_space.dtype)


class ForcePulses(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """
    Random pushes on a MuJoCo robot: before each step, when no pulse is under way, with probability
    ``pulse_prob`` a body drawn uniformly (the world body excluded) receives a force of norm
    ``pulse_magnitude`` times the robot's weight (total mass times standard gravity), in a direction uniform
    on the sphere, applied at its center of mass (``data.xfrc_applied``) for ``pulse_duration`` steps.
    The pulses are not observed: the agent sees only their effect.
    ``info["force_pulse_body"]`` is the body pushed during the step, ``-1`` when none.

    :param env: A MuJoCo environment (its unwrapped env has ``model`` and ``data``)
    :param pulse_prob: Probability per step of starting a pulse
    :param pulse_magnitude: Force norm, in units of the robot's weight
    :param pulse_duration: Number of steps a pulse lasts
    """

    _STREAM = 2

    def __init__(self, env: gym.Env, pulse_prob: float = 0.02, pulse_magnitude: float = 0.5, pulse_duration: int = 2):
        if not (hasattr(env.unwrapped, "model") and hasattr(env.unwrapped, "data")):
            raise TypeError(f"ForcePulses needs a MuJoCo environment, got {env.unwrapped}")
        if not 0 <= pulse_prob <= 1:
            raise ValueError(f"pulse_prob must be in [0, 1], got {pulse_prob}")
        if pulse_magnitude < 0:
            raise ValueError(f"pulse_magnitude must be >= 0, got {pulse_magnitude}")
        if pulse_duration < 1:
            raise ValueError(f"pulse_duration must be >= 1, got {pulse_duration}")
        gym.utils.RecordConstructorArgs.__init__(
            self, pulse_prob=pulse_prob, pulse_magnitude=pulse_magnitude, pulse_duration=pulse_duration
        )
        gym.Wrapper.__init__(self, env)
        model = env.unwrapped.model  # type: ignore[attr-defined]
        if model.nbody < 2:
            raise ValueError("ForcePulses needs at least one body besides the world body")
        self.pulse_prob = float(pulse_prob)
        self.pulse_magnitude = float(pulse_magnitude)
        self.pulse_duration = int(pulse_duration)
        self._force_norm = self.pulse_magnitude * float(np.sum(model.body_mass[1:])) * STANDARD_GRAVITY
        self._rng = _noise_rng(None, self._STREAM)
        self._body = -1
        self._steps_left = 0

    def _end_pulse(self) -> None:
        self.unwrapped.data.xfrc_applied[:] = 0.0  # type: ignore[attr-defined]
        self._body = -1
        self._steps_left = 0

    def reseed_noise(self, seed: int | None) -> None:
        """
        Restart the pulses' random stream from ``seed`` without resetting the env (see ``ActuatorNoise.reseed_noise``);
        a pulse under way goes on.

        :param seed: The seed; ``None`` for fresh entropy
        """
        self._rng = _noise_rng(seed, self._STREAM)

    @property
    def pulse_state(self) -> tuple[int, int]:
        """The pulse under way, ``(body, steps left)`` (``(-1, 0)`` when none): with the simulator's state (its
        ``xfrc_applied``), what a rewound copy of the env needs to go on exactly as this one."""
        return self._body, self._steps_left

    @pulse_state.setter
    def pulse_state(self, state: tuple[int, int]) -> None:
        self._body, self._steps_left = int(state[0]), int(state[1])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.reseed_noise(seed)
        self._end_pulse()
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._steps_left == 0 and self._rng.random() < self.pulse_prob:
            self._body = int(self._rng.integers(1, self.unwrapped.model.nbody))  # type: ignore[attr-defined]
            direction = self._rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            self.unwrapped.data.xfrc_applied[self._body, :3] = self._force_norm * direction  # type: ignore[attr-defined]
            self._steps_left = self.pulse_duration
        body = self._body
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["force_pulse_body"] = body
        if self._steps_left > 0:
            self._steps_left -= 1
            if self._steps_left == 0:
                self._end_pulse()
        return obs, reward, terminated, truncated, info


def make_noisy_env(
    base_id: str,
    actuator_noise_std: float = 0.0,
    sticky_prob: float = 0.0,
    pulse_prob: float = 0.0,
    pulse_magnitude: float = 0.5,
    pulse_duration: int = 2,
    **base_kwargs: Any,
) -> gym.Env:
    """
    Entry point of the noisy ids: the base env, bare, under the noise wrappers. The agent's action goes
    through ``StickyAction`` (when ``sticky_prob > 0``), then ``ActuatorNoise``, then ``ForcePulses``
    (when ``pulse_prob > 0``) and the base env: a repeated action is the agent's previous one, with fresh noise.

    The time limit, order enforcing and env checker come from ``gym.make`` and the registered spec
    (which copies the base env's ``max_episode_steps``): call this function directly and there is no time limit.

    :param base_id: Gymnasium id of the base env, e.g. ``"Pendulum-v1"``
    :param actuator_noise_std: Std of the noise on the executed action, relative to half the action range (``ActuatorNoise``)
    :param sticky_prob: Probability of executing the previous action instead of the new one (gymnasium's ``StickyAction``);
        its draws come from the base env's ``np_random``, as in gymnasium
    :param pulse_prob: Probability per step of starting a force pulse (``ForcePulses``, MuJoCo envs only)
    :param pulse_magnitude: Force of a pulse, in units of the robot's weight
    :param pulse_duration: Number of steps a pulse lasts
    :param base_kwargs: Keyword arguments of the base env (they override those of its spec), ``render_mode`` included
    :return: The wrapped env
    """
    base_spec = gym.spec(base_id)
    creator = base_spec.entry_point if callable(base_spec.entry_point) else load_env_creator(base_spec.entry_point)
    env: gym.Env = creator(**{**base_spec.kwargs, **base_kwargs})
    if pulse_prob > 0:
        env = ForcePulses(env, pulse_prob=pulse_prob, pulse_magnitude=pulse_magnitude, pulse_duration=pulse_duration)
    if isinstance(env.action_space, spaces.Box) or actuator_noise_std > 0:
        env = ActuatorNoise(env, noise_std=actuator_noise_std)
    if sticky_prob > 0:
        env = StickyAction(env, repeat_action_probability=sticky_prob)
    return env
