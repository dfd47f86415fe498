"""
What DenoisePG accepts: the range of each hyperparameter, the action spaces it can act in, and the options that left
the library (refused by name when a saved model or ``load()`` still has them). Checked at construction and at load,
so that a bad value is a ``ValueError`` naming it, never an assert or a NaN later.
"""

import io
import math
import pathlib
import zipfile
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import json_to_data, open_path
from stable_baselines3.common.type_aliases import GymEnv

from sb3_denoise_pg.denoise_pg.policies import with_default_denoiser

SelfChecked = TypeVar("SelfChecked", bound="HyperparameterChecks")

# Options that left the library: the value that made each a no-op, and the version that no longer has it. They live
# on, for the ablations, in benchmarks.ablation_variants.AblationDenoisePG.
REMOVED_OPTIONS: dict[str, tuple[Any, str]] = {
    "baseline_action": ("noised", "0.2.0"),
    "baseline_reduction": ("mean", "0.2.0"),
    "actor_batch_window": (None, "0.2.0"),
    "condition_on_reward": (True, "0.2.0"),
    "orthogonal_noise": (False, "0.3.0"),
    "actor_gradient": ("direct", "0.3.0"),
}


class ActionSpaceError(ValueError, AssertionError):
    """
    An action space DenoisePG cannot act in. A ``ValueError``, the error of bad input here; also an
    ``AssertionError``, what Stable-Baselines3's algorithms raise for an unsupported action space, so that code
    written for either convention catches it.
    """


def check_action_space(action_space: spaces.Space) -> None:
    """
    Raise an :class:`ActionSpaceError` unless ``action_space`` is a bounded ``Box``: the estimator works in SB3's
    scaled action space ``[-1, 1]^d``, which needs finite bounds.
    """
    if not isinstance(action_space, spaces.Box):
        raise ActionSpaceError(
            f"DenoisePG needs a continuous Box action space, got {action_space}. "
            "For discrete actions use DQN, PPO or another algorithm that supports them."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ActionSpaceError(f"DenoisePG needs a Box action space with finite bounds, got {action_space}.")


def _require(condition: bool, requirement: str, value: Any) -> None:
    """Raise a ``ValueError`` that states ``requirement`` and the value given, unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{requirement}, got {value!r}")


def _is_number(value: Any) -> bool:
    """A finite real number (numpy scalars included, booleans not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    """A boolean (numpy's included): a string such as ``"no"`` is not, though it is truthy."""
    return isinstance(value, (bool, np.bool_))


class HyperparameterChecks:
    """
    The checks of :class:`~sb3_denoise_pg.DenoisePG`'s hyperparameters, policy, losses and removed options, as methods
    a subclass can extend (the ablation variants add their own options); and a ``load`` that refuses removed options
    passed to it and explains a file whose networks do not fit.
    """

    # Saved options a model of this class refuses to load (a subclass that still has them empties it)
    removed_options: ClassVar[dict[str, tuple[Any, str]]] = REMOVED_OPTIONS
    # Options that must be booleans (a string such as "no" is truthy)
    _switches: ClassVar[tuple[str, ...]] = ("antithetic", "normalize_action_gradient", "center_advantages")

    def _check_sigma(self) -> None:
        _require(
            _is_number(self.denoiser_sigma) and self.denoiser_sigma > 0,
            "denoiser_sigma must be a finite number > 0 (sigma levels and schedules are ablation variants: "
            "benchmarks.ablation_variants.AblationDenoisePG)",
            self.denoiser_sigma,
        )

    def _check_hyperparameters(self) -> None:
        """Raise a ``ValueError`` naming the first hyperparameter out of its range (at construction and at load)."""
        self._check_sigma()
        _require(_is_integer(self.batch_size) and self.batch_size >= 1, "batch_size must be an integer >= 1", self.batch_size)
        for name in self._switches:
            _require(_is_bool(getattr(self, name)), f"{name} must be True or False", getattr(self, name))
        _require(
            _is_integer(self.n_noise_samples) and self.n_noise_samples >= 1,
            "n_noise_samples must be an integer >= 1",
            self.n_noise_samples,
        )
        _require(
            _is_number(self.cond_dropout) and 0 <= self.cond_dropout < 1, "cond_dropout must be in [0, 1)", self.cond_dropout
        )
        _require(
            self.denoiser_condition in ("outcome", "td_target"),
            "denoiser_condition must be 'outcome' or 'td_target'",
            self.denoiser_condition,
        )
        _require(
            _is_integer(self.policy_delay) and self.policy_delay >= 1,
            "policy_delay must be an integer >= 1",
            self.policy_delay,
        )
        _require(
            self.actor_kernel_width is None or (_is_number(self.actor_kernel_width) and self.actor_kernel_width > 0),
            "actor_kernel_width must be None or a finite number > 0",
            self.actor_kernel_width,
        )
        _require(
            _is_number(self.actor_preactivation_penalty) and self.actor_preactivation_penalty >= 0,
            "actor_preactivation_penalty must be a finite number >= 0",
            self.actor_preactivation_penalty,
        )
        cv = self.critic_control_variate
        _require(
            cv is None or cv == "optimal" or (_is_number(cv) and 0 <= cv <= 1),
            "critic_control_variate must be None, 'optimal' or a number in [0, 1]",
            cv,
        )

    def _check_removed_options(self) -> None:
        """A model saved with an option the library no longer has: dropped at its no-op value, refused otherwise."""
        saved = {name: self.__dict__.pop(name) for name in self.removed_options if name in self.__dict__}
        self._refuse_removed_options(saved, "This model was saved with")

    @classmethod
    def _refuse_removed_options(cls, values: dict[str, Any], source: str) -> None:
        """Refuse any of ``values`` that is an option the library no longer has, at a value other than its no-op one.

        :param values: Option names and their values (those that are not removed options are ignored)
        :param source: Where the values came from, the start of the message ("load() was given", ...)
        """
        for name, value in values.items():
            if name not in cls.removed_options:
                continue
            no_op, version = cls.removed_options[name]
            if value != no_op:
                raise ValueError(
                    f"{source} {name}={value!r}, an option DenoisePG no longer has (since version {version}; only "
                    f"{name}={no_op!r} loads into DenoisePG). Load it with benchmarks.ablation_variants.AblationDenoisePG, "
                    "which keeps the ablation-only options."
                )

    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        if policy_name not in self.policy_aliases:
            raise ValueError(f"policy must be one of {sorted(self.policy_aliases)} or a policy class, got {policy_name!r}")
        return self.policy_aliases[policy_name]

    def _checked(self, name: str, loss: th.Tensor) -> float:
        """Return the loss as a float, or raise before a non-finite value reaches the weights."""
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"DenoisePG: non-finite {name} ({value}) at update step {self._n_updates}. "
                "Check the rewards and observations for NaN/inf, or lower the learning rate."
            )
        return value

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfChecked],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfChecked:
        # Refused as an argument here, not later as if the file had it
        cls._refuse_removed_options(kwargs, "load() was given")
        given = kwargs.get("policy_kwargs")
        if isinstance(given, dict) and "denoiser_net_arch" not in given:
            # The parent refuses policy_kwargs that differ from the saved ones: read the caller's as the constructor
            # does, unless the model was saved before 0.4.0, whose constructor added no default denoiser size
            if "denoiser_net_arch" in cls._saved_policy_kwargs(path, custom_objects):
                kwargs["policy_kwargs"] = with_default_denoiser(given)
        try:
            return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        except RuntimeError as error:
            if "state_dict" not in str(error):
                raise
            # torch's message lists keys and shapes: say which options can cause it
            raise ValueError(
                "The saved parameters do not fit this model's networks: an option that shapes them (policy_kwargs, "
                "the spaces) differs from the saved model's. Load without changing it."
            ) from error

    @staticmethod
    def _saved_policy_kwargs(path: str | pathlib.Path | io.BufferedIOBase, custom_objects: dict[str, Any] | None) -> dict:
        """The ``policy_kwargs`` a saved model records; a file object is left where it was, for the real load."""
        # Only the archive's "data" entry: its parameters are loaded once, by the real load
        start = path.tell() if isinstance(path, io.IOBase) else None
        file = open_path(path, "r", verbose=0, suffix="zip")
        try:
            with zipfile.ZipFile(file) as archive:
                data = json_to_data(archive.read("data").decode(), custom_objects) if "data" in archive.namelist() else {}
        finally:
            if start is None:
                file.close()
            else:
                path.seek(start)
        return (data or {}).get("policy_kwargs") or {}
