"""
The Rao-Blackwellised estimate against today's, on the linear-Gaussian world, where the smoothed gradient is known.

Conditioning the denoiser on the TD target ``y`` instead of the whole outcome (``denoiser_condition="td_target"``)
replaces the estimate by its conditional expectation given ``y``: for exact denoisers the same mean and a variance no
larger (docs/estimator.rst, "Conditioning on the TD target"). Whether a *learned* denoiser keeps the mean is what this
measures, with a check that separates bias from variance: at fixed points ``(s, a~)`` in the bulk of the data, many
replay actions ``a`` are drawn from their posterior given ``a~`` (the behaviour is ``N(0.2, 0.3^2)``, so
``a | a~ ~ N(mu + k (a~ - mu), k sigma^2)`` with ``k = tau^2 / (tau^2 + sigma^2)``), each with a fresh outcome, and the
one-draw estimate (no control variate, no centring) is computed at the fixed ``a~``. Its mean is compared with the
exact smoothed gradient ``k grad_a Q(s, mu + k (a~ - mu))``, and its spread around the mean is its variance.

Forms of the conditional denoiser (all with ``denoiser_sigma=0.1`` and the critic as baseline):

- ``outcome``: today's, conditioned on ``(s', r, done)``;
- ``td_target``: the library's option, the standardised ``y`` in the same network;
- ``td_target-residual``: ``D(a~ | s, y) = D(a~ | s) + Delta(a~, s, y)`` with ``Delta`` starting at zero
  (``benchmarks.ablation_variants.ResidualDenoiser``);
- ``td_target-linear``: ``Delta = sigma (y~ - m(s, a~)) h(s, a~)``, linear in the standardised target's residual, the
  form the Gaussian case has (:class:`TargetLinearDenoiser`).

    python -m benchmarks.rao_blackwell [--seeds 3] [--steps 2000]

Writes ``benchmarks/results/rao-blackwell/``.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from benchmarks import RESULTS_DIR, markdown_table
from benchmarks.ablation_variants import replace_denoiser, use_residual_denoiser
from benchmarks.claims.known_world import (
    BEHAVIOUR_MEAN,
    BEHAVIOUR_STD,
    fit,
    make_model,
    measure_grid,
    score_both,
    transitions,
    write_results,
)
from sb3_denoise_pg import DenoisePG
from sb3_denoise_pg.common.estimator import score_difference_gradient
from sb3_denoise_pg.denoise_pg.policies import Denoiser
from sb3_denoise_pg.envs import LinearGaussianWorld

OUTPUT = RESULTS_DIR / "rao-blackwell"
SIGMA = 0.1
# (action dims, outcome noise, relevant dims): the worlds of the first try
WORLDS: tuple[tuple[int, float, int | None], ...] = ((4, 0.3, None), (16, 0.3, None), (4, 0.02, None), (64, 0.3, 4))
N_POINTS, N_AT_POINT, N_EVAL = 16, 1024, 4096


class TargetLinearDenoiser(Denoiser):
    """
    A denoiser whose conditional output differs from its unconditional one by a term linear in the standardised
    target's residual: ``D(a~ | s) = a~ - sigma eps(a~, s)`` and ``D(a~ | s, y) = D(a~ | s) + sigma (y~ - m(s, a~))
    h(s, a~)``, ``y~`` the condition's target slot (``Denoiser.encode_target``); ``h`` starts at zero. Built with the
    denoiser's constructor arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        inputs = self.action_dim + self.features_dim + 1
        self.noise_net = nn.Sequential(*create_mlp(inputs, self.action_dim, self.net_arch, self.activation_fn))
        # m(s, a~) and h(s, a~) from one network: the first output is m
        self.linear_net = nn.Sequential(*create_mlp(inputs, 1 + self.action_dim, self.net_arch, self.activation_fn))
        nn.init.zeros_(self.linear_net[-1].weight)
        nn.init.zeros_(self.linear_net[-1].bias)

    def forward(
        self,
        noisy_actions: th.Tensor,
        state_features: th.Tensor,
        outcome: th.Tensor,
        condition: th.Tensor,
        sigma: float | th.Tensor,
    ) -> th.Tensor:
        sigma_column = th.as_tensor(sigma, dtype=noisy_actions.dtype, device=noisy_actions.device).expand(condition.shape)
        inputs = th.cat([noisy_actions, state_features, sigma_column], 1)
        unconditional = noisy_actions - sigma * self.noise_net(inputs)
        mean_and_slope = self.linear_net(inputs)
        target = outcome[:, self.features_dim : self.features_dim + 1]
        difference = (target - mean_and_slope[:, :1]) * mean_and_slope[:, 1:]
        return unconditional + sigma * condition.to(noisy_actions.dtype) * difference


FORMS = {
    "outcome": ("outcome", lambda model: model),
    "td_target": ("td_target", lambda model: model),
    "td_target-residual": ("td_target", use_residual_denoiser),
    "td_target-linear": ("td_target", lambda model: replace_denoiser(model, TargetLinearDenoiser)),
}


def fixed_points(env: LinearGaussianWorld, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``N_POINTS`` states and noised actions in the bulk of the behaviour's data (every ``|a~| <= 0.7``)."""
    dims = env.action_space.shape[0]
    obs = rng.normal(size=(N_POINTS, env.observation_space.shape[0]))
    noisy = np.clip(BEHAVIOUR_MEAN + np.hypot(BEHAVIOUR_STD, SIGMA) * rng.normal(size=(N_POINTS, dims)), -0.7, 0.7)
    return obs, noisy


def one_draw_estimates(model: DenoisePG, batch: ReplayBufferSamples, noisy: th.Tensor) -> th.Tensor:
    """The estimate of each transition of ``batch`` at the noised actions ``noisy`` (one draw, no control variate)."""
    with th.no_grad():
        state_features, outcome = model._encode(batch, td_targets=batch.rewards)  # one step: y = r
        cond, uncond = model.denoiser.denoise_both(noisy, state_features, outcome, SIGMA)
        baseline = model._baseline(batch, noisy.unsqueeze(0))
        return score_difference_gradient(batch.rewards, baseline, cond, uncond, SIGMA)


def bias_and_variance(model: DenoisePG, env: LinearGaussianWorld, seed: int) -> dict[str, float]:
    """
    The one-draw estimate at fixed points against the exact smoothed gradient: the cosine of its mean with the target,
    the mean's squared norm relative to the target's, the mean's error relative to the target's norm (and the Monte
    Carlo standard error of that mean), and its variance (trace, relative to the target's squared norm); averaged over
    the points.
    """
    rng = np.random.default_rng(20_000 + seed)
    obs, noisy = fixed_points(env, rng)
    k = BEHAVIOUR_STD**2 / (BEHAVIOUR_STD**2 + SIGMA**2)
    rows = []
    for s, a_tilde in zip(obs, noisy, strict=True):
        centre = BEHAVIOUR_MEAN + k * (a_tilde - BEHAVIOUR_MEAN)
        actions = centre + np.sqrt(k) * SIGMA * rng.normal(size=(N_AT_POINT, len(a_tilde)))
        states = np.repeat(s[None], N_AT_POINT, axis=0)
        next_obs = env.sample_outcome(states, actions, rng)
        rewards = -np.sum((next_obs - env.goal) ** 2, axis=1, keepdims=True)
        batch = ReplayBufferSamples(
            *(th.as_tensor(x, dtype=th.float32) for x in (states, actions, next_obs)),
            th.ones(N_AT_POINT, 1),
            th.as_tensor(rewards, dtype=th.float32),
        )
        noisy_t = th.as_tensor(np.repeat(a_tilde[None], N_AT_POINT, axis=0), dtype=th.float32)
        estimates = one_draw_estimates(model, batch, noisy_t).double().numpy()
        target = k * env.true_action_gradient(s[None], centre[None])[0]
        mean = estimates.mean(axis=0)
        norm2 = float(target @ target)
        variance = float(np.mean(np.sum((estimates - mean) ** 2, axis=1)))
        rows.append(
            dict(
                mean_cosine=float(mean @ target / np.sqrt(mean @ mean * norm2 + 1e-30)),
                mean_norm_ratio=float(mean @ mean) / norm2,
                relative_error=float(np.linalg.norm(mean - target)) / np.sqrt(norm2),
                monte_carlo_se=np.sqrt(variance / N_AT_POINT / norm2),
                relative_variance=variance / norm2,
            )
        )
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def conditional_gain(model: DenoisePG, data: ReplayBufferSamples) -> float:
    """How much the condition lowers the denoiser's reconstruction error: ``1 - mse(conditional) / mse(unconditional)``."""
    with th.no_grad():
        noisy = data.actions + SIGMA * th.randn_like(data.actions)
        state_features, outcome = model._encode(data, td_targets=data.rewards)
        cond, uncond = model.denoiser.denoise_both(noisy, state_features, outcome, SIGMA)
        return 1.0 - float((cond - data.actions).pow(2).mean() / (uncond - data.actions).pow(2).mean())


def measure(seed: int, dims: int, noise_std: float, relevant: int | None, form: str, n_samples: int, steps: int) -> dict:
    env = LinearGaussianWorld(action_dim=dims, noise_std=noise_std, relevant_dims=relevant)
    condition, convert = FORMS[form]
    model = convert(make_model(env, seed))
    model.critic_control_variate, model.center_advantages = None, False
    model.denoiser_condition = condition
    data = transitions(env, n_samples, seed=seed)
    fit(model, data, steps)
    evaluation = transitions(env, N_EVAL, seed=10_000 + seed)
    scores = score_both(model, env, evaluation)
    return {
        "dims": dims,
        "noise_std": noise_std,
        "relevant_dims": relevant,
        "form": form,
        "seed": seed,
        "sample_cosine": scores["denoise_pg"].sample_cosine,
        "batch_cosine": scores["denoise_pg"].batch_cosine,
        "critic_sample_cosine": scores["critic"].sample_cosine,
        "conditional_gain": conditional_gain(model, evaluation),
        **bias_and_variance(model, env, seed),
    }


COLUMNS = {
    "sample_cosine": "cos per transition",
    "batch_cosine": "cos per minibatch",
    "mean_cosine": "cos(mean, target)",
    "mean_norm_ratio": "|mean|^2 / |target|^2",
    "relative_error": "|mean - target| / |target|",
    "monte_carlo_se": "(its MC s.e.)",
    "relative_variance": "variance / |target|^2",
    "conditional_gain": "condition's MSE gain",
}


def table(rows: list[dict]) -> str:
    lines = []
    worlds = sorted({(row["dims"], row["noise_std"], row["relevant_dims"] or row["dims"]) for row in rows})
    for dims, noise, relevant in worlds:
        world = [r for r in rows if (r["dims"], r["noise_std"], r["relevant_dims"] or r["dims"]) == (dims, noise, relevant)]
        for form in FORMS:
            these = [r for r in world if r["form"] == form]
            if these:
                cells = [f"{np.mean([r[key] for r in these]):.3f}" for key in COLUMNS]
                lines.append([f"{dims} ({relevant} relevant), noise {noise}", form, len(these), *cells])
        critic = np.mean([r["critic_sample_cosine"] for r in world])
        lines.append([f"{dims} ({relevant} relevant), noise {noise}", "critic grad (TD3)", "", f"{critic:.3f}", *[""] * 7])
    return markdown_table(["world", "form", "seeds", *COLUMNS.values()], lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000, help="training transitions")
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps of critic and denoiser (batch 256)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    settings = [(*world, form) for world in WORLDS for form in args.forms]
    rows, seconds, made = measure_grid(
        lambda seed, dims, noise, relevant, form: measure(seed, dims, noise, relevant, form, args.samples, args.steps),
        settings,
        args.seeds,
    )
    description = (
        f"LinearGaussianWorld(action_dim, noise_std, relevant_dims), {args.samples} behaviour transitions, {args.steps} "
        f"gradient steps, denoiser_sigma {SIGMA}, no control variate, no centring. Cosines on {N_EVAL} fresh "
        f"transitions (32 draws); the fixed-point columns at {N_POINTS} points (s, a~) with {N_AT_POINT} posterior "
        "draws and fresh outcomes each, one draw, against the exact smoothed gradient. Means over seeds."
    )
    command = " ".join(["python -m benchmarks.rao_blackwell", *argv])
    print(write_results(args.output, "results", rows, table(rows), command, seconds, made, description))


if __name__ == "__main__":
    main()
