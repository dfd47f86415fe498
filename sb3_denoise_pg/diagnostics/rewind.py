"""
Rewinding a simulator: save the complete state of an env, restore it into another copy of the same env, and restart
its noise streams, so that rollouts from one state can be repeated, compared and paired (common random numbers).

What can be rewound: the MuJoCo tasks (their full integration state, ``mj_getState``), classic-control tasks that
keep their state in ``env.unwrapped.state`` (Pendulum-v1, MountainCarContinuous-v0, ...), the linear-Gaussian world,
and any of these under the project's noise wrappers (``ActuatorNoise``, ``ForcePulses``) and gymnasium's
``StickyAction``, ``ClipAction`` and ``RescaleAction`` (``gym.make``'s time limit, order and checker layers may sit
anywhere: they hold nothing of the world). Any other env or wrapper is refused with an error that says which layer
cannot be restored: a wrapper that keeps state the rewinder does not know would make the "same" rollout differ between
copies, silently. That list is what the rewinder knows how to restore, not a proof that an env is restored: an env
that keeps part of its world elsewhere (a Box2D body behind a ``state`` attribute, a step counter) passes it, so the
probe also replays one saved state three times before it measures anything, and refuses the env when the three
rollouts differ (``GradientTruthProbe.check_repeatable``).
"""

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import ClipAction, OrderEnforcing, PassiveEnvChecker, RescaleAction, StickyAction, TimeLimit

from sb3_denoise_pg.envs import ActuatorNoise, ForcePulses, LinearGaussianWorld

# Bookkeeping layers of gym.make: they end or check episodes and hold nothing of the world; a rollout env drops them
BOOKKEEPING_WRAPPERS: tuple[type, ...] = (TimeLimit, OrderEnforcing, PassiveEnvChecker)
# Layers whose only state is their noise generator (restarted by reseed_noise) or that have none
STATELESS_WRAPPERS: tuple[type, ...] = (ActuatorNoise, ClipAction, RescaleAction)
# Layers with a state of their own: the attributes that hold it
STATEFUL_WRAPPERS: dict[type, tuple[str, ...]] = {
    ForcePulses: ("pulse_state",),
    StickyAction: ("last_action", "is_sticky_actions", "num_repeats", "repeats_taken"),
}


class RewindError(ValueError):
    """The env (one of its layers) cannot be saved and restored exactly."""


def _is_mujoco(env: gym.Env) -> bool:
    return hasattr(env, "model") and hasattr(env, "data") and hasattr(env, "set_state")


def rollout_env(env: gym.Env) -> gym.Env:
    """
    ``env`` without the bookkeeping layers of ``gym.make`` (time limit, order enforcing, env checker) on its outside:
    the world itself, which a rollout steps past any time limit, checked to be rewindable (:func:`check_rewindable`).

    :param env: An env, as ``gym.make`` returns it or bare
    :return: The innermost layer that is not bookkeeping, from the outside in
    """
    while isinstance(env, BOOKKEEPING_WRAPPERS):
        env = env.env  # type: ignore[attr-defined]
    check_rewindable(env)
    return env


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrappers of ``env`` from the outside in, then its base env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def check_rewindable(env: gym.Env) -> None:
    """
    Raise a :class:`RewindError` that names the first layer of ``env`` whose state cannot be saved and restored.

    :param env: A rollout env (:func:`rollout_env`)
    """
    # A bookkeeping layer inside another wrapper (StickyAction(gym.make(...))) holds nothing of the world either
    for layer in _layers(env)[:-1]:
        if not isinstance(layer, STATELESS_WRAPPERS + tuple(STATEFUL_WRAPPERS) + BOOKKEEPING_WRAPPERS):
            raise RewindError(
                f"Cannot rewind {type(layer).__name__}: its state is unknown to the rewinder. Rewindable wrappers: "
                f"{', '.join(t.__name__ for t in STATELESS_WRAPPERS + tuple(STATEFUL_WRAPPERS))}. Give an env "
                "without it (an env factory or id of the bare world)."
            )
    base = env.unwrapped
    if not (_is_mujoco(base) or isinstance(base, LinearGaussianWorld) or hasattr(base, "state")):
        raise RewindError(
            f"Cannot rewind {type(base).__name__}: it is neither a MuJoCo env, nor keeps its state in "
            "`env.unwrapped.state` (classic control), nor the linear-Gaussian world."
        )


@dataclass(frozen=True)
class Snapshot:
    """
    The complete state of a rollout env at one moment.

    :param base: The base env's state (MuJoCo: ``mj_getState`` of the integration state; otherwise a copy of its
        state attributes)
    :param wrappers: Per layer of the env (outside in), the values of its state attributes (``None`` for a layer
        without state)
    """

    base: Any
    wrappers: tuple[tuple[Any, ...] | None, ...]


def _mujoco_state_spec() -> Any:
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def snapshot(env: gym.Env) -> Snapshot:
    """
    :param env: A rollout env (:func:`rollout_env`)
    :return: Its complete state
    """
    base = env.unwrapped
    if _is_mujoco(base):
        import mujoco

        spec = _mujoco_state_spec()
        state = np.empty(mujoco.mj_stateSize(base.model, spec))  # type: ignore[attr-defined]
        mujoco.mj_getState(base.model, base.data, state, spec)  # type: ignore[attr-defined]
        base_state: Any = state
    elif isinstance(base, LinearGaussianWorld):
        base_state = base._state.copy()
    else:
        base_state = {key: copy.deepcopy(getattr(base, key)) for key in ("state", "last_u") if hasattr(base, key)}
    wrappers = tuple(
        tuple(copy.deepcopy(getattr(layer, name)) for name in STATEFUL_WRAPPERS[type(layer)])
        if type(layer) in STATEFUL_WRAPPERS
        else None
        for layer in _layers(env)[:-1]
    )
    return Snapshot(base_state, wrappers)


def restore(env: gym.Env, state: Snapshot) -> None:
    """
    Put ``env`` (a copy of the env the snapshot was taken of, or that env) in the state ``state``.

    :param env: A rollout env (:func:`rollout_env`) made like the one of the snapshot
    :param state: A :func:`snapshot`
    """
    base = env.unwrapped
    if _is_mujoco(base):
        import mujoco

        mujoco.mj_setState(base.model, base.data, state.base, _mujoco_state_spec())  # type: ignore[attr-defined]
        # As MujocoEnv.set_state: the derived quantities (positions of bodies, contacts) of the restored state
        mujoco.mj_forward(base.model, base.data)  # type: ignore[attr-defined]
    elif isinstance(base, LinearGaussianWorld):
        base._state = state.base.copy()
    else:
        for key, value in state.base.items():
            setattr(base, key, copy.deepcopy(value))
    layers = _layers(env)[:-1]
    if len(layers) != len(state.wrappers):
        raise RewindError(f"The snapshot has {len(state.wrappers)} wrappers, the env {len(layers)}: not the same env")
    for layer, values in zip(layers, state.wrappers, strict=True):
        if values is not None:
            for name, value in zip(STATEFUL_WRAPPERS[type(layer)], values, strict=True):
                setattr(layer, name, copy.deepcopy(value))


def reseed_noise(env: gym.Env, seed: int) -> None:
    """
    Restart every random stream a step of ``env`` draws from, from ``seed``: the noise wrappers' generators
    (``reseed_noise``) and the base env's ``np_random`` (the linear-Gaussian world's outcome noise, ``StickyAction``'s
    draws). Two rollouts restored to one state and reseeded with one seed see the same noise.

    :param env: A rollout env (:func:`rollout_env`)
    :param seed: The seed of the streams
    """
    for layer in _layers(env)[:-1]:
        if isinstance(layer, (ActuatorNoise, ForcePulses)):
            layer.reseed_noise(seed)
    env.unwrapped.np_random = np.random.Generator(np.random.PCG64(seed))
