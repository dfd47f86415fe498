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
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch as th

from benchmarks import RESULTS_DIR, markdown_table, started
from benchmarks.ablation_variants import use_residual_denoiser
from benchmarks.claims.known_world import fit, make_model, score_both, transitions
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
    th.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    rows, start, made = [], time.perf_counter(), started()
    for seed in range(args.seeds):
        for dims in args.dims:
            for noise in args.noise_std:
                for denoiser in DENOISERS:
                    rows.append(measure(dims, noise, denoiser, seed, args.samples, args.steps))
                    print(
                        f"{time.perf_counter() - start:.0f} s: {dims} dims, noise {noise}, {denoiser}, seed {seed}", flush=True
                    )
    command = " ".join(["python -m benchmarks.residual_denoiser", *argv])
    text = (
        f"`{command}` ({time.perf_counter() - start:.0f} s on one core; sb3-denoise-pg {made['version']}, commit "
        f"{made['commit']}, {made['date'][:10]})\n\nLinearGaussianWorld(action_dim=dims, noise_std=...), "
        f"{args.samples} behaviour transitions, {args.steps} gradient steps, denoiser_sigma 0.1, 32 draws; scored on "
        f"{N_EVAL} fresh transitions. Mean +/- std over seeds.\n\n{table(rows)}\n"
    )
    (args.output / "results.md").write_text(text)
    (args.output / "results.json").write_text(json.dumps({"command": command, **made, "rows": rows}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
