"""
Claim 1 of the source post: the score-difference estimator works well in high-dimensional action spaces.

On the linear-Gaussian world (outcome dimension = action dimension), for each action dimension and number of
training transitions, one DenoisePG model's critic and denoiser are fitted on the same data with the same budget;
then, on fresh transitions, DenoisePG's ``action_gradient`` and the critic's input-gradient ``grad_a Q_phi(s, a)``
(what TD3 follows) are each compared with the true ``grad_a Q``.

    python -m benchmarks.claims.high_dim [--dims 1 4 16 64] [--samples 1000 10000] [--seeds 3] [--steps 2000]

Writes ``benchmarks/claims/results/high_dim.{json,md,png}``.
"""

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks.claims.known_world import (
    cosine_table,
    fit,
    make_model,
    measure_grid,
    plot_cosines,
    score_both,
    transitions,
    write_results,
)
from sb3_denoise_pg.envs import LinearGaussianWorld

RESULTS = Path(__file__).resolve().parent / "results"
N_EVAL = 4096


def measure(dim: int, n_samples: int, seed: int, steps: int, noise_std: float) -> dict:
    env = LinearGaussianWorld(action_dim=dim, noise_std=noise_std)
    model = make_model(env, seed)
    fit(model, transitions(env, n_samples, seed=seed), steps)
    scores = score_both(model, env, transitions(env, N_EVAL, seed=10_000 + seed))
    return {"dim": dim, "n_samples": n_samples, "seed": seed, **{k: asdict(v) for k, v in scores.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--samples", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps of critic and denoiser (batch 256)")
    parser.add_argument("--noise-std", type=float, default=0.3, help="the world's outcome noise")
    parser.add_argument("--output", type=Path, default=RESULTS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    settings = [(dim, n_samples) for dim in args.dims for n_samples in args.samples]
    rows, seconds, made = measure_grid(
        lambda seed, dim, n_samples: measure(dim, n_samples, seed, args.steps, args.noise_std), settings, args.seeds
    )
    table = cosine_table(rows, "dim", "n_samples")
    command = " ".join(["python -m benchmarks.claims.high_dim", *argv])
    write_results(args.output, "high_dim", rows, table, command, seconds, made)
    plot_cosines(rows, "dim", "n_samples", "action dimension", args.output / "high_dim.png", log_x=True)
    print(table)


if __name__ == "__main__":
    main()
