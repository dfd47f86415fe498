from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import TD3Policy
from torch import nn


def concat_observations(obs: PyTorchObs, next_obs: PyTorchObs) -> PyTorchObs:
    """Stack two batches of observations (tensors or dicts of tensors) along the batch dimension."""
    if isinstance(obs, dict):
        return {key: th.cat([obs[key], next_obs[key]], dim=0) for key in obs}
    return th.cat([obs, next_obs], dim=0)


# The denoiser's hidden layers when policy_kwargs do not name them, since 0.4.0 (before: the critic's net_arch).
# benchmarks/results/estimate-budget: with 4 draws it learned as well as 0.3.0's critic-sized denoiser with 8, at
# 0.62x-0.74x TD3's throughput instead of 0.34x-0.38x.
DEFAULT_DENOISER_NET_ARCH = (64, 64)


def with_default_denoiser(policy_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """
    ``policy_kwargs`` as DenoisePG builds its policy with them: ``denoiser_net_arch`` is ``[64, 64]`` unless named.
    The algorithm adds it, not the policy's signature: a model saved before 0.4.0 has no ``denoiser_net_arch`` in
    its saved ``policy_kwargs`` and keeps the critic-sized denoiser it was trained with.
    """
    return {"denoiser_net_arch": list(DEFAULT_DENOISER_NET_ARCH)} | (policy_kwargs or {})


class _StateActionNet(BaseModel):
    """
    A network on the features of ``s`` and an action, with its own features extractor (the denoiser's base, and of
    the ablations' heads); the constructor arguments are kept for ``save``/``load``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param net_arch: Hidden layer sizes
    :param features_extractor: Network to extract features from observations
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.action_dim = get_action_dim(self.action_space)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
            )
        )
        return data


class Denoiser(_StateActionNet):
    """
    The denoiser ``D(a~, s, o)``: predicts the clean replay action ``a`` from ``a~ = a + sigma z``, given the
    state ``s`` and, when ``condition`` is set, the transition's outcome ``o = (s', r, done)`` (the reward slot
    can be masked, with a flag saying so, for reward-free pretraining: ``o = (s', 0, done)``). Without
    the condition, a learned null outcome takes the outcome's place, so that one network gives both
    ``D(a~ | s, o)`` and ``D(a~ | s)`` (as in classifier-free guidance).

    The output is parametrised as ``a~ - sigma * eps_hat(...)``: the network predicts the noise, whose scale
    does not depend on ``sigma``. Constructor arguments: those of ``_StateActionNet`` (the features extractor is
    applied to ``s`` and ``s'``).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # outcome = (features(s'), r, done, reward known)
        self.outcome_dim = self.features_dim + 3
        self.null_outcome = nn.Parameter(th.zeros(self.outcome_dim))
        # inputs: a~, features(s), outcome or null, condition flag, sigma
        input_dim = self.action_dim + self.features_dim + self.outcome_dim + 2
        self.noise_net = nn.Sequential(*create_mlp(input_dim, self.action_dim, self.net_arch, self.activation_fn))

    def encode(
        self, obs: PyTorchObs, next_obs: PyTorchObs, rewards: th.Tensor, dones: th.Tensor, reward_known: bool = True
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Features of the state and of the outcome, from one forward pass of the features extractor over
        ``s`` and ``s'`` together.

        :param reward_known: When ``False`` the outcome's reward slot is masked (zero, with its flag off), so that
            the denoiser conditions on ``(s', done)`` alone: reward-free pretraining
        :return: state features ``(batch, features_dim)`` and outcome ``(batch, features_dim + 3)``
        """
        features = self.extract_features(concat_observations(obs, next_obs), self.features_extractor)
        state_features, next_state_features = features.chunk(2, dim=0)
        known = th.full_like(rewards, float(reward_known))
        return state_features, th.cat([next_state_features, rewards * known, dones, known], dim=1)

    def encode_target(self, obs: PyTorchObs, targets: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        Features of the state and a condition made of a scalar target alone (the standardised TD target): in the
        outcome's layout, the target in the reward's slot, the next state's features and the done flag zero.

        :param targets: Shape ``(batch, 1)``
        :return: state features ``(batch, features_dim)`` and condition ``(batch, features_dim + 3)``
        """
        features = self.extract_features(obs, self.features_extractor)
        zeros = th.zeros(features.shape[0], self.features_dim + 1, device=features.device, dtype=features.dtype)
        return features, th.cat([zeros[:, : self.features_dim], targets, zeros[:, -1:], th.ones_like(targets)], dim=1)

    def forward(
        self,
        noisy_actions: th.Tensor,
        state_features: th.Tensor,
        outcome: th.Tensor,
        condition: th.Tensor,
        sigma: float | th.Tensor,
    ) -> th.Tensor:
        """
        :param noisy_actions: ``a~``, shape ``(n, action_dim)``
        :param state_features: From ``encode``, shape ``(n, features_dim)``
        :param outcome: From ``encode``, shape ``(n, features_dim + 3)``
        :param condition: Boolean, shape ``(n, 1)``: whether row ``i`` sees its outcome or the null outcome
        :param sigma: Noise standard deviation that made ``a~``: one for all rows, or one per row, shape ``(n, 1)``
        :return: The denoised action ``D``, shape ``(n, action_dim)``
        """
        outcome = th.where(condition, outcome, self.null_outcome)
        sigma_column = th.as_tensor(sigma, dtype=noisy_actions.dtype, device=noisy_actions.device).expand(condition.shape)
        net_input = th.cat([noisy_actions, state_features, outcome, condition.to(noisy_actions.dtype), sigma_column], 1)
        return noisy_actions - sigma * self.noise_net(net_input)

    def denoise_both(
        self, noisy_actions: th.Tensor, state_features: th.Tensor, outcome: th.Tensor, sigma: float | th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        ``D(a~ | s, o)`` and ``D(a~ | s)`` in one batched forward pass; ``sigma`` as in ``forward``.

        :return: conditional and unconditional denoised actions, each ``(n, action_dim)``
        """
        n_rows = noisy_actions.shape[0]
        condition = th.ones(2 * n_rows, 1, dtype=th.bool, device=noisy_actions.device)
        condition[n_rows:] = False
        sigma = th.as_tensor(sigma, dtype=noisy_actions.dtype, device=noisy_actions.device).expand(n_rows, 1).repeat(2, 1)
        denoised = self(noisy_actions.repeat(2, 1), state_features.repeat(2, 1), outcome.repeat(2, 1), condition, sigma)
        return denoised[:n_rows], denoised[n_rows:]


class DenoisePGPolicy(TD3Policy):
    """
    Policy class for DenoisePG: TD3's actor and twin critic (with their targets), plus the denoiser.
    The critic serves as the baseline ``b(s, a~)`` of the estimator and for the TD targets.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: The specification of the actor and critic networks (list, or dict with ``pi``/``qf``)
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use.
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor.
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the optimizer
    :param n_critics: Number of critic networks to create.
    :param share_features_extractor: Whether to share or not the features extractor
        between the actor and the critic (the denoiser always has its own)
    :param denoiser_net_arch: Hidden layer sizes of the denoiser; the critic's when ``None``
    :param baseline_critics: How many of the critics (the first ones) the baseline ``b(s, a~)`` averages: each one
        costs a forward pass at every noised action. ``None``: all of them
    :param gradient_head: Recorded by policies saved with versions 0.2.0 and 0.3.0, whose regression head is now an
        ablation variant (``benchmarks.ablation_variants``): only ``False`` is accepted
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        denoiser_net_arch: list[int] | None = None,
        baseline_critics: int | None = None,
        gradient_head: bool = False,
    ):
        # Read by _build(), which the parent constructor calls
        if gradient_head is not False:
            raise ValueError(
                "gradient_head: the regression head left the library in version 0.3.0; "
                "it is benchmarks.ablation_variants.AblationDenoisePG(actor_gradient='regression')"
            )
        is_count = isinstance(baseline_critics, int) and not isinstance(baseline_critics, bool)
        if baseline_critics is not None and not (is_count and 1 <= baseline_critics <= n_critics):
            raise ValueError(
                f"baseline_critics must be None or an integer in [1, n_critics={n_critics}], got {baseline_critics!r}"
            )
        self.denoiser_net_arch = denoiser_net_arch
        self.baseline_critics = baseline_critics
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.denoiser = self.make_denoiser()
        self.denoiser.optimizer = self.optimizer_class(
            self.denoiser.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def make_denoiser(self, features_extractor: BaseFeaturesExtractor | None = None) -> Denoiser:
        denoiser_kwargs = self._update_features_extractor(self.net_args, features_extractor)
        if self.denoiser_net_arch is not None:
            denoiser_kwargs["net_arch"] = self.denoiser_net_arch
        else:
            denoiser_kwargs["net_arch"] = self.critic_kwargs["net_arch"]
        return Denoiser(**denoiser_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(denoiser_net_arch=self.denoiser_net_arch, baseline_critics=self.baseline_critics)
        return data

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.denoiser.set_training_mode(mode)

    def critic_features(self, obs: PyTorchObs) -> th.Tensor:
        """Critic features of ``obs``, computed once so that many actions can be scored at the same states."""
        return self.critic.extract_features(obs, self.critic.features_extractor)

    def q_values_at(self, critic_features: th.Tensor, actions: th.Tensor, n_critics: int | None = None) -> th.Tensor:
        """
        The critics' values at several actions per state.

        :param critic_features: From ``critic_features``, shape ``(batch, features_dim)``
        :param actions: Shape ``(n_draws, batch, action_dim)``
        :param n_critics: Evaluate only the first ``n_critics`` critics (default: all)
        :return: Shape ``(n_draws * batch, n_critics)``, rows in draw-major order
        """
        n_draws, batch_size, action_dim = actions.shape
        q_input = th.cat([critic_features.repeat(n_draws, 1), actions.reshape(n_draws * batch_size, action_dim)], 1)
        return th.cat([q_net(q_input) for q_net in self.critic.q_networks[:n_critics]], dim=1)

    def baseline_values(self, critic_features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        The baseline ``b(s, a)``: the mean of the first ``baseline_critics`` critics at several actions per state.

        :param critic_features: From ``critic_features``, shape ``(batch, features_dim)``
        :param actions: Shape ``(n_draws, batch, action_dim)``
        :return: Shape ``(n_draws * batch, 1)``, rows in draw-major order
        """
        return self.q_values_at(critic_features, actions, self.baseline_critics).mean(dim=1, keepdim=True)


MlpPolicy = DenoisePGPolicy


class CnnPolicy(DenoisePGPolicy):
    """DenoisePGPolicy with a ``NatureCNN`` features extractor by default, for image observations."""

    def __init__(self, *args, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputPolicy(DenoisePGPolicy):
    """DenoisePGPolicy with a ``CombinedExtractor`` by default, for Dict observation spaces."""

    def __init__(self, *args, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
