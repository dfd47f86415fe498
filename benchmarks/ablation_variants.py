"""
The ablation-only variants of DenoisePG: options that the library's ablations measured and did not keep, so that
every committed ablation stays reproducible without the library carrying them (``benchmarks.ablation``). A model
saved with one of them (by sb3-denoise-pg 0.1.0 to 0.3.0, where they were options of ``DenoisePG``) loads with
``AblationDenoisePG.load``.

- ``baseline_action="clean"``: the baseline at the clean replay action ``b(s, a)`` instead of ``b(s, a~)``; biased
  (docs/estimator.rst, "The baseline"), it never learned.
- ``baseline_reduction``: ``"min"`` (clipped double-Q) or ``"first"`` (one critic, half the cost) instead of the mean
  of the twin critics.
- ``actor_batch_window``: the actor's batch from the most recent transitions only (it hurt).
- ``condition_on_reward=False``: the denoiser's outcome without the reward (it hurt where the reward depends on the
  action directly).
- ``denoiser_sigma`` as several levels (a list: each transition of a batch draws one, for the denoiser's training and
  for the estimate) or as a schedule of the progress remaining (no gain over one level).
- ``ResidualDenoiser`` (``use_residual_denoiser``): the conditional denoiser as the unconditional one plus a learned
  difference, so that errors common to both cancel in the score difference (``benchmarks.residual_denoiser``).
- ``actor_gradient="regression"``: the actor follows a head ``G_omega(s, a)`` regressed on the estimates at their
  ``(s, a~)`` and evaluated at ``mu_theta(s)`` (docs/estimator.rst, "From the estimate to the actor"); on Pendulum-v1
  level with following the estimates directly and with TD3, within the seeds' spread, slower, and it cannot take the
  critic control variate (docs/results.rst).
- ``orthogonal_noise``: a transition's independent draws orthogonal to each other, each still ``N(0, I)``; no gain
  measured over antithetic pairs (docs/results.rst).
- ``anchor``: the anchored form, ``G = grad_a b(s, mu_theta(s)) + eta * (mean_k [G_k - lambda h_k] - c)``
  (docs/estimator.rst, "The anchored form (an ablation)"), the critic's own direction at the policy's action plus the data's
  correction of the critic's gradient measured at the replay action; ``eta`` fixed, or per batch by positive-part
  James-Stein shrinkage of the corrections toward zero. Measured on Pendulum-v1, HalfCheetah-v5 and Hopper-v5,
  ``eta = 0`` (no denoiser) does as well (docs/results.rst): the library does not take it.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer
from torch import nn
from torch.nn import functional as F

from sb3_denoise_pg.common.estimator import (
    _check_same_shape,
    adaptive_anchor_coefficient,
    independent_draws,
    independent_units,
    normalize_by_rms,
    orthogonal_normal,
)
from sb3_denoise_pg.denoise_pg.checks import _is_integer, _is_number, _require
from sb3_denoise_pg.denoise_pg.denoise_pg import DenoisePG, Estimate, Samples, Sigma
from sb3_denoise_pg.denoise_pg.policies import DenoisePGPolicy, Denoiser, _StateActionNet


class AblationDenoisePG(DenoisePG):
    """
    DenoisePG with the ablation-only options (module docstring); every other argument is ``DenoisePG``'s.

    :param denoiser_sigma: A number > 0, a non-empty list of levels, or a schedule of the progress remaining
    :param baseline_action: ``"noised"`` (``b(s, a~)``, the library's) or ``"clean"`` (``b(s, a)``, biased)
    :param baseline_reduction: ``"mean"`` (the library's), ``"min"`` or ``"first"`` of the critics
    :param actor_batch_window: When set, the actor's batch is drawn from this many most recent transitions
    :param condition_on_reward: ``False``: the denoiser's outcome is ``(s', done)`` only
    :param orthogonal_noise: Whether a transition's independent draws are orthogonal directions with chi-distributed
        norms (each still ``N(0, I)``) instead of independent Gaussians
    :param actor_gradient: ``"direct"`` (the library's: the kernel-weighted estimates of the batch) or
        ``"regression"`` (a head ``G_omega(s, a)`` fitted to the estimates, followed at ``mu_theta(s)``; it needs
        ``critic_control_variate=None``)
    :param anchor: ``None`` (the library's score-difference estimate), the anchored form's ``eta`` (a number in
        ``[0, 1]``; ``0`` is TD3's direction from the baseline critic) or ``"adaptive"``. The anchored form's
        direction is taken at ``mu_theta(s)``: it needs ``actor_kernel_width=None`` and ``actor_gradient="direct"``.
    """

    removed_options: ClassVar[dict[str, tuple[Any, str]]] = {}
    _switches: ClassVar[tuple[str, ...]] = (*DenoisePG._switches, "orthogonal_noise")
    gradient_head: "GradientHead | None"

    def __init__(
        self,
        policy: Any,
        env: Any,
        *args: Any,
        denoiser_sigma: float | Sequence[float] | Schedule = 0.2,
        baseline_action: str = "noised",
        baseline_reduction: str = "mean",
        actor_batch_window: int | None = None,
        condition_on_reward: bool = True,
        anchor: float | str | None = None,
        orthogonal_noise: bool = False,
        actor_gradient: str = "direct",
        **kwargs: Any,
    ):
        self.anchor = anchor
        self.orthogonal_noise = orthogonal_noise
        self.actor_gradient = actor_gradient
        self.baseline_action = baseline_action
        self.baseline_reduction = baseline_reduction
        self.actor_batch_window = actor_batch_window
        self.condition_on_reward = condition_on_reward
        super().__init__(policy, env, *args, denoiser_sigma=denoiser_sigma, **kwargs)

    def _check_sigma(self) -> None:
        sigma = self.denoiser_sigma
        if callable(sigma):
            return  # checked at each use, at the progress remaining of then
        if isinstance(sigma, (list, tuple)):
            _require(len(sigma) >= 1, "denoiser_sigma levels must be a non-empty list", sigma)
            for level in sigma:
                _require(_is_number(level) and level > 0, "denoiser_sigma levels must be finite numbers > 0", sigma)
            # load() restores the levels from JSON as a list
            self.denoiser_sigma = tuple(float(level) for level in sigma)
            return
        super()._check_sigma()

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        _require(
            self.baseline_reduction in ("mean", "min", "first"),
            "baseline_reduction must be 'mean', 'min' or 'first'",
            self.baseline_reduction,
        )
        _require(
            self.baseline_action in ("noised", "clean"), "baseline_action must be 'noised' or 'clean'", self.baseline_action
        )
        window = self.actor_batch_window
        valid_window = window is None or (_is_integer(window) and window >= 1)
        _require(valid_window, "actor_batch_window must be None or an integer >= 1", window)
        _require(
            self.actor_gradient in ("direct", "regression"),
            "actor_gradient must be 'direct' or 'regression'",
            self.actor_gradient,
        )
        # A regression head fits E[G | s, a~], and E[h | s, a~] is not zero: the control variate would bias it
        _require(
            self.critic_control_variate is None or self.actor_gradient == "direct",
            "critic_control_variate needs actor_gradient='direct' (set critic_control_variate=None for 'regression')",
            self.critic_control_variate,
        )
        self._check_anchor()

    def _check_anchor(self) -> None:
        anchor = self.anchor
        if anchor is None:
            return
        valid = anchor == "adaptive" or (_is_number(anchor) and 0 <= anchor <= 1)
        _require(valid, "anchor must be None, 'adaptive' or a number in [0, 1]", anchor)
        _require(
            self.actor_kernel_width is None and self.actor_gradient == "direct",
            "anchor takes its direction at mu_theta(s): it needs actor_kernel_width=None and actor_gradient='direct'",
            (self.actor_kernel_width, self.actor_gradient),
        )
        if anchor == "adaptive":
            _require(
                independent_draws(self.n_noise_samples, self.antithetic) >= 2,
                "anchor='adaptive' estimates the noise from at least 2 independent draws (antithetic pairs count "
                "once): n_noise_samples >= 4 with antithetic=True, >= 2 without",
                self.n_noise_samples,
            )

    def _setup_model(self) -> None:
        # Files of 0.2.0 also record the head in policy_kwargs: this class builds it from actor_gradient
        self.policy_kwargs = {key: value for key, value in self.policy_kwargs.items() if key != "gradient_head"}
        super()._setup_model()
        # Built after the policy, as its submodule: saved and restored with the policy's parameters
        if self.actor_gradient == "regression":
            self.policy.gradient_head = make_gradient_head(self.policy, self.lr_schedule)
        self.gradient_head = getattr(self.policy, "gradient_head", None)
        if self.actor_batch_window is not None and isinstance(self.replay_buffer, HerReplayBuffer):
            raise ValueError(
                "actor_batch_window samples transitions by position in the buffer, which HerReplayBuffer does not "
                "support (its samples are relabelled episodes): leave actor_batch_window=None with HER"
            )

    # ---- sigma levels and schedules ---------------------------------------------------------------------------

    @property
    def current_sigma(self) -> float:
        """``denoiser_sigma``, its schedule's value at the current progress remaining, or its levels' mean."""
        if isinstance(self.denoiser_sigma, tuple):
            return float(np.mean(self.denoiser_sigma))
        if not callable(self.denoiser_sigma):
            return float(self.denoiser_sigma)
        sigma = float(self.denoiser_sigma(self._current_progress_remaining))
        _require(_is_number(sigma) and sigma > 0, "denoiser_sigma must be a finite number > 0", sigma)
        return sigma

    def noise_scale(self, n_transitions: int) -> Sigma:
        """``current_sigma``, or with several levels one of them drawn uniformly per transition, ``(n, 1)``."""
        if not isinstance(self.denoiser_sigma, tuple):
            return self.current_sigma
        levels = th.tensor(self.denoiser_sigma, device=self.device)
        return levels[th.randint(len(levels), (n_transitions, 1), device=self.device)]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        super().train(gradient_steps, batch_size)
        if callable(self.denoiser_sigma):
            self.logger.record("train/denoiser_sigma", self.current_sigma)

    # ---- the anchored form --------------------------------------------------------------------------------------

    def _actor_gradient(
        self, replay_data: Samples, estimate: Estimate, actions: th.Tensor, stats: dict[str, list[float]]
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        if self.actor_gradient == "regression":
            return self._regression_gradient(replay_data, estimate, actions, stats), actions, None
        if self.anchor is None:
            return super()._actor_gradient(replay_data, estimate, actions, stats)
        critic_gradient = estimate.critic_gradient
        if critic_gradient is None:
            critic_gradient = self.critic_action_gradient(replay_data.observations, replay_data.actions)
        # The data's correction of the critic's gradient at the replay action a, carried to mu_theta(s)
        corrections = independent_units(estimate.per_draw, self.antithetic) - critic_gradient
        eta = adaptive_anchor_coefficient(corrections).item() if self.anchor == "adaptive" else float(self.anchor)
        stats["anchor_eta"].append(eta)
        anchor = self.critic_action_gradient(replay_data.observations, actions.detach())
        return anchor + eta * corrections.mean(dim=0), actions, None

    # ---- the regression head and orthogonal draws -------------------------------------------------------------

    def _regression_gradient(
        self, replay_data: Samples, estimate: Estimate, actions: th.Tensor, stats: dict[str, list[float]]
    ) -> th.Tensor:
        """Fit ``G_omega`` to each draw's estimate at its ``(s, a~)``, then evaluate it at ``mu_theta(s)``."""
        assert self.gradient_head is not None
        # The actor only uses directions: per-batch normalised targets keep the regression's scale steady
        targets = normalize_by_rms(estimate.per_draw) if self.normalize_action_gradient else estimate.per_draw
        loss = gradient_regression_loss(self.gradient_head(replay_data.observations, estimate.noisy_actions), targets)
        stats["gradient_head_loss"].append(self._checked("gradient_head_loss", loss))
        self._step(self.gradient_head.optimizer, loss)
        with th.no_grad():
            return self.gradient_head(replay_data.observations, actions.detach().unsqueeze(0))[0]

    def _trained_heads(self) -> list[str]:
        return super()._trained_heads() + (["gradient_head"] if self.gradient_head is not None else [])

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "gradient_head"]

    def draw_noise(self, actions: th.Tensor) -> th.Tensor:
        if not self.orthogonal_noise:
            return super().draw_noise(actions)
        return orthogonal_normal(self.n_noise_samples, tuple(actions.shape), actions.device, self.antithetic)

    # ---- the outcome, the baseline and the actor's batch ------------------------------------------------------

    def _encode(
        self, replay_data: Samples, reward_known: bool = True, td_targets: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        return super()._encode(replay_data, reward_known and self.condition_on_reward, td_targets)

    def _critic_values(self, critic_features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        if self.baseline_reduction == "mean":
            return super()._critic_values(critic_features, actions)
        if self.baseline_reduction == "first":
            return self.policy.q_values_at(critic_features, actions, n_critics=1)
        return self.policy.q_values_at(critic_features, actions).min(dim=1, keepdim=True).values

    def _baseline(self, replay_data: Samples, noisy_actions: th.Tensor) -> th.Tensor:
        if self.baseline_action == "noised":
            return super()._baseline(replay_data, noisy_actions)
        critic_features = self.policy.critic_features(replay_data.observations)
        return self._critic_values(critic_features, replay_data.actions.expand_as(noisy_actions))

    def _update_actor(
        self, replay_data: Samples, td_targets: th.Tensor, stats: dict[str, list[float]]
    ) -> tuple[Samples, Estimate]:
        if self.actor_batch_window is not None:
            replay_data = self._sample_recent(replay_data.actions.shape[0])
            td_targets = self.td_target(replay_data)
        return super()._update_actor(replay_data, td_targets, stats)

    def _sample_recent(self, batch_size: int) -> Samples:
        """A batch drawn uniformly from the ``actor_batch_window`` most recent positions of the replay buffer."""
        buffer = self.replay_buffer
        assert buffer is not None
        size = buffer.buffer_size if buffer.full else buffer.pos
        # When the buffer is full the slot at pos is the oldest, and with optimize_memory_usage not a valid
        # transition (SB3's ReplayBuffer.sample skips it too). SB3 has no public way to sample given positions.
        window = min(self.actor_batch_window, size - 1 if buffer.full else size)
        offsets = np.random.randint(0, window, size=batch_size)
        return buffer._get_samples((buffer.pos - 1 - offsets) % buffer.buffer_size, env=self._vec_normalize_env)


class GradientHead(_StateActionNet):
    """
    The regression head ``G_omega(s, a) ~ E[G_hat | s, a]`` (docs/estimator.rst, "From the estimate to the actor"): it
    averages the score-difference estimates over the buffer and outputs a gradient as a value, so the actor can
    follow it at ``mu_theta(s)`` without back-propagating through any network's input. Constructor arguments:
    those of ``_StateActionNet``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        input_dim = self.features_dim + self.action_dim
        self.gradient_net = nn.Sequential(*create_mlp(input_dim, self.action_dim, self.net_arch, self.activation_fn))

    def forward(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """
        :param obs: Batch of observations
        :param actions: Several actions per state, shape ``(n_draws, batch, action_dim)``
        :return: ``G_omega(s, a)``, shape ``(n_draws, batch, action_dim)``
        """
        features = self.extract_features(obs, self.features_extractor)
        n_draws = actions.shape[0]
        net_input = th.cat([features.expand(n_draws, *features.shape), actions], dim=2)
        return self.gradient_net(net_input)


def make_gradient_head(policy: DenoisePGPolicy, lr_schedule: Schedule) -> GradientHead:
    """A :class:`GradientHead` for ``policy``: the critic's layer sizes, its own features extractor, its own optimizer."""
    head_kwargs = policy._update_features_extractor(policy.net_args, None)
    head_kwargs["net_arch"] = policy.critic_kwargs["net_arch"]
    head = GradientHead(**head_kwargs).to(policy.device)
    head.optimizer = policy.optimizer_class(head.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs)  # type: ignore[call-arg]
    return head


def gradient_regression_loss(predicted: th.Tensor, estimates: th.Tensor) -> th.Tensor:
    """
    Loss of the regression head ``G_omega``: the MSE to the estimates, minimised by ``E[G_hat | s, a~]``, which is
    ``grad_a Q`` smoothed by the noise (docs/estimator.rst, eq. 5 and "From the estimate to the actor").

    :param predicted: ``G_omega(s, a~)``, any shape
    :param estimates: ``G_hat`` at the same ``(s, a~)``, same shape; never differentiated
    :return: Scalar loss
    """
    _check_same_shape(predicted=predicted, estimates=estimates)
    return F.mse_loss(predicted, estimates.detach())


class ResidualDenoiser(Denoiser):
    """
    A denoiser whose conditional output is its unconditional output plus a learned difference:
    ``D(a~ | s) = a~ - sigma eps(a~, s)`` and ``D(a~ | s, o) = D(a~ | s) - sigma delta(a~, s, o)``, so that the score
    difference is ``-delta / sigma`` exactly: an error of ``eps`` is common to both outputs and cancels, where the
    library's denoiser (one network run with the outcome and with a null outcome) makes two errors that need not. The
    conditional samples train both networks, the unconditional ones ``eps`` alone; ``delta`` starts at zero. Built
    with the denoiser's constructor arguments (``net_arch`` for both networks).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # eps sees a~, features(s) and sigma; delta also the outcome
        self.noise_net = nn.Sequential(
            *create_mlp(self.action_dim + self.features_dim + 1, self.action_dim, self.net_arch, self.activation_fn)
        )
        self.difference_net = nn.Sequential(
            *create_mlp(
                self.action_dim + self.features_dim + self.outcome_dim + 1, self.action_dim, self.net_arch, self.activation_fn
            )
        )
        last = self.difference_net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(
        self,
        noisy_actions: th.Tensor,
        state_features: th.Tensor,
        outcome: th.Tensor,
        condition: th.Tensor,
        sigma: float | th.Tensor,
    ) -> th.Tensor:
        sigma_column = th.as_tensor(sigma, dtype=noisy_actions.dtype, device=noisy_actions.device).expand(condition.shape)
        unconditional = noisy_actions - sigma * self.noise_net(th.cat([noisy_actions, state_features, sigma_column], 1))
        difference = self.difference_net(th.cat([noisy_actions, state_features, outcome, sigma_column], 1))
        return unconditional - sigma * condition.to(noisy_actions.dtype) * difference


def replace_denoiser(model: DenoisePG, denoiser_class: type[Denoiser]) -> DenoisePG:
    """Replace ``model``'s denoiser (and its optimizer) by an untrained ``denoiser_class`` of the same size."""
    old = model.policy.denoiser
    new = denoiser_class(**old._get_constructor_parameters()).to(model.device)
    new.optimizer = type(old.optimizer)(new.parameters(), **old.optimizer.defaults)
    model.policy.denoiser = new
    model.denoiser = new
    return model


def use_residual_denoiser(model: DenoisePG) -> DenoisePG:
    """Replace ``model``'s denoiser (and its optimizer) by a :class:`ResidualDenoiser` of the same size, untrained."""
    return replace_denoiser(model, ResidualDenoiser)
