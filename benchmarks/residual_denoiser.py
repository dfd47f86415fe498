"""
The estimate's own error: DenoisePG's score difference with the library's denoiser (one network run with the outcome
and with a null outcome) against a residual denoiser whose conditional output is the unconditional one plus a learned
difference (``benchmarks.ablation_variants.ResidualDenoiser``), so that errors common to both cancel. On the
linear-Gaussian world the estimate's error is mostly denoiser error divided by ``sigma^2`` (docs/estimator.rst):
this measures how much of it the parametrisation removes.

As in ``benchmarks.claims.high_dim``: one model's critic and denoiser fitted on the same behaviour data per world,
denoiser and seed; DenoisePG's estimate and the critic's input-gradient scored against the true gradient on fresh
transitions.

    python -m benchmarks.residual_denoiser [--dims 4 16] [--noise-std 0.3 0.02] [--seeds 3]

Writes ``benchmarks/results/residual-denoiser/{results.md,results.json}``.
"""

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks import RESULTS_DIR, markdown_table
from benchmarks.ablation_variants import use_residual_denoiser
from benchmarks.claims.known_world import fit, make_model, measure_grid, score_both, transitions, write_results
from sb3_denoise_pg.envs import LinearGaussianWorld

OUTPUT = RESULTS_DIR / "residual-denoiser"
DENOISERS = {"library": lambda model: model, "residual": use_residual_denoiser}
N_EVAL = 4096


def measure(dims: int, noise_std: float, denoiser: str, seed: int, n_samples: int, steps: int) -> dict:
    env = LinearGaussianWorld(action_dim=dims, noise_std=noise_std)
    model = DENOISERS[denoiser](make_model(env, seed))
    fit(model, transitions(env, n_samples, seed=seed), steps)
    scores = score_both(model, env, transitions(env, N_EVAL, seed=10_000 + seed))
    return {
        "dims": dims,
        "noise_std": noise_std,
        "denoiser": denoiser,
        "seed": seed,
        **{k: asdict(v) for k, v in scores.items()},
    }


def table(rows: list[dict]) -> str:
    lines = []
    for dims, noise in sorted({(row["dims"], row["noise_std"]) for row in rows}):
        for denoiser in DENOISERS:
            these = [row for row in rows if (row["dims"], row["noise_std"], row["denoiser"]) == (dims, noise, denoiser)]
            for method in ("denoise_pg", "denoise_pg_without_cv", "critic"):
                if method == "critic" and denoiser != "library":
                    continue  # the same critic's fit either way
                cells = []
                for metric in ("sample_cosine", "batch_cosine"):
                    values = [row[method][metric] for row in these]
                    cells.append(f"{np.mean(values):.3f} +/- {np.std(values):.3f}")
                name = "critic grad (TD3)" if method == "critic" else f"{method}, {denoiser} denoiser"
                lines.append([dims, noise, len(these), name, *cells])
    headers = ["dims", "outcome noise", "seeds", "signal", "cosine per transition", "cosine per minibatch (256)"]
    return markdown_table(headers, lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--noise-std", type=float, nargs="+", default=[0.3, 0.02])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000, help="training transitions")
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps of critic and denoiser (batch 256)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    settings = [(dims, noise, denoiser) for dims in args.dims for noise in args.noise_std for denoiser in DENOISERS]
    rows, seconds, made = measure_grid(
        lambda seed, dims, noise, denoiser: measure(dims, noise, denoiser, seed, args.samples, args.steps),
        settings,
        args.seeds,
    )
    description = (
        f"LinearGaussianWorld(action_dim=dims, noise_std=...), {args.samples} behaviour transitions, {args.steps} "
        f"gradient steps, denoiser_sigma 0.1, 32 draws; scored on {N_EVAL} fresh transitions. Mean +/- std over seeds."
    )
    command = " ".join(["python -m benchmarks.residual_denoiser", *argv])
    print(write_results(args.output, "results", rows, table(rows), command, seconds, made, description))


if __name__ == "__main__":
    main()
