"""
The score-difference estimator of ``grad_a Q(s, a)``, its critic control variate and the losses around it, as small
functions that can be tested alone. Equation numbers refer to the derivation in ``docs/estimator.rst``.
"""

import math
from typing import NamedTuple

import torch as th
from torch.nn import functional as F

Sigma = float | th.Tensor  # one noise scale for the batch, or one per transition (shape (batch, 1))


class Estimate(NamedTuple):
    """The score-difference estimate and what it was made of (for the actor update and the diagnostics)."""

    gradient: th.Tensor  # (batch, action_dim), averaged over the noise draws, control variate applied
    per_draw: th.Tensor  # (n_draws, batch, action_dim), the estimate of each draw, control variate applied
    noise: th.Tensor  # (n_draws, batch, action_dim), the unit-scale draws z
    sigma: Sigma  # the noise scale of a~ = a + sigma z
    noisy_actions: th.Tensor  # (n_draws, batch, action_dim)
    denoised_cond: th.Tensor  # (n_draws * batch, action_dim)
    denoised_uncond: th.Tensor  # (n_draws * batch, action_dim)
    critic_gradient: th.Tensor | None = None  # (batch, action_dim), c = grad_a b(s, a) when a control variate is used
    cv_coefficient: float = 0.0  # lambda

    @property
    def gradient_without_cv(self) -> th.Tensor:
        """The draw-averaged estimate without the control variate, ``mean_k G_k``."""
        if self.critic_gradient is None:
            return self.gradient
        return self.gradient + self.cv_coefficient * critic_control_variate(self.noise, self.critic_gradient).mean(dim=0)


def _check_same_shape(**tensors: th.Tensor) -> None:
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"Shape mismatch: {shapes}")


def independent_draws(n_samples: int, antithetic: bool = True) -> int:
    """
    How many of ``n_samples`` draws are drawn independently: the first of each antithetic pair (and an unpaired last
    draw), or all of them without pairs.

    :param n_samples: Number of draws
    :param antithetic: Whether the draws come in antithetic pairs
    """
    return (n_samples + 1) // 2 if antithetic else n_samples


def antithetic_normal(
    n_samples: int, shape: tuple[int, ...], device: th.device | str = "cpu", antithetic: bool = True
) -> th.Tensor:
    """
    Standard normal draws ``z`` of shape ``(n_samples, *shape)``, in antithetic pairs ``(z, -z)`` when asked.

    Pairing cancels every term of the estimate that is odd in ``z`` (the ``-k delta z / sigma`` term of the
    deterministic-world reduction, docs/estimator.rst), at no extra cost. With an odd ``n_samples`` the last
    draw is unpaired.

    :param n_samples: Number of draws
    :param shape: Shape of one draw
    :param device: Torch device
    :param antithetic: Whether to pair each draw with its negation
    :return: Tensor of shape ``(n_samples, *shape)``
    """
    if not antithetic:
        return th.randn((n_samples, *shape), device=device)
    half = th.randn((independent_draws(n_samples), *shape), device=device)
    return th.cat([half, -half], dim=0)[:n_samples]


def orthogonal_normal(
    n_samples: int, shape: tuple[int, int], device: th.device | str = "cpu", antithetic: bool = True
) -> th.Tensor:
    """
    Draws ``z`` of shape ``(n_samples, batch, dim)`` whose independent draws (the first of each antithetic pair) are,
    per row of the batch, orthogonal directions (uniformly rotated) scaled by chi-distributed norms, in blocks of
    ``dim`` when there are more draws than dimensions. Each draw is still ``N(0, I)`` on its own, so every identity
    of the estimator holds; together, ``sum_k z_k z_k^T`` of a block is far closer to isotropic than independent
    draws give (orthogonal evolution strategies).

    :param n_samples: Number of draws
    :param shape: ``(batch, dim)``
    :param device: Torch device
    :param antithetic: Whether to pair each draw with its negation
    :return: Tensor of shape ``(n_samples, batch, dim)``
    """
    batch, dim = shape
    n_independent = independent_draws(n_samples, antithetic)
    blocks = []
    for start in range(0, n_independent, dim):
        width = min(dim, n_independent - start)
        # QR of a Gaussian matrix, its columns' signs fixed by R's diagonal: a uniformly random orthonormal set
        q, r = th.linalg.qr(th.randn(batch, dim, width, device=device))
        q = q * th.sign(th.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(1)
        norms = th.randn(batch, dim, width, device=device).norm(dim=1, keepdim=True)  # chi with dim degrees
        blocks.append((q * norms).permute(2, 0, 1))
    independent = th.cat(blocks, dim=0)
    if not antithetic:
        return independent
    return th.cat([independent, -independent], dim=0)[:n_samples]


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

    The baseline must have been evaluated at the noised action ``a~``: only a function of ``(s, a~)`` has
    ``E[b g | a~] = 0``, so only then is the baseline unbiased (docs/estimator.rst, "The baseline").

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
    saturation (docs/estimator.rst, "From the estimate to the actor").

    :param gradient: Shape ``(batch, action_dim)``
    :param eps: Guards against division by zero
    :return: Same shape, with unit root-mean-square
    """
    return gradient / (gradient.pow(2).mean().sqrt() + eps)


def kernel_log_weights(noisy_actions: th.Tensor, policy_actions: th.Tensor, width: float) -> th.Tensor:
    """
    Log of the unnormalised Gaussian kernel ``w(a~) = exp(-mean_j (a~_j - mu_j)^2 / (2 width^2))`` that localises the
    actor update around the current policy's actions (see :func:`kernel_weights`).

    :param noisy_actions: The draws' ``a~``, shape ``(..., action_dim)``
    :param policy_actions: ``mu_theta(s)`` of each draw, same shape; never differentiated
    :param width: Kernel width per action dimension, in the scaled action space
    :return: Shape ``noisy_actions.shape[:-1]``
    """
    _check_same_shape(noisy_actions=noisy_actions, policy_actions=policy_actions)
    return -(noisy_actions - policy_actions.detach()).pow(2).mean(dim=-1) / (2 * width**2)


def kernel_weights(noisy_actions: th.Tensor, policy_actions: th.Tensor, width: float) -> th.Tensor:
    """
    Weights that localise the actor update around the current policy's actions: ``G_hat`` of a draw is a gradient
    at its noised action ``a~``, taken from an older policy's transition, a good stand-in for ``grad_a Q`` at
    ``mu_theta(s)`` only when ``a~`` is near it. ``w`` is proportional to ``exp(-mean_j (a~_j - mu_j)^2 / (2 width^2))``,
    normalised to sum to 1 over the rows (a softmax, stable however far the actor has moved).

    The weights must depend on ``(s, a~)`` only: any function of ``(s, a~)`` times the estimate keeps its
    expectation given ``(s, a~)`` (docs/estimator.rst, eq. 5), while a weight on the clean replay action ``a``
    correlates with the score difference ``D(a~|s,o) - D(a~|s)`` and biases it.

    :param noisy_actions: The draws' ``a~``, shape ``(rows, action_dim)``
    :param policy_actions: ``mu_theta(s)`` of each row, shape ``(rows, action_dim)``; never differentiated
    :param width: Kernel width per action dimension, in the scaled action space
    :return: Shape ``(rows,)``, summing to 1
    """
    return th.softmax(kernel_log_weights(noisy_actions, policy_actions, width), dim=0)


def critic_control_variate(noise: th.Tensor, critic_gradient: th.Tensor) -> th.Tensor:
    """
    The critic control variate of each draw, ``h_k = (z_k z_k^T - I) c`` (docs/estimator.rst, eq. 6), with ``c`` the
    baseline critic's input-gradient at the clean replay action. ``z`` is drawn by us, independently of the data,
    and ``E[z z^T] = I``: ``E[h | s, a, o] = 0`` exactly, whatever the world and however wrong the critic, so
    ``G_k - lambda h_k`` has the expectation of ``G_k`` for any fixed ``lambda``.

    :param noise: The unit-scale draws ``z``, shape ``(n_draws, batch, action_dim)``
    :param critic_gradient: ``c = grad_a b(s, a)``, shape ``(batch, action_dim)``
    :return: ``h``, shape ``(n_draws, batch, action_dim)``
    """
    _check_same_shape(noise=noise[0], critic_gradient=critic_gradient)
    return noise * (noise * critic_gradient).sum(dim=-1, keepdim=True) - critic_gradient


def optimal_cv_coefficient(per_draw: th.Tensor, control_variate: th.Tensor, eps: float = 1e-12) -> th.Tensor:
    """
    The variance-minimising coefficient of a batch, ``lambda* = <G, h> / <h, h>`` over every draw, transition and
    action dimension, clipped to ``[0, 1]``. Since ``E[h] = 0`` exactly, ``<G, h>`` estimates ``Cov(G, h)`` without
    centring ``G`` (centring it per transition would cancel the even part of an antithetic pair, whose two draws share
    ``h``). Fitted on the batch it is applied to, it adds an O(1/batch) bias, as any fitted control variate does.

    :param per_draw: The estimates ``G_k``, shape ``(n_draws, batch, action_dim)``
    :param control_variate: ``h_k``, same shape
    :return: Scalar tensor in ``[0, 1]``
    """
    _check_same_shape(per_draw=per_draw, control_variate=control_variate)
    return ((per_draw * control_variate).sum() / (control_variate.pow(2).sum() + eps)).clamp(0.0, 1.0)


def expected_kernel_control_variate(
    offsets: th.Tensor, sigma: float | th.Tensor, width: float, critic_gradient: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """
    ``E_z[w(a + sigma z) (z z^T - I)] c`` in closed form, for the unnormalised kernel of :func:`kernel_log_weights`
    (docs/estimator.rst, eq. 7): the kernel weighs each draw by a function of ``z``, so the weighted control
    variate no longer has mean zero; adding this back makes the weighted estimate's expectation exactly that of the
    weighted estimate without the control variate. No network pass: only ``u = a - mu_theta(s)``, ``sigma`` and ``c``.

    With ``beta = 1 / (d width^2)`` and ``q = 1 + beta sigma^2``: ``E_z[w] = q^(-d/2) exp(-beta |u|^2 / (2 q))``, the
    tilted mean is ``m = -beta sigma u / q`` and ``E_z[w (z z^T - I)] = E_z[w] ((1/q - 1) I + m m^T)``.

    :param offsets: ``u = a - mu_theta(s)``, shape ``(batch, action_dim)``; never differentiated
    :param sigma: The noise scale of ``a~ = a + sigma z``, one for all rows or one per row (``(batch, 1)``)
    :param width: Kernel width per action dimension
    :param critic_gradient: ``c``, shape ``(batch, action_dim)``
    :return: ``log E_z[w]``, shape ``(batch,)``, and ``E_z[w (z z^T - I)] c / E_z[w]``, shape ``(batch, action_dim)``
    """
    _check_same_shape(offsets=offsets, critic_gradient=critic_gradient)
    offsets = offsets.detach()
    dim = offsets.shape[-1]
    beta = 1.0 / (dim * width**2)
    q = 1.0 + beta * th.as_tensor(sigma, dtype=offsets.dtype, device=offsets.device) ** 2
    log_expected_weight = (-0.5 * dim * th.log(q) - beta * offsets.pow(2).sum(dim=-1, keepdim=True) / (2 * q)).squeeze(-1)
    tilted_mean = -beta * th.as_tensor(sigma, dtype=offsets.dtype, device=offsets.device) * offsets / q
    direction = (1.0 / q - 1.0) * critic_gradient + tilted_mean * (tilted_mean * critic_gradient).sum(dim=-1, keepdim=True)
    return log_expected_weight.expand(offsets.shape[0]), direction


def kernel_localised_rows(
    per_draw: th.Tensor,
    noisy_actions: th.Tensor,
    policy_actions: th.Tensor,
    width: float,
    add_back: tuple[th.Tensor, float | th.Tensor, th.Tensor] | None = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """
    The rows of the kernel-localised actor update: each draw's estimate at its ``a~`` with its kernel weight and,
    with a control variate, one more row per transition that adds back the weighted control variate's expectation
    (:func:`expected_kernel_control_variate`), weighted by the expected total weight of the transition's draws.
    ``sum_r w_r g_r`` over the rows of transition ``i`` is what the actor follows at ``mu_theta(s_i)``.

    The weights are normalised by the batch's total weight of the draws. With a control variate, that total is
    averaged with its expectation (the add-back rows' total weight, the same in expectation): the normaliser keeps its
    mean and its value can never vanish beside an add-back row, as the draws' total alone does when every draw lies far
    from ``mu_theta(s)`` in kernel widths (a kernel much narrower than the noise). Every weight is finite.

    :param per_draw: ``G_k`` (or ``G_k - lambda h_k``), shape ``(n_draws, batch, action_dim)``
    :param noisy_actions: ``a~``, same shape
    :param policy_actions: ``mu_theta(s)``, shape ``(batch, action_dim)``
    :param width: Kernel width per action dimension
    :param add_back: ``(replay actions a, sigma, lambda * c)`` when a control variate was subtracted
    :return: Gradient rows ``(rows, action_dim)``, their policy actions ``(rows, action_dim)`` and weights ``(rows,)``
    """
    n_draws, batch_size, action_dim = per_draw.shape
    log_weights = kernel_log_weights(noisy_actions, policy_actions.expand(n_draws, batch_size, action_dim), width)
    draws_log_weights = log_weights.reshape(-1)
    rows, row_actions, row_log_weights = per_draw.reshape(-1, action_dim), policy_actions.repeat(n_draws, 1), draws_log_weights
    normaliser_log_weights = draws_log_weights
    if add_back is not None:
        replay_actions, sigma, scaled_critic_gradient = add_back
        log_expected, direction = expected_kernel_control_variate(
            replay_actions - policy_actions, sigma, width, scaled_critic_gradient
        )
        expected_log_weights = log_expected + math.log(n_draws)
        rows, row_actions = th.cat([rows, direction]), th.cat([row_actions, policy_actions])
        row_log_weights = th.cat([draws_log_weights, expected_log_weights])
        # log((sum of the draws' weights + its expectation) / 2)
        normaliser_log_weights = th.cat([draws_log_weights, expected_log_weights]) - math.log(2.0)
    # One shift for all rows keeps exp() in range without changing any ratio; the largest row is among the
    # normaliser's, so the normaliser is >= its weight and no weight exceeds 2
    shift = row_log_weights.max().detach()
    weights = th.exp(row_log_weights - shift) / th.exp(normaliser_log_weights - shift).sum()
    return rows, row_actions, weights


def independent_units(per_draw: th.Tensor, antithetic: bool) -> th.Tensor:
    """
    The draws' estimates grouped into independent units: the mean of each antithetic pair (draws ``k`` and
    ``k + ceil(n / 2)``, the order of ``antithetic_normal`` and ``orthogonal_normal``), an unpaired last draw on its
    own, or each draw when the draws are not paired. The two draws of a pair share the even part of the estimate,
    so only pair means vary independently.

    :param per_draw: Shape ``(n_draws, batch, action_dim)``
    :param antithetic: Whether the draws come in antithetic pairs
    :return: Shape ``(n_units, batch, action_dim)``
    """
    if not antithetic:
        return per_draw
    n_draws = per_draw.shape[0]
    half = independent_draws(n_draws)
    paired = (per_draw[: n_draws - half] + per_draw[half:]) / 2
    return th.cat([paired, per_draw[n_draws - half : half]])


def adaptive_anchor_coefficient(corrections: th.Tensor, eps: float = 1e-12) -> th.Tensor:
    """
    The batch's ``eta`` of the anchored form: positive-part James-Stein shrinkage of the corrections
    ``Delta_i = mean_j u_ij`` toward zero, ``eta = max(0, 1 - N / |Delta|^2)`` over the batch, with ``N`` the
    corrections' noise ``sum_i tr Var(Delta_i)`` estimated from the spread of each transition's independent units.
    ``eta`` estimates ``|E Delta|^2 / E |Delta|^2``: near 1 when the data's correction stands out of its own noise,
    0 when it does not (and the update is the critic's). The noise is that of the draws given the transition only:
    a denoiser's systematic error counts as signal.

    :param corrections: Independent units ``u_ij = G_ij - lambda h_ij - c_i``, shape ``(n_units, batch, action_dim)``,
        ``n_units >= 2``
    :return: Scalar tensor in ``[0, 1]``
    """
    n_units = corrections.shape[0]
    if n_units < 2:
        raise ValueError(f"The adaptive anchor needs at least 2 independent units per transition, got {n_units}")
    noise = corrections.var(dim=0, unbiased=True).sum() / n_units
    return (1.0 - noise / (corrections.mean(dim=0).pow(2).sum() + eps)).clamp(0.0, 1.0)


def actor_loss_from_gradient(actions: th.Tensor, action_gradient: th.Tensor, weights: th.Tensor | None = None) -> th.Tensor:
    """
    Actor loss ``L = -sum_i w_i < stopgrad(G_i), mu_theta(s_i) >`` (docs/estimator.rst, "From the estimate
    to the actor"; uniform ``w_i = 1 / batch`` by default): its gradient with respect to theta is
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
    (``train/actor_saturation``).

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
