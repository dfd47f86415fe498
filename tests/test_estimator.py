"""The estimator: its functions alone, then the whole of it on a world whose gradient is known (docs/estimator.rst)."""

import pytest
import torch as th

from sb3_denoise_pg.common.estimator import (
    actor_loss_from_gradient,
    antithetic_normal,
    denoising_loss,
    normalize_by_rms,
    preactivation_penalty,
    saturation,
    score_difference,
    score_difference_gradient,
    td_loss,
)


def test_antithetic_pairs_cancel():
    z = antithetic_normal(6, (5, 3))
    assert z.shape == (6, 5, 3)
    th.testing.assert_close(z[:3], -z[3:])
    assert antithetic_normal(5, (2,)).shape == (5, 2)
    assert not th.allclose(antithetic_normal(2, (4,), antithetic=False).sum(0), th.zeros(4))


def test_score_difference_divides_by_sigma_squared():
    cond, uncond = th.tensor([[0.3, -0.1]]), th.tensor([[0.1, 0.1]])
    th.testing.assert_close(score_difference(cond, uncond, sigma=0.1), th.tensor([[20.0, -20.0]]))


def test_one_sigma_per_row():
    """Several noise levels: each row is divided by its own sigma^2, in the score and in the denoiser's loss."""
    cond, uncond, sigma = th.tensor([[0.3, -0.1], [0.3, -0.1]]), th.tensor([[0.1, 0.1], [0.1, 0.1]]), th.tensor([[0.1], [0.2]])
    th.testing.assert_close(score_difference(cond, uncond, sigma), th.tensor([[20.0, -20.0], [5.0, -5.0]]))
    denoised, clean = th.tensor([[1.1, 1.1], [1.2, 1.2]]), th.ones(2, 2)
    th.testing.assert_close(denoising_loss(denoised, clean, sigma), th.tensor(1.0))


def test_score_difference_gradient_formula_and_shapes():
    targets, baselines = th.tensor([[2.0], [1.0]]), th.tensor([[1.0], [3.0]])
    cond, uncond = th.tensor([[0.2, 0.0], [0.0, 0.1]]), th.zeros(2, 2)
    expected = th.tensor([[1.0 * 0.2, 0.0], [0.0, -2.0 * 0.1]]) / 0.5**2
    th.testing.assert_close(score_difference_gradient(targets, baselines, cond, uncond, sigma=0.5), expected)
    with pytest.raises(ValueError, match="Shape mismatch"):
        score_difference_gradient(targets, baselines[:1], cond, uncond, 0.5)
    with pytest.raises(ValueError, match="td_targets must have shape"):
        score_difference_gradient(targets[:, 0], baselines[:, 0], cond, uncond, 0.5)
    with pytest.raises(ValueError, match="Shape mismatch"):
        score_difference(cond, uncond[:, :1], 0.5)


def test_actor_loss_follows_the_estimate_and_never_differentiates_it():
    actions = th.tensor([[0.1, -0.2], [0.3, 0.0]], requires_grad=True)
    gradient = th.tensor([[1.0, 2.0], [-1.0, 0.5]], requires_grad=True)
    actor_loss_from_gradient(actions, gradient).backward()
    # d(-mean_i <G_i, a_i>)/da = -G / batch
    th.testing.assert_close(actions.grad, -gradient.detach() / 2)
    assert gradient.grad is None


def test_losses():
    th.testing.assert_close(denoising_loss(th.ones(4, 2) * 1.1, th.ones(4, 2), sigma=0.1), th.tensor(1.0))
    q1, q2, target = th.zeros(3, 1), th.ones(3, 1), th.ones(3, 1)
    th.testing.assert_close(td_loss((q1, q2), target), th.tensor(1.0))
    g = th.randn(8, 3) * 50
    assert normalize_by_rms(g).pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    # Sum over action dimensions, mean over the batch; its gradient 2 u / batch grows with u, where tanh's vanishes
    u = th.tensor([[1.0, -2.0], [3.0, 0.0]], requires_grad=True)
    th.testing.assert_close(preactivation_penalty(u), th.tensor(7.0))
    preactivation_penalty(u).backward()
    th.testing.assert_close(u.grad, u.detach())
    assert saturation(th.tensor([[0.995, -1.0], [0.5, -0.2]])) == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("action_dim", [1, pytest.param(4, marks=pytest.mark.xdist_group("noisy-4d"))])
def test_action_gradient_matches_true_gradient_in_noisy_world(action_dim, known_world):
    world = known_world(action_dim=action_dim, noise_std=0.3)
    batch = world.batch(4096, seed=action_dim)
    assert world.model.action_gradient(batch).shape == (4096, action_dim)
    batch_cos, _, ratio = world.agreement(batch)
    assert batch_cos >= 0.95
    # The sigma-smoothed target has norm tau^2 / (tau^2 + sigma^2) = 0.9 of the true gradient's
    assert 0.6 < ratio < 1.2
