"""
The critic control variate ``h = (z z^T - I) c`` (docs/estimator.rst, eq. 6 and 7): its functions alone, then in the
model on the linear-Gaussian world, whose gradient is known. It must leave the estimate's expectation where the data
put it, with or without the kernel and whatever the critic, and remove most of its variance where the world is nearly
deterministic.
"""

import copy
from collections import defaultdict

import numpy as np
import pytest
import torch as th

from sb3_denoise_pg.common.estimator import (
    antithetic_normal,
    critic_control_variate,
    expected_kernel_control_variate,
    kernel_localised_rows,
    kernel_log_weights,
    optimal_cv_coefficient,
    orthogonal_normal,
)


def _float64(*tensors):
    return [tensor.double() for tensor in tensors]


def test_control_variate_formula_and_zero_mean():
    z, c = th.tensor([[[1.0, 2.0]]]), th.tensor([[0.5, -1.0]])
    # (z z^T - I) c = z (z . c) - c = [1, 2] * (-1.5) - [0.5, -1]
    th.testing.assert_close(critic_control_variate(z, c), th.tensor([[[-2.0, -2.0]]]))
    generator = th.Generator().manual_seed(0)
    z = th.randn(200_000, 1, 3, generator=generator, dtype=th.float64)
    c = th.tensor([[1.0, -2.0, 0.5]], dtype=th.float64)
    h = critic_control_variate(z, c)
    # E[h] = 0 exactly; the Monte-Carlo mean is within 5 standard errors of it
    standard_error = h.std(dim=0) / np.sqrt(len(z))
    assert (h.mean(dim=0).abs() < 5 * standard_error).all()


def test_optimal_coefficient_finds_the_even_terms_weight_and_is_clipped():
    generator = th.Generator().manual_seed(0)
    z = antithetic_normal(8, (4096, 6)).double()
    c = th.randn(4096, 6, generator=generator, dtype=th.float64)
    h = critic_control_variate(z, c)
    # G = k z z^T c + noise, the deterministic-world form of the estimate: lambda* ~ k
    noise = th.randn(z.shape, generator=generator, dtype=th.float64)
    estimate = 0.3 * (h + c) + noise
    assert optimal_cv_coefficient(estimate, h).item() == pytest.approx(0.3, abs=0.02)
    assert optimal_cv_coefficient(-estimate, h).item() == 0.0
    assert optimal_cv_coefficient(3 * h, h).item() == 1.0
    with pytest.raises(ValueError, match="Shape mismatch"):
        optimal_cv_coefficient(estimate[:, :10], h)


def test_orthogonal_draws_are_orthogonal_paired_and_gaussian_in_scale():
    z = orthogonal_normal(8, (500, 6))
    assert z.shape == (8, 500, 6)
    th.testing.assert_close(z[:4], -z[4:])
    # The independent draws of a transition are orthogonal
    gram = th.einsum("kbd,jbd->bkj", z[:4], z[:4])
    off_diagonal = gram - th.diag_embed(th.diagonal(gram, dim1=1, dim2=2))
    assert off_diagonal.abs().max() < 1e-4
    # Each draw is N(0, I): E[|z|^2] = d, and E[z z^T] = I
    assert z.pow(2).sum(-1).mean().item() == pytest.approx(6.0, rel=0.05)
    second_moment = th.einsum("kbd,kbe->de", z, z) / (8 * 500)
    th.testing.assert_close(second_moment, th.eye(6), atol=0.1, rtol=0)
    # More pairs than dimensions: blocks of orthogonal sets
    assert orthogonal_normal(10, (3, 2)).shape == (10, 3, 2)
    assert orthogonal_normal(3, (3, 2), antithetic=False).shape == (3, 3, 2)


def test_expected_kernel_control_variate_matches_monte_carlo():
    """The closed form of E_z[w(a + sigma z) (z z^T - I)] c against 400k draws of z, per transition."""
    generator = th.Generator().manual_seed(0)
    offsets = 0.3 * th.randn(5, 3, generator=generator, dtype=th.float64)
    c = th.randn(5, 3, generator=generator, dtype=th.float64)
    sigma, width = 0.2, 0.25
    log_expected, direction = expected_kernel_control_variate(offsets, sigma, width, c)
    z = th.randn(400_000, 5, 3, generator=generator, dtype=th.float64)
    weights = th.exp(kernel_log_weights(offsets + sigma * z, th.zeros_like(offsets).expand_as(z), width))
    th.testing.assert_close(th.exp(log_expected), weights.mean(0), rtol=0.01, atol=0)
    weighted_cv = (weights.unsqueeze(-1) * critic_control_variate(z, c)).mean(0)
    th.testing.assert_close(th.exp(log_expected).unsqueeze(-1) * direction, weighted_cv, rtol=0, atol=0.01)
    # Per-row sigma gives the same for equal rows
    _, per_row = expected_kernel_control_variate(offsets, th.full((5, 1), sigma, dtype=th.float64), width, c)
    th.testing.assert_close(per_row, direction)


def _per_transition(rows: th.Tensor, weights: th.Tensor, batch_size: int) -> th.Tensor:
    """sum_r w_r g_r over the rows of each transition (rows in draw-major order, then the add-back rows)."""
    index = th.arange(len(rows)) % batch_size
    return th.zeros(batch_size, rows.shape[1], dtype=rows.dtype).index_add_(0, index, weights.unsqueeze(1) * rows)


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_kernel_weighted_control_variate_keeps_the_weighted_mean(lam):
    """
    The kernel's weights depend on z, so sum_k w_k h_k alone has a non-zero mean (the trap); with its expectation
    added back (eq. 7), the weighted update's numerator has exactly the mean it has without the control variate.
    """
    generator = th.Generator().manual_seed(0)
    th.manual_seed(0)
    batch, dim, n_draws, sigma, width = 64, 4, 8, 0.2, 0.2
    actions = (0.3 * th.randn(batch, dim, generator=generator)).double()
    policy_actions = (0.3 * th.randn(batch, dim, generator=generator)).double()
    c = th.randn(batch, dim, generator=generator, dtype=th.float64)
    differences, uncorrected = [], []
    for _ in range(1000):
        z = antithetic_normal(n_draws, (batch, dim)).double()
        h = critic_control_variate(z, c)
        noisy_actions = actions + sigma * z
        per_draw = 0.5 * (h + c) + th.randn(z.shape, generator=generator, dtype=th.float64)  # any function of z will do
        total_weight = th.exp(kernel_log_weights(noisy_actions, policy_actions.expand_as(z), width)).sum()
        # With the add-back rows, the normaliser is the mean of the draws' total weight and its expectation
        log_expected, _ = expected_kernel_control_variate(actions - policy_actions, sigma, width, c)
        normaliser = (total_weight + n_draws * th.exp(log_expected).sum()) / 2
        plain = _per_transition(*kernel_localised_rows(per_draw, noisy_actions, policy_actions, width)[::2], batch)
        rows, _, weights = kernel_localised_rows(
            per_draw - lam * h, noisy_actions, policy_actions, width, (actions, sigma, lam * c)
        )
        with_cv = _per_transition(rows, weights, batch)
        no_add_back = _per_transition(
            *kernel_localised_rows(per_draw - lam * h, noisy_actions, policy_actions, width)[::2], batch
        )
        differences.append(normaliser * with_cv - total_weight * plain)
        uncorrected.append(total_weight * (no_add_back - plain))
    z_scores = {}
    for name, values in (("with add-back", differences), ("without", uncorrected)):
        values = th.stack(values)
        z_scores[name] = values.mean(dim=0) / (values.std(dim=0) / np.sqrt(len(values)))
    # Over the 256 (transition, dimension) pairs, z-scores of a zero mean have mean square 1 (+/- 0.09)
    assert z_scores["with add-back"].pow(2).mean() < 1.5, z_scores["with add-back"]
    # Without the add-back the bias is plain to see
    assert z_scores["without"].pow(2).mean() > 25, z_scores["without"]


# ---- in the model, on the linear-Gaussian world ----------------------------------------------------------------------

# The nearly deterministic world where the estimate is a noisy finite difference (noise std 0.02, 16 actions), with
# behaviour noise tau = 0.1 comparable to sigma = 0.2, so that k = tau^2 / (tau^2 + sigma^2) = 0.2, and 8 draws
QUIET_16D = dict(action_dim=16, noise_std=0.02, sigma=0.2, tau=0.1, gradient_steps=4000, n_noise_samples=8)


def _wrong_critic(model, offset: float = 3.0):
    """A copy of ``model`` whose critic gradient is wrong: a constant offset and a ripple added to it."""
    model = copy.deepcopy(model)
    critic_gradient = model.critic_action_gradient

    def wrong(observations, actions):
        return critic_gradient(observations, actions) + offset + th.sin(20 * actions)

    model.critic_action_gradient = wrong
    return model


def _mean_and_error(samples: list[th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
    stacked = th.stack(samples).double()
    return stacked.mean(0), stacked.std(0) / np.sqrt(len(stacked))


def _effective_gradient(model, batch) -> th.Tensor:
    """Z * what the actor follows at each transition, Z the draws' total kernel weight (so that means compare)."""
    estimate = model.estimate(batch)
    with th.no_grad():
        actions = model.actor(batch.observations)
    rows, _, weights = model._actor_gradient(batch, estimate, actions, defaultdict(list))
    total_weight = th.exp(
        kernel_log_weights(estimate.noisy_actions, actions.expand_as(estimate.noise), model.actor_kernel_width)
    ).sum()
    return total_weight * _per_transition(rows, weights, len(actions))


@pytest.mark.slow
@pytest.mark.parametrize(
    "world_config",
    [
        # Tests of one fitted world share a worker under `pytest -n 2 --dist loadgroup`: each world is fitted once
        pytest.param(dict(action_dim=4, noise_std=0.3), id="noisy-4d", marks=pytest.mark.xdist_group("noisy-4d")),
        pytest.param(QUIET_16D, id="quiet-16d", marks=pytest.mark.xdist_group("quiet-16d")),
    ],
)
@pytest.mark.parametrize("coefficient", ["optimal", 0.5])
@pytest.mark.parametrize("kernel", [False, True], ids=["plain", "kernel"])
@pytest.mark.parametrize("critic", ["fitted", "wrong"])
def test_the_control_variate_leaves_the_mean_where_the_data_put_it(known_world, world_config, coefficient, kernel, critic):
    """
    Over 200 fresh draws of z on one batch, the mean estimate (or, with the kernel, the mean weighted actor gradient)
    with the control variate equals the mean without it, per transition and action dimension, within Monte-Carlo
    error; also when the critic's gradient is deliberately wrong, so the estimate follows the data, not the critic.
    """
    world = known_world(**world_config)
    model = _wrong_critic(world.model) if critic == "wrong" else copy.deepcopy(world.model)
    batch = world.batch(128, seed=3)
    th.manual_seed(0)
    means = {}
    for control_variate in (None, coefficient):
        model.critic_control_variate = control_variate
        if kernel:
            samples = [_effective_gradient(model, batch) for _ in range(200)]
        else:
            samples = [model.action_gradient(batch) for _ in range(200)]
        means[control_variate] = _mean_and_error(samples)
    (mean_without, error_without), (mean_with, error_with) = means[None], means[coefficient]
    z_scores = (mean_with - mean_without) / (error_with.pow(2) + error_without.pow(2)).sqrt()
    # Under equal means the squared z-scores average 1 (+/- 0.1 over >= 512 entries); a shift of the mean by the
    # critic's error (the offset 3) would put them in the hundreds
    assert z_scores.pow(2).mean() < 1.5, z_scores.pow(2).mean()


def _agreement(world, model, batch) -> tuple[float, float]:
    """Per-transition cosine with the true gradient, and the variance around the (smoothed) truth k * grad_a Q."""
    estimate = model.action_gradient(batch).double().numpy()
    truth = world.true_gradient(batch)
    scale = (estimate * truth).sum() / (truth * truth).sum()
    cosine = (estimate * truth).sum(1) / (np.linalg.norm(estimate, axis=1) * np.linalg.norm(truth, axis=1))
    return float(cosine.mean()), float(((estimate - scale * truth) ** 2).sum(1).mean())


@pytest.mark.slow
@pytest.mark.xdist_group("quiet-16d")
def test_the_control_variate_removes_most_of_the_variance_in_a_nearly_deterministic_world(known_world):
    """
    At 16 actions in the nearly deterministic world, measured on 4096 fresh transitions: per-transition cosine with
    the true gradient 0.42 without the control variate, 0.62 with the batch's lambda* (about 0.15, near k = 0.2), and
    the variance around the smoothed truth 2.0x smaller; with 2 draws and the control variate the cosine (0.46) is
    that of 8 draws without. The margins below leave room for seeds.
    """
    world = known_world(**QUIET_16D)
    model = copy.deepcopy(world.model)
    batch = world.batch(4096, seed=5)
    results = {}
    for n_draws, control_variate in ((8, None), (8, "optimal"), (2, None), (2, "optimal")):
        model.n_noise_samples, model.critic_control_variate = n_draws, control_variate
        th.manual_seed(1)
        results[n_draws, control_variate] = _agreement(world, model, batch)
    (cos_without, var_without), (cos_with, var_with) = results[8, None], results[8, "optimal"]
    assert cos_with > cos_without + 0.12, results
    assert var_with < var_without / 1.6, results
    assert results[2, "optimal"][0] > results[2, None][0] + 0.15, results
    th.manual_seed(1)
    assert 0.05 < model.estimate(batch).cv_coefficient < 0.35
    # A wrong critic gets a smaller lambda*: the data, not the critic, decide how much of it to use
    th.manual_seed(1)
    assert _wrong_critic(model).estimate(batch).cv_coefficient < 0.5 * model.estimate(batch).cv_coefficient
