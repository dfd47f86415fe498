import warnings
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from stable_baselines3.td3.policies import Actor

from sb3_denoise_pg.common.estimator import (
    Estimate,
    Sigma,
    actor_loss_from_gradient,
    antithetic_normal,
    critic_control_variate,
    denoising_loss,
    kernel_localised_rows,
    normalize_by_rms,
    optimal_cv_coefficient,
    preactivation_penalty,
    saturation,
    score_difference_gradient,
    td_loss,
)
from sb3_denoise_pg.denoise_pg.checks import ActionSpaceError, HyperparameterChecks, check_action_space  # noqa: F401
from sb3_denoise_pg.denoise_pg.policies import (
    CnnPolicy,
    DenoisePGPolicy,
    Denoiser,
    MlpPolicy,
    MultiInputPolicy,
    with_default_denoiser,
)
from sb3_denoise_pg.denoise_pg.pretraining import DenoiserPretraining
from sb3_denoise_pg.denoise_pg.train_diagnostics import EstimateDiagnostics

SelfDenoisePG = TypeVar("SelfDenoisePG", bound="DenoisePG")
Samples = ReplayBufferSamples | DictReplayBufferSamples


class DenoisePG(HyperparameterChecks, DenoiserPretraining, EstimateDiagnostics, OffPolicyAlgorithm):
    """
    Denoising Policy Gradients (DenoisePG).

    A deterministic actor trained like TD3's, but the gradient of the action value it follows is not the
    input-gradient of a critic: it is estimated from the score function of the world,
    ``G_hat = (y - b(s, a~)) * (D(a~ | s, o) - D(a~ | s)) / sigma^2``, where ``D`` is one denoiser of replay
    actions run with and without the transition's outcome ``o = (s', r, done)``, ``y`` the one-step TD target
    and ``b`` the critic used as a baseline at the noised action ``a~``. The critic's input-gradient at the replay
    action can enter only through an exactly zero-mean control variate, ``(z z^T - I) grad_a b(s, a)``, which
    removes most of the estimate's variance in nearly deterministic worlds without changing its expectation.

    Source (a blog post, no experiments): "Gradient estimation in a noisy world, via denoising diffusion models";
    the derivation, with the equations the code cites, is in ``docs/estimator.rst``.
    Built on TD3: https://arxiv.org/abs/1802.09477

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Learning rate for Adam, the same for actor, critic and denoiser;
        it can be a function of the current progress remaining (from 1 to 0)
    :param buffer_size: Size of the replay buffer
    :param learning_starts: How many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: The soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: The discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and
        unit like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see ``train_freq``).
        ``-1`` means as many gradient steps as steps done in the environment during the rollout.
    :param action_noise: The action noise type (None by default); as in TD3, the exploration noise
    :param replay_buffer_class: Replay buffer class to use (for instance ``HerReplayBuffer``).
        If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: When ``n_steps > 1``, uses n-step returns (with the NStepReplayBuffer) for the TD target
    :param policy_delay: The actor and the target networks are updated once every ``policy_delay`` gradient steps
    :param target_policy_noise: Standard deviation of Gaussian noise added to the target policy (smoothing noise)
    :param target_noise_clip: Limit for absolute value of the target policy smoothing noise

    The estimator's options below are explained, with what each was measured to do, in ``docs/guide.rst``
    ("Hyperparameters beyond TD3's").

    :param denoiser_sigma: Standard deviation ``sigma`` of the noise on replay actions (scaled space), a number > 0
    :param n_noise_samples: Noise draws ``z`` averaged per transition, in one batched pass (>= 1)
    :param antithetic: Whether the noise draws come in antithetic pairs ``(z, -z)``
    :param critic_control_variate: Subtract ``lambda (z z^T - I) grad_a b(s, a)`` from each draw (eq. 6):
        ``"optimal"`` fits ``lambda`` on each batch, a number in ``[0, 1]`` fixes it, ``None`` turns it off
    :param denoiser_condition: What the conditional denoiser is given: ``"outcome"``, ``o = (s', r, done)``;
        ``"td_target"``, the standardised TD target alone (the Rao-Blackwellised estimate)
    :param cond_dropout: Share of denoiser training samples that see the null outcome (learning ``D(a~ | s)``),
        in ``[0, 1)``
    :param normalize_action_gradient: Whether to divide the batch's ``G_hat`` by its root-mean-square
    :param center_advantages: Whether to add the batch mean of ``y - b(s, a~)`` to the baseline
    :param actor_kernel_width: Width of the Gaussian kernel on ``a~ - mu_theta(s)`` that weights each draw in the
        actor update; ``None``: the plain average
    :param actor_preactivation_penalty: Weight of ``mean_i ||u_i||^2`` in the actor loss, ``u`` the actor's
        pre-tanh output (keeps a noisy gradient from saturating the actor); ``0`` turns it off
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation; ``denoiser_net_arch`` is
        ``[64, 64]`` unless given (``None``: the critic's ``net_arch``, the default before 0.4.0)
    :param verbose: Verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DenoisePGPolicy
    actor: Actor
    actor_target: Actor
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    denoiser: Denoiser

    def __init__(
        self,
        policy: str | type[DenoisePGPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        denoiser_sigma: float = 0.2,
        n_noise_samples: int = 4,
        antithetic: bool = True,
        critic_control_variate: str | float | None = "optimal",
        denoiser_condition: str = "outcome",
        cond_dropout: float = 0.5,
        normalize_action_gradient: bool = True,
        center_advantages: bool = True,
        actor_kernel_width: float | None = 0.2,
        actor_preactivation_penalty: float = 0.01,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        # Set before the parent's constructor, which keeps them, so that bad values fail before an env is made
        self.batch_size = batch_size
        self.policy_delay = policy_delay
        self.target_policy_noise = target_policy_noise
        self.target_noise_clip = target_noise_clip
        self.denoiser_sigma = denoiser_sigma
        self.n_noise_samples = n_noise_samples
        self.antithetic = antithetic
        self.critic_control_variate = critic_control_variate
        self.denoiser_condition = denoiser_condition
        # Running mean and variance of the TD targets, which enter the denoiser standardised (denoiser_condition)
        self.td_target_stats = RunningMeanStd(shape=())
        self.cond_dropout = cond_dropout
        self.normalize_action_gradient = normalize_action_gradient
        self.center_advantages = center_advantages
        self.actor_kernel_width = actor_kernel_width
        self.actor_preactivation_penalty = actor_preactivation_penalty
        self._check_hyperparameters()
        if self.cond_dropout == 0:
            warnings.warn("cond_dropout=0: the unconditional denoiser D(a~ | s) is never trained", stacklevel=2)
        policy_kwargs = with_default_denoiser(policy_kwargs)
        # Made here (the parent would make it too) so that a wrong action space fails with a clear error
        env = maybe_make_env(env, verbose)
        if env is not None:
            check_action_space(env.action_space)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # load() sets the saved attributes without the constructor: check them here too
        self._check_removed_options()
        self._check_hyperparameters()
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, DenoisePGPolicy)):
            name = getattr(self.policy_class, "__name__", self.policy_class)
            raise ValueError(
                f"DenoisePG needs a DenoisePGPolicy (MlpPolicy, CnnPolicy, MultiInputPolicy or a subclass), got {name}. "
                "Loading a file saved by another algorithm? Load it with that algorithm's class."
            )
        super()._setup_model()
        self._create_aliases()
        self._next_diagnostics = 0
        # Batch norm running statistics are copied to the targets, not averaged (SB3 issue #996)
        self._batch_norm_stats = get_parameters_by_name(self.actor, ["running_"]) + get_parameters_by_name(
            self.critic, ["running_"]
        )
        self._batch_norm_stats_target = get_parameters_by_name(self.actor_target, ["running_"]) + get_parameters_by_name(
            self.critic_target, ["running_"]
        )

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.denoiser = self.policy.denoiser

    # ---- the estimator: one pipeline, noise -> denoise -> baseline -> G_hat -> control variate -------------

    def td_target(self, replay_data: Samples) -> th.Tensor:
        """
        The one-step target ``y = r + gamma (1 - done) V(s')`` with ``V(s') = min_j Q_target_j(s', mu_target(s') + eps)``
        (TD3's target policy smoothing and clipped double-Q).

        :return: Shape ``(batch, 1)``
        """
        with th.no_grad():
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            noise = th.randn_like(replay_data.actions) * self.target_policy_noise
            noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
            next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)
            next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

    def noise_scale(self, n_transitions: int) -> Sigma:
        """The noise scale ``sigma`` of a batch of ``n_transitions`` (for the estimate and the denoiser's training)."""
        return self.denoiser_sigma

    def draw_noise(self, actions: th.Tensor) -> th.Tensor:
        """
        The unit-scale draws ``z`` of a batch: ``n_noise_samples`` per transition, in antithetic pairs when set.

        :param actions: The replay actions, shape ``(batch, action_dim)``
        :return: Shape ``(n_noise_samples, batch, action_dim)``
        """
        return antithetic_normal(self.n_noise_samples, tuple(actions.shape), actions.device, self.antithetic)

    def _encode(
        self, replay_data: Samples, reward_known: bool = True, td_targets: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        The denoiser's features of ``s`` and its condition: the outcome ``o = (s', r, done)`` (reward masked when not
        known), or with ``denoiser_condition="td_target"`` the standardised TD target (computed here when not given).
        """
        if self.denoiser_condition == "outcome":
            return self.denoiser.encode(
                replay_data.observations, replay_data.next_observations, replay_data.rewards, replay_data.dones, reward_known
            )
        if td_targets is None:
            td_targets = self.td_target(replay_data)
        mean, std = self.td_target_stats.mean, np.sqrt(self.td_target_stats.var + 1e-8)
        return self.denoiser.encode_target(replay_data.observations, (td_targets - float(mean)) / float(std))

    def _denoise(
        self, replay_data: Samples, noisy_actions: th.Tensor, sigma: Sigma, td_targets: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """``D(a~ | s, o)`` and ``D(a~ | s)`` of every draw, rows in draw-major order (row ``k * batch + i``)."""
        n_draws, _, action_dim = noisy_actions.shape
        state_features, outcome = self._encode(replay_data, td_targets=td_targets)
        return self.denoiser.denoise_both(
            noisy_actions.reshape(-1, action_dim),
            state_features.repeat(n_draws, 1),
            outcome.repeat(n_draws, 1),
            _per_row(sigma, n_draws),
        )

    def _critic_values(self, critic_features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """The baseline ``b`` at ``actions`` (shape ``(n_draws, batch, action_dim)``), the policy's ``baseline_values``."""
        return self.policy.baseline_values(critic_features, actions)

    def _baseline(self, replay_data: Samples, noisy_actions: th.Tensor) -> th.Tensor:
        """
        ``b(s, a~)`` of every draw, shape ``(n_draws * batch, 1)``. The baseline must be a function of the noised
        action, where the gradient is taken (docs/estimator.rst, "The baseline"). Any function of ``(s, a~)`` keeps
        the estimate unbiased, so ``a~`` is clipped to the action box: the critic never saw actions beyond it.
        """
        critic_features = self.policy.critic_features(replay_data.observations)
        return self._critic_values(critic_features, noisy_actions.clamp(-1.0, 1.0))

    def _control_variate(self, replay_data: Samples, noise: th.Tensor, per_draw: th.Tensor) -> tuple[th.Tensor, float]:
        """``c = grad_a b(s, a)`` at the clean replay actions and the coefficient ``lambda`` of eq. (6)."""
        critic_gradient = self.critic_action_gradient(replay_data.observations, replay_data.actions)
        if self.critic_control_variate != "optimal":
            return critic_gradient, float(self.critic_control_variate)
        return critic_gradient, optimal_cv_coefficient(per_draw, critic_control_variate(noise, critic_gradient)).item()

    def estimate(self, replay_data: Samples, td_targets: th.Tensor | None = None) -> Estimate:
        """
        The score-difference estimate with its ingredients; see ``action_gradient``.

        :param replay_data: A batch from the replay buffer
        :param td_targets: Precomputed ``td_target(replay_data)``, computed here when ``None``
        """
        with th.no_grad():
            if td_targets is None:
                td_targets = self.td_target(replay_data)
            actions = replay_data.actions
            n_draws, (batch_size, action_dim) = self.n_noise_samples, actions.shape
            noise, sigma = self.draw_noise(actions), self.noise_scale(batch_size)
            noisy_actions = actions + sigma * noise  # (n_draws, batch, action_dim), eq. (4)
            denoised_cond, denoised_uncond = self._denoise(replay_data, noisy_actions, sigma, td_targets)
            baselines = self._baseline(replay_data, noisy_actions)
            td_targets = td_targets.repeat(n_draws, 1)
            if self.center_advantages:
                # A constant shift of the baseline keeps the estimate unbiased, and removes the common offset of a
                # young critic that would multiply any denoiser error into a push of every action the same way
                baselines = baselines + (td_targets - baselines).mean()
            per_draw = score_difference_gradient(
                td_targets, baselines, denoised_cond, denoised_uncond, _per_row(sigma, n_draws)
            )
            per_draw = per_draw.reshape(n_draws, batch_size, action_dim)  # eq. (5)
            critic_gradient, cv_coefficient = None, 0.0
            if self.critic_control_variate is not None:
                critic_gradient, cv_coefficient = self._control_variate(replay_data, noise, per_draw)
                per_draw = per_draw - cv_coefficient * critic_control_variate(noise, critic_gradient)  # eq. (6)
        return Estimate(
            per_draw.mean(dim=0),
            per_draw,
            noise,
            sigma,
            noisy_actions,
            denoised_cond,
            denoised_uncond,
            critic_gradient,
            cv_coefficient,
        )

    def action_gradient(self, replay_data: Samples) -> th.Tensor:
        """
        The score-difference estimate of ``grad_a Q(s, a)`` at the replay actions, in the scaled action space
        (docs/estimator.rst, eq. 5): ``G_hat = (y - b(s, a~)) * (D(a~|s,o) - D(a~|s)) / sigma^2``, averaged over
        ``n_noise_samples`` draws of ``a~ = a + sigma z`` (antithetic pairs when ``antithetic``), all in one
        batched forward pass, with the critic control variate subtracted when ``critic_control_variate`` is set.
        Computed without gradient.

        :param replay_data: A batch from the replay buffer (``ReplayBufferSamples`` or ``DictReplayBufferSamples``)
        :return: Shape ``(batch, action_dim)``
        """
        return self.estimate(replay_data).gradient

    def critic_action_gradient(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        The critic's own input-gradient ``grad_a Q_phi(s, a)`` (what TD3 follows), of the mean of the critics (the
        baseline): ``c`` of the control variate, and a diagnostic.

        :param observations: Batch of observations
        :param actions: Shape ``(batch, action_dim)``
        :return: Shape ``(batch, action_dim)``
        """
        with th.enable_grad():
            actions = actions.detach().requires_grad_(True)
            critic_features = self.policy.critic_features(observations).detach()
            q_values = self._critic_values(critic_features, actions.unsqueeze(0))
            (gradient,) = th.autograd.grad(q_values.sum(), actions)
        return gradient

    # ---- training -----------------------------------------------------------------------------------------

    @staticmethod
    def _step(optimizer: th.optim.Optimizer, loss: th.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _update_critic(self, replay_data: Samples, td_targets: th.Tensor, stats: dict[str, list[float]]) -> None:
        loss = td_loss(self.critic(replay_data.observations, replay_data.actions), td_targets)
        stats["critic_loss"].append(self._checked("critic_loss", loss))
        self._step(self.critic.optimizer, loss)

    def _update_denoiser(
        self,
        replay_data: Samples,
        stats: dict[str, list[float]],
        reward_known: bool = True,
        td_targets: th.Tensor | None = None,
    ) -> None:
        actions, sigma = replay_data.actions, self.noise_scale(replay_data.actions.shape[0])
        if self.denoiser_condition == "td_target":
            td_targets = self.td_target(replay_data) if td_targets is None else td_targets
            self.td_target_stats.update(td_targets.detach().cpu().numpy().reshape(-1))
        noisy_actions = actions + sigma * th.randn_like(actions)
        # Conditioning dropout: a fraction of the batch learns D(a~ | s) through the null outcome
        condition = th.rand(actions.shape[0], 1, device=actions.device) >= self.cond_dropout
        state_features, outcome = self._encode(replay_data, reward_known, td_targets)
        loss = denoising_loss(self.denoiser(noisy_actions, state_features, outcome, condition, sigma), actions, sigma)
        stats["denoiser_loss"].append(self._checked("denoiser_loss", loss))
        self._step(self.denoiser.optimizer, loss)

    def _actor_gradient(
        self, replay_data: Samples, estimate: Estimate, actions: th.Tensor, stats: dict[str, list[float]]
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        The gradient the actor follows, the actions it is taken at and their weights: the batch's estimates, per draw
        and kernel-weighted when a width is set (plain, with ``None`` weights, without one).
        """
        if self.actor_kernel_width is None:
            return estimate.gradient, actions, None
        # Each draw's estimate is a gradient at its a~, weighted by the distance of a~ (not of the replay action
        # a) to mu_theta(s): a weight that depends on a correlates with the score difference, biases the
        # estimate and, measured on Pendulum-v1, drove the actor into the action bounds. A weight on a~ is a
        # function of z, so the weighted control variate's expectation is added back (eq. 7)
        add_back = None
        if estimate.critic_gradient is not None:
            add_back = (replay_data.actions, estimate.sigma, estimate.cv_coefficient * estimate.critic_gradient)
        rows, row_actions, weights = kernel_localised_rows(
            estimate.per_draw, estimate.noisy_actions, actions, self.actor_kernel_width, add_back
        )
        draw_weights = weights[: estimate.noise.shape[0] * estimate.noise.shape[1]]
        # Effective sample size of the localised batch, as a fraction of the draws
        stats["actor_kernel_ess"].append((draw_weights.sum().pow(2) / draw_weights.pow(2).sum() / len(draw_weights)).item())
        return rows, row_actions, weights

    def _update_actor(
        self, replay_data: Samples, td_targets: th.Tensor, stats: dict[str, list[float]]
    ) -> tuple[Samples, Estimate]:
        """One actor step; returns the batch it used and the estimate it followed (for the diagnostics)."""
        estimate = self.estimate(replay_data, td_targets)
        preactivations = self._actor_preactivations(replay_data.observations)
        actions = th.tanh(preactivations)
        gradient, policy_actions, weights = self._actor_gradient(replay_data, estimate, actions, stats)
        if self.normalize_action_gradient:
            gradient = normalize_by_rms(gradient)
        loss = actor_loss_from_gradient(policy_actions, gradient, weights)
        if self.actor_preactivation_penalty > 0:
            loss = loss + self.actor_preactivation_penalty * preactivation_penalty(preactivations)
        stats["actor_loss"].append(self._checked("actor_loss", loss))
        stats["action_gradient_norm"].append(estimate.gradient.norm(dim=1).mean().item())
        stats["actor_saturation"].append(saturation(actions))
        if estimate.critic_gradient is not None:
            stats["cv_lambda"].append(estimate.cv_coefficient)
        self._step(self.actor.optimizer, loss)
        return replay_data, estimate

    def _actor_preactivations(self, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        """The actor's output before its final tanh (``mu_theta(s) = tanh(u)``), computed once for loss and penalty."""
        features = self.actor.extract_features(observations, self.actor.features_extractor)
        return self.actor.mu[:-1](features)

    def _update_targets(self) -> None:
        polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
        polyak_update(self._batch_norm_stats, self._batch_norm_stats_target, 1.0)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([getattr(self, head).optimizer for head in self._trained_heads()])

        stats: dict[str, list[float]] = defaultdict(list)
        last_actor_update = None
        for _ in range(gradient_steps):
            self._n_updates += 1
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            td_targets = self.td_target(replay_data)
            self._update_critic(replay_data, td_targets, stats)
            self._update_denoiser(replay_data, stats, td_targets=td_targets)
            if self._n_updates % self.policy_delay == 0:
                last_actor_update = self._update_actor(replay_data, td_targets, stats)
                self._update_targets()

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in stats.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        if last_actor_update is not None and self._n_updates >= self._next_diagnostics:
            self._record_diagnostics(*last_actor_update)
            self._next_diagnostics = self._n_updates + self.diagnostics_interval

    def learn(
        self: SelfDenoisePG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DenoisePG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDenoisePG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "actor_target",
            "critic_target",
            "denoiser",
            "_batch_norm_stats",
            "_batch_norm_stats_target",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", *(f"{head}.optimizer" for head in self._trained_heads())], []

    def _trained_heads(self) -> list[str]:
        """The networks with an optimizer: one list for the learning-rate schedule and for save/load."""
        return ["actor", "critic", "denoiser"]


def _per_row(sigma: Sigma, n_draws: int) -> Sigma:
    """``sigma`` for rows in draw-major order: a per-transition ``(batch, 1)`` tensor is repeated for each draw."""
    return sigma.repeat(n_draws, 1) if isinstance(sigma, th.Tensor) else sigma
