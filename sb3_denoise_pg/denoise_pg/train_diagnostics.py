"""
What DenoisePG's ``train()`` logs of its estimate beyond the losses, every ``diagnostics_interval`` gradient steps
(under ``train/``): the denoiser's reconstruction errors with and without the outcome, the cosine of the estimate with
the critic's input-gradient per transition and per batch, and the estimate's spread over the batch, each also without
the critic control variate when it is on.
"""

from typing import Any, ClassVar

from sb3_denoise_pg.common.estimator import Estimate, cosine_similarity


class EstimateDiagnostics:
    """The diagnostics of :class:`~sb3_denoise_pg.DenoisePG`'s estimate (it needs the model's logger and critic)."""

    # Gradient steps between two records of the diagnostics (they cost a critic backward pass: ~15% of a step)
    diagnostics_interval: ClassVar[int] = 100

    def _record_diagnostics(self, replay_data: Any, estimate: Estimate) -> None:
        """Denoiser reconstruction errors, the estimate's variance and its agreement with the critic, on one batch."""
        n_draws = estimate.noisy_actions.shape[0]
        clean = replay_data.actions.repeat(n_draws, 1)
        self.logger.record("train/denoiser_mse_cond", (estimate.denoised_cond - clean).pow(2).mean().item())
        self.logger.record("train/denoiser_mse_uncond", (estimate.denoised_uncond - clean).pow(2).mean().item())
        critic_gradient = self.critic_action_gradient(replay_data.observations, estimate.noisy_actions.mean(dim=0))
        suffixes = {"": estimate.gradient}
        if estimate.critic_gradient is not None:
            suffixes["_without_cv"] = estimate.gradient_without_cv
        for suffix, gradient in suffixes.items():
            cosine = cosine_similarity(gradient, critic_gradient)
            self.logger.record(f"train/cos_critic_gradient{suffix}", cosine.mean().item())
            batch_cosine = cosine_similarity(gradient.mean(0, keepdim=True), critic_gradient.mean(0, keepdim=True))
            self.logger.record(f"train/cos_critic_gradient_batch{suffix}", batch_cosine.item())
            # Spread of the per-transition estimates around their batch mean
            self.logger.record(f"train/estimate_variance{suffix}", (gradient - gradient.mean(0)).pow(2).sum(1).mean().item())
