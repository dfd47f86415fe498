"""
The action-gradient signals an actor can follow, read off a trained SB3 model at given states: each algorithm's
critic input-gradient as that algorithm uses it, finite differences of the critic's values, and DenoisePG's
score-difference estimate in its variants. Every signal is a ``(batch, action_dim)`` tensor in SB3's scaled action
space ``[-1, 1]^d``, the space the actor's output and the gradient-truth probe live in.
"""

from contextlib import contextmanager
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_denoise_pg.common.estimator import (
    adaptive_anchor_coefficient,
    independent_units,
    kernel_localised_rows,
    orthogonal_normal,
)
from sb3_denoise_pg.denoise_pg.denoise_pg import DenoisePG, Estimate, Samples

SUPPORTED_MODELS = (DenoisePG, TD3, SAC)  # DDPG is a TD3


def check_model(model: BaseAlgorithm) -> None:
    """
    Raise a ``ValueError`` unless ``model`` is an actor-critic whose critic's action-gradient the probe knows how to
    read (TD3, DDPG, SAC, DenoisePG and their subclasses) on a ``Box`` action space.

    :param model: An SB3 model
    """
    if not isinstance(model, SUPPORTED_MODELS):
        raise ValueError(
            f"The gradient-truth probe needs an actor-critic with a Q-function critic (TD3, DDPG, SAC or DenoisePG), "
            f"got {type(model).__name__}"
        )
    if not isinstance(model.action_space, spaces.Box):
        raise ValueError(f"The gradient-truth probe needs a continuous Box action space, got {model.action_space}")


def policy_actions(model: BaseAlgorithm, observations: PyTorchObs) -> th.Tensor:
    """
    ``mu(s)``, the model's deterministic action in the scaled space, differentiable in the actor's parameters
    (SAC: the squashed mean).

    :param model: A supported model (:func:`check_model`)
    :param observations: A batch of observations, as the policy takes them
    :return: Shape ``(batch, action_dim)``
    """
    if isinstance(model, SAC):
        return model.actor(observations, deterministic=True)
    return model.actor(observations)


def critic_values(model: BaseAlgorithm, observations: PyTorchObs, actions: th.Tensor) -> th.Tensor:
    """
    The action value each algorithm's actor climbs: TD3 and DDPG the first critic, SAC the minimum of its critics (the
    critic term of its actor's objective), DenoisePG the mean of its critics (the baseline ``b``, whose
    input-gradient is its control variate's ``c``).

    :param model: A supported model (:func:`check_model`)
    :param observations: A batch of observations
    :param actions: Scaled actions, shape ``(batch, action_dim)``
    :return: Shape ``(batch,)``
    """
    if isinstance(model, DenoisePG):
        return th.cat(model.critic(observations, actions), dim=1).mean(dim=1)
    if isinstance(model, SAC):
        return th.cat(model.critic(observations, actions), dim=1).min(dim=1).values
    return model.critic.q1_forward(observations, actions).squeeze(1)


def critic_gradient(model: BaseAlgorithm, observations: PyTorchObs, actions: th.Tensor) -> th.Tensor:
    """
    ``grad_a`` of :func:`critic_values` at ``actions``: what TD3, DDPG and SAC follow at ``mu(s)``.

    :return: Shape ``(batch, action_dim)``
    """
    with th.enable_grad():
        actions = actions.detach().requires_grad_(True)
        (gradient,) = th.autograd.grad(critic_values(model, observations, actions).sum(), actions)
    return gradient


def critic_smoothed_gradient(
    model: BaseAlgorithm, observations: PyTorchObs, actions: th.Tensor, scale: float, n_directions: int
) -> th.Tensor:
    """
    Finite differences of the critic's *values* at scale ``scale``: ``mean_m (Q(a + scale z_m) - Q(a - scale z_m))
    z_m / (2 scale)`` over orthogonal directions, actions clipped to the box as the world clips them. It estimates the
    critic's Gaussian-smoothed gradient, the quantity the truth is measured as, without using the critic's
    input-gradient (the zeroth-order gradient of a critic, as in oCPG, Saglam and Kalogerias, 2024).

    :param model: A supported model
    :param observations: A batch of observations
    :param actions: Scaled actions, shape ``(batch, action_dim)``
    :param scale: The smoothing scale
    :param n_directions: Number of antithetic pairs per state
    :return: Shape ``(batch, action_dim)``
    """
    directions = orthogonal_normal(n_directions, tuple(actions.shape), actions.device, antithetic=False)
    rows = actions.shape[0]
    with th.no_grad():
        plus = (actions + scale * directions).clamp(-1, 1).reshape(-1, actions.shape[1])
        minus = (actions - scale * directions).clamp(-1, 1).reshape(-1, actions.shape[1])
        repeated = _repeat(observations, n_directions)
        difference = (critic_values(model, repeated, plus) - critic_values(model, repeated, minus)).reshape(-1, rows, 1)
    return (difference * directions).mean(dim=0) / (2 * scale)


def _repeat(observations: PyTorchObs, n: int) -> PyTorchObs:
    if isinstance(observations, dict):
        return {key: value.repeat(n, *([1] * (value.ndim - 1))) for key, value in observations.items()}
    return observations.repeat(n, *([1] * (observations.ndim - 1)))


@contextmanager
def noise_samples(model: DenoisePG, n_samples: int):
    """Within the block, ``model`` draws ``n_samples`` noise samples per transition."""
    saved = model.n_noise_samples
    model.n_noise_samples = n_samples
    try:
        yield model
    finally:
        model.n_noise_samples = saved


def actor_update_gradient(model: DenoisePG, batch: Samples, estimate: Estimate, actions: th.Tensor) -> th.Tensor:
    """
    What DenoisePG's actor step does with ``estimate`` at ``mu(s)``, per state: with a kernel width, the kernel-weighted
    sum of the state's draws (and its control variate's add-back row), each state's total weight its share of the
    batch's; without one, the draw-averaged estimate; for a model whose actor follows a gradient head (the regression
    ablation, ``benchmarks.ablation_variants``), the head at ``mu(s)``. The sum over
    states of these vectors pushed through the actor's Jacobian is the actor's update (up to its RMS normalisation).

    :param model: A DenoisePG
    :param batch: The transitions of the estimate
    :param estimate: ``model.estimate(batch)``
    :param actions: ``mu(s)`` of the batch, shape ``(batch, action_dim)``
    :return: Shape ``(batch, action_dim)``
    """
    if getattr(model, "gradient_head", None) is not None:
        with th.no_grad():
            return model.gradient_head(batch.observations, actions.unsqueeze(0))[0]
    if model.actor_kernel_width is None:
        return estimate.gradient
    add_back = None
    if estimate.critic_gradient is not None:
        add_back = (batch.actions, estimate.sigma, estimate.cv_coefficient * estimate.critic_gradient)
    rows, _, weights = kernel_localised_rows(
        estimate.per_draw, estimate.noisy_actions, actions, model.actor_kernel_width, add_back
    )
    n_draws, n_states, action_dim = estimate.per_draw.shape
    weighted = (weights.unsqueeze(1) * rows).detach()
    per_state = weighted[: n_draws * n_states].reshape(n_draws, n_states, action_dim).sum(dim=0)
    if add_back is not None:
        per_state = per_state + weighted[n_draws * n_states :]
    return per_state * n_states  # mean weight 1 per state, as the other signals


def anchored_gradient(model: DenoisePG, batch: Samples, estimate: Estimate, actions: th.Tensor) -> tuple[th.Tensor, float]:
    """
    The anchored form at ``mu(s)`` (docs/estimator.rst, "The anchored form"): the critic's gradient at ``mu(s)`` plus
    ``eta`` times the data's correction of the critic's gradient at the replay action, ``eta`` by James-Stein
    shrinkage of the batch's corrections.

    :return: Shape ``(batch, action_dim)``, and ``eta``
    """
    at_replay = model.critic_action_gradient(batch.observations, batch.actions)
    corrections = independent_units(estimate.per_draw, model.antithetic) - at_replay
    eta = adaptive_anchor_coefficient(corrections).item() if corrections.shape[0] >= 2 else 0.0
    anchor = model.critic_action_gradient(batch.observations, actions)
    return anchor + eta * corrections.mean(dim=0), eta


def model_signals(
    model: BaseAlgorithm,
    observations: PyTorchObs,
    points: dict[str, th.Tensor],
    scales: tuple[float, ...],
    batch: Samples | None = None,
    critic_directions: int = 64,
    estimate_draws: int = 256,
) -> tuple[dict[tuple[str, str, float | None], th.Tensor], dict[str, Any]]:
    """
    Every signal of ``model`` at every point: ``critic`` (:func:`critic_gradient`) and, at each scale, ``critic_fd``
    (:func:`critic_smoothed_gradient`) at each point; for DenoisePG also, at the ``behaviour`` point (the replay
    action of ``batch``, where the estimate lives): ``estimate`` (its defaults), ``estimate_many`` (``estimate_draws``
    draws: what is left of its error when the draws' variance is averaged away), each also ``_no_cv`` when the model
    uses the critic control variate; at the ``policy`` point: ``actor_update`` (:func:`actor_update_gradient`) and
    ``anchored`` (:func:`anchored_gradient`).

    :param model: A supported model
    :param observations: The states, as the policy takes them
    :param points: Point name -> its scaled actions, shape ``(batch, action_dim)``; ``"behaviour"`` must be the
        actions of ``batch`` and ``"policy"`` ``mu(s)`` for the DenoisePG signals
    :param scales: Smoothing scales of the critic's finite differences
    :param batch: The states' transitions, for DenoisePG's signals
    :param critic_directions: Antithetic pairs of the critic's finite differences
    :param estimate_draws: Draws of ``estimate_many``
    :return: ``(signal, point, scale) -> (batch, action_dim)`` tensor (``scale`` is ``None`` for the signals that have
        none of their own: they are scored against the truth at every scale), and scalars of note (the anchored
        form's ``eta``, the control variate's ``lambda``)
    """
    signals: dict[tuple[str, str, float | None], th.Tensor] = {}
    extras: dict[str, Any] = {}
    for point, actions in points.items():
        signals["critic", point, None] = critic_gradient(model, observations, actions)
        for scale in scales:
            signals["critic_fd", point, scale] = critic_smoothed_gradient(
                model, observations, actions, scale, critic_directions
            )
    if isinstance(model, DenoisePG) and batch is not None:
        estimate = model.estimate(batch)
        with noise_samples(model, estimate_draws):
            many = model.estimate(batch)
        with_cv = estimate.critic_gradient is not None
        for name, result in (("estimate", estimate), ("estimate_many", many)):
            signals[name, "behaviour", None] = result.gradient
            if with_cv:
                signals[f"{name}_no_cv", "behaviour", None] = result.gradient_without_cv
        if with_cv:
            extras["cv_lambda"] = estimate.cv_coefficient
        if "policy" in points:
            policy = points["policy"]
            signals["actor_update", "policy", None] = actor_update_gradient(model, batch, estimate, policy)
            signals["anchored", "policy", None], extras["anchor_eta"] = anchored_gradient(model, batch, estimate, policy)
    return signals, extras
