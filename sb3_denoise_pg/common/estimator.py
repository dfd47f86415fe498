"""
The score-difference estimator of ``grad_a Q(s, a)`` and the losses around it, as small functions that can be
tested alone. Equation numbers refer to ``shared/design/ESTIMATOR.md`` ("The chain of identities").
"""

import torch as th
from torch.nn import functional as F


def _check_same_shape(**tensors: th.Tensor) -> None:
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"Shape mismatch: {shapes}")


def antithetic_normal(
    n_samples: int, shape: tuple[int, ...], device: th.device | str = "cpu", antithetic: bool = True
) -> th.Tensor:
    """
    Standard normal draws ``z`` of shape ``(n_samples, *shape)``, in antithetic pairs ``(z, -z)`` when asked.

    Pairing cancels every term of the estimate that is odd in ``z`` (the ``-k delta z / sigma`` term of
    ESTIMATOR.md, "Where the noise in G_hat comes from"), at no extra cost. With an odd ``n_samples`` the last
    draw is unpaired.

    :param n_samples: Number of draws
    :param shape: Shape of one draw
    :param device: Torch device
    :param antithetic: Whether to pair each draw with its negation
    :return: Tensor of shape ``(n_samples, *shape)``
    """
    if not antithetic:
        return th.randn((n_samples, *shape), device=device)
    half = th.randn(((n_samples + 1) // 2, *shape), device=device)
    return th.cat([half, -half], dim=0)[:n_samples]


def score_difference(denoised_cond: th.Tensor, denoised_uncond: th.Tensor, sigma: float | th.Tensor) -> th.Tensor:
    """
    Estimate of ``grad_a log p(o | s, a)`` at the noised action (eq. 3 and 4):
    ``(D(a~ | s, o) - D(a~ | s)) / sigma^2``. Tweedie's formula needs the division by ``sigma^2``: the seed
    post drops it because it assumes unit noise.

    :param denoised_cond: ``D(a~ | s, o)``, shape ``(n, action_dim)``
    :param denoised_uncond: ``D(a~ | s)``, shape ``(n, action_dim)``
    :param sigma: Standard deviation of the noise that made ``a~``, one for all rows or one per row (``(n, 1)``)
    :return: Score difference, shape ``(n, action_dim)``
    """
    _check_same_shape(denoised_cond=denoised_cond, denoised_uncond=denoised_uncond)
    return (denoised_cond - denoised_uncond) / sigma**2


def score_difference_gradient(
    td_targets: th.Tensor,
    baselines: th.Tensor,
    denoised_cond: th.Tensor,
    denoised_uncond: th.Tensor,
    sigma: float | th.Tensor,
) -> th.Tensor:
    """
    One-sample estimate of ``grad_a Q(s, a)`` (eq. 5): ``G_hat = (y - b(s, a~)) * (D(a~|s,o) - D(a~|s)) / sigma^2``.

    The baseline must have been evaluated at the noised action ``a~`` (trap 1 of ESTIMATOR.md): only then is
    ``E[b g | a~] = 0`` and the control variate unbiased.

    :param td_targets: ``y = r + gamma (1 - done) V(s')``, shape ``(n, 1)``
    :param baselines: ``b(s, a~)``, shape ``(n, 1)``
    :param denoised_cond: ``D(a~ | s, o)``, shape ``(n, action_dim)``
    :param denoised_uncond: ``D(a~ | s)``, shape ``(n, action_dim)``
    :param sigma: Standard deviation of the denoiser's noise, one for all rows or one per row (``(n, 1)``)
    :return: ``G_hat``, shape ``(n, action_dim)``
    """
    _check_same_shape(td_targets=td_targets, baselines=baselines)
    if td_targets.ndim != 2 or td_targets.shape[1] != 1 or td_targets.shape[0] != denoised_cond.shape[0]:
        raise ValueError(f"td_targets must have shape ({denoised_cond.shape[0]}, 1), got {tuple(td_targets.shape)}")
    return (td_targets - baselines) * score_difference(denoised_cond, denoised_uncond, sigma)


def normalize_by_rms(gradient: th.Tensor, eps: float = 1e-8) -> th.Tensor:
    """
    Divide a batch of gradient estimates by their root-mean-square over the batch: keeps the direction of the
    batch's update but bounds its size, so that a noisy large ``G_hat`` cannot drive the actor into tanh
    saturation (ESTIMATOR.md, "What has been seen so far").

    :param gradient: Shape ``(batch, action_dim)``
    :param eps: Guards against division by zero
    :return: Same shape, with unit root-mean-square
    """
    return gradient / (gradient.pow(2).mean().sqrt() + eps)


def kernel_weights(noisy_actions: th.Tensor, policy_actions: th.Tensor, width: float) -> th.Tensor:
    """
    Weights that localise the actor update around the current policy's actions: ``G_hat`` of a draw is a gradient
    at its noised action ``a~``, taken from an older policy's transition, a good stand-in for ``grad_a Q`` at
    ``mu_theta(s)`` only when ``a~`` is near it. ``w`` is proportional to ``exp(-mean_j (a~_j - mu_j)^2 / (2 width^2))``,
    normalised to sum to 1 over the rows (a softmax, stable however far the actor has moved).

    The weights must depend on ``(s, a~)`` only: any function of ``(s, a~)`` times the estimate keeps its
    expectation given ``(s, a~)`` (ESTIMATOR.md, eq. 5), while a weight on the clean replay action ``a`` correlates
    with the score difference ``D(a~|s,o) - D(a~|s)`` and biases it.

    :param noisy_actions: The draws' ``a~``, shape ``(rows, action_dim)``
    :param policy_actions: ``mu_theta(s)`` of each row, shape ``(rows, action_dim)``; never differentiated
    :param width: Kernel width per action dimension, in the scaled action space
    :return: Shape ``(rows,)``, summing to 1
    """
    _check_same_shape(noisy_actions=noisy_actions, policy_actions=policy_actions)
    squared_distance = (noisy_actions - policy_actions.detach()).pow(2).mean(dim=1)
    return th.softmax(-squared_distance / (2 * width**2), dim=0)


def actor_loss_from_gradient(actions: th.Tensor, action_gradient: th.Tensor, weights: th.Tensor | None = None) -> th.Tensor:
    """
    Actor loss ``L = -sum_i w_i < stopgrad(G_i), mu_theta(s_i) >`` (ESTIMATOR.md, "From the estimate to the
    actor"; uniform ``w_i = 1 / batch`` by default): its gradient with respect to theta is
    ``-sum_i w_i G_i . grad_theta mu_theta(s_i)``, the deterministic policy gradient with ``G`` in place of
    ``grad_a Q``.

    :param actions: ``mu_theta(s)``, differentiable, shape ``(batch, action_dim)``
    :param action_gradient: Estimate of ``grad_a Q``, shape ``(batch, action_dim)``; never differentiated
    :param weights: Per-sample weights summing to 1, shape ``(batch,)``; never differentiated
    :return: Scalar loss
    """
    _check_same_shape(actions=actions, action_gradient=action_gradient)
    per_sample = (actions * action_gradient.detach()).sum(dim=1)
    if weights is None:
        return -per_sample.mean()
    return -(weights.detach() * per_sample).sum()


def preactivation_penalty(preactivations: th.Tensor) -> th.Tensor:
    """
    ``mean_i ||u_i||^2`` of the actor's pre-tanh outputs ``u``: its gradient ``2 u / batch`` grows where tanh's
    vanishes, so that the actor is pulled back from saturation unless the estimate keeps pushing it there.

    :param preactivations: Shape ``(batch, action_dim)``
    :return: Scalar penalty
    """
    return preactivations.pow(2).sum(dim=1).mean()


def saturation(actions: th.Tensor, threshold: float = 0.99) -> float:
    """
    Share of action dimensions beyond ``|threshold|`` of the tanh bounds, where the actor's gradient vanishes
    (``train/actor_saturation``; ESTIMATOR.md, "Diagnostics worth logging").

    :param actions: Scaled actions in ``[-1, 1]``, any shape
    :param threshold: Where an action counts as saturated
    :return: A fraction in ``[0, 1]``
    """
    return (actions.detach().abs() > threshold).float().mean().item()


def denoising_loss(denoised: th.Tensor, clean_actions: th.Tensor, sigma: float | th.Tensor) -> th.Tensor:
    """
    MSE of the denoiser in units of the noise: ``mean ||D(a~) - a||^2 / sigma^2``. Minimised by
    ``D = E[a | a~, ...]``, the posterior mean that Tweedie's formula needs; dividing by ``sigma^2`` keeps the
    loss, and so the learning rate, independent of the noise level.

    :param denoised: Denoiser output, shape ``(n, action_dim)``
    :param clean_actions: Replay actions ``a``, shape ``(n, action_dim)``
    :param sigma: Noise standard deviation, one for all rows or one per row (shape ``(n, 1)``)
    :return: Scalar loss
    """
    _check_same_shape(denoised=denoised, clean_actions=clean_actions)
    return ((denoised - clean_actions).pow(2) / sigma**2).mean()


def gradient_regression_loss(predicted: th.Tensor, estimates: th.Tensor) -> th.Tensor:
    """
    Loss of the regression head ``G_omega``: the MSE to the estimates, minimised by ``E[G_hat | s, a~]``, which is
    ``grad_a Q`` smoothed by the noise (ESTIMATOR.md, eq. 5 and "From the estimate to the actor").

    :param predicted: ``G_omega(s, a~)``, any shape
    :param estimates: ``G_hat`` at the same ``(s, a~)``, same shape; never differentiated
    :return: Scalar loss
    """
    _check_same_shape(predicted=predicted, estimates=estimates)
    return F.mse_loss(predicted, estimates.detach())


def td_loss(current_q_values: tuple[th.Tensor, ...], td_targets: th.Tensor) -> th.Tensor:
    """
    Sum over the critics of the MSE to the TD target (clipped double-Q, as TD3).

    :param current_q_values: One ``(batch, 1)`` tensor per critic
    :param td_targets: Shape ``(batch, 1)``, computed without gradient
    :return: Scalar loss
    """
    for q_values in current_q_values:
        _check_same_shape(q_values=q_values, td_targets=td_targets)
    return th.stack([F.mse_loss(q_values, td_targets) for q_values in current_q_values]).sum()


def cosine_similarity(a: th.Tensor, b: th.Tensor) -> th.Tensor:
    """
    Row-wise cosine of two batches of vectors; rows of zero norm give 0.

    :param a: Shape ``(n, d)``
    :param b: Shape ``(n, d)``
    :return: Shape ``(n,)``
    """
    _check_same_shape(a=a, b=b)
    return F.cosine_similarity(a, b, dim=-1, eps=1e-12)
