"""
Distractor actuators on the linear-Gaussian world: does DenoisePG's estimate beat the critic's input-gradient when
most action dimensions do nothing, or only add noise? A score difference is zero in directions the outcome carries
no information about; a critic's input-gradient there is whatever its network learned.

The world has ``--dims`` action dimensions of which the first 4 move the state (``relevant_dims``); the others are
inert (``--distractor-noise 0``) or add outcome noise in proportion to their size (the best policy holds them at
zero, and the true gradient says so). As in ``benchmarks.claims.high_dim``, one DenoisePG's critic and denoiser are
fitted on the same behaviour data; on fresh transitions each signal is compared with the true gradient: the
per-transition and minibatch cosines, and the share of its squared norm in the distractor dimensions (the truth's
share beside it).

    python -m benchmarks.distractors [--dims 16 64] [--distractor-noise 0 0.5] [--seeds 3]

Writes ``benchmarks/results/distractors/{results.md,results.json}``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch as th

from benchmarks import RESULTS_DIR, markdown_table
from benchmarks.claims.known_world import agreement, fit, make_model, measure_grid, transitions, write_results
from sb3_denoise_pg.envs import LinearGaussianWorld

OUTPUT = RESULTS_DIR / "distractors"
RELEVANT = 4
N_EVAL = 4096


def distractor_share(vectors: np.ndarray, relevant: int) -> float:
    """Mean over transitions of the share of a vector's squared norm in the distractor dimensions."""
    squares = vectors**2
    return float(np.mean(squares[:, relevant:].sum(1) / (squares.sum(1) + 1e-12)))


def measure(dims: int, distractor_noise: float, seed: int, n_samples: int, steps: int, noise_std: float) -> dict:
    env = LinearGaussianWorld(action_dim=dims, relevant_dims=RELEVANT, noise_std=noise_std, distractor_noise=distractor_noise)
    model = make_model(env, seed)
    fit(model, transitions(env, n_samples, seed=seed), steps)
    data = transitions(env, N_EVAL, seed=10_000 + seed)
    truth = env.true_action_gradient(data.observations.numpy().astype(np.float64), data.actions.numpy().astype(np.float64))
    th.manual_seed(1)
    estimate = model.estimate(data)
    signals = {
        "DenoisePG": estimate.gradient,
        "DenoisePG without control variate": estimate.gradient_without_cv,
        "critic grad (TD3)": model.critic_action_gradient(data.observations, data.actions),
    }
    row: dict = {"dims": dims, "distractor_noise": distractor_noise, "seed": seed, "truth": distractor_share(truth, RELEVANT)}
    for name, signal in signals.items():
        scores = agreement(signal, truth)
        vectors = signal.detach().numpy().astype(np.float64)
        row[name] = {
            "sample_cosine": scores.sample_cosine,
            "batch_cosine": scores.batch_cosine,
            "distractor_share": distractor_share(vectors, RELEVANT),
        }
    return row


def table(rows: list[dict]) -> str:
    methods = [key for key in rows[0] if isinstance(rows[0][key], dict)]
    groups = sorted({(row["dims"], row["distractor_noise"]) for row in rows})
    lines = []
    for dims, noise in groups:
        these = [row for row in rows if (row["dims"], row["distractor_noise"]) == (dims, noise)]
        for method in methods:
            values = {metric: [row[method][metric] for row in these] for metric in ("sample_cosine", "batch_cosine")}
            values["distractor_share"] = [row[method]["distractor_share"] for row in these]
            cells = [f"{np.mean(v):.3f} +/- {np.std(v):.3f}" for v in values.values()]
            truth = f"{np.mean([row['truth'] for row in these]):.3f}"
            lines.append([dims, noise, len(these), method, *cells, truth])
    headers = ["dims", "distractor noise", "seeds", "signal", "cosine per transition", "cosine per minibatch (256)"]
    return markdown_table([*headers, "share in distractors", "truth's share"], lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--distractor-noise", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000, help="training transitions")
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps of critic and denoiser (batch 256)")
    parser.add_argument("--noise-std", type=float, default=0.3, help="the world's own outcome noise")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    settings = [(dims, noise) for dims in args.dims for noise in args.distractor_noise]
    rows, seconds, made = measure_grid(
        lambda seed, dims, noise: measure(dims, noise, seed, args.samples, args.steps, args.noise_std), settings, args.seeds
    )
    description = (
        f"LinearGaussianWorld(action_dim=dims, relevant_dims={RELEVANT}, noise_std={args.noise_std}, "
        f"distractor_noise=...), {args.samples} behaviour transitions, {args.steps} gradient steps; scored on {N_EVAL} "
        "fresh transitions. Mean +/- std over seeds."
    )
    command = " ".join(["python -m benchmarks.distractors", *argv])
    print(write_results(args.output, "results", rows, table(rows), command, seconds, made, description))


if __name__ == "__main__":
    main()
