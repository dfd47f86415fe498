"""
Claim 3 of the source post, in RL terms: following the input-gradient of a learned network is fragile where that
network is wrong; the score-difference estimate uses the critic only as a baseline, whose error cannot bias it.

On the linear-Gaussian world the critic is trained on deliberately perturbed rewards, ``r + A sin(k <u, a>)`` (a
ripple along a random action direction ``u``: small in value, large in gradient, ``A k`` per unit step), while the
denoiser and the estimate's targets ``y`` see the true rewards. DenoisePG's ``action_gradient`` (with the wrong critic
as its baseline ``b(s, a~)``) and the wrong critic's input-gradient ``grad_a Q_phi`` are compared with the true
``grad_a Q``, for several amplitudes ``A``. A second axis, few transitions, is the critic wrong by lack of data.

    python -m benchmarks.claims.wrong_critic [--amplitudes 0 0.5 1 2] [--dim 4] [--seeds 3] [--steps 2000]

Writes ``benchmarks/claims/results/wrong_critic.{json,md,png}``.
"""

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch as th

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
RIPPLE_FREQUENCY = 10.0  # k: a ripple of period 0.63 in the scaled action space, well inside the behaviour's spread


def ripple(amplitude: float, direction: th.Tensor):
    def critic_rewards(batch) -> th.Tensor:
        return batch.rewards + amplitude * th.sin(RIPPLE_FREQUENCY * batch.actions @ direction).unsqueeze(1)

    return critic_rewards


def measure(dim: int, amplitude: float, n_samples: int, seed: int, steps: int) -> dict:
    env = LinearGaussianWorld(action_dim=dim, noise_std=0.3)
    direction = th.as_tensor(np.random.default_rng(seed).normal(size=dim), dtype=th.float32)
    direction /= direction.norm()
    model = make_model(env, seed)
    fit(model, transitions(env, n_samples, seed=seed), steps, critic_rewards=ripple(amplitude, direction))
    scores = score_both(model, env, transitions(env, N_EVAL, seed=10_000 + seed))
    return {
        "dim": dim,
        "amplitude": amplitude,
        "n_samples": n_samples,
        "seed": seed,
        **{k: asdict(v) for k, v in scores.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--samples", type=int, nargs="+", default=[10_000])
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2_000, help="gradient steps of critic and denoiser (batch 256)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    settings = [(amplitude, n_samples) for amplitude in args.amplitudes for n_samples in args.samples]
    rows, seconds, made = measure_grid(
        lambda seed, amplitude, n_samples: measure(args.dim, amplitude, n_samples, seed, args.steps), settings, args.seeds
    )
    table = cosine_table(rows, "amplitude", "n_samples")
    command = " ".join(["python -m benchmarks.claims.wrong_critic", *argv])
    write_results(args.output, "wrong_critic", rows, table, command, seconds, made)
    plot_cosines(
        rows,
        "amplitude",
        "n_samples",
        "ripple amplitude A in the critic's rewards",
        args.output / "wrong_critic.png",
        log_x=False,
    )
    print(table)


if __name__ == "__main__":
    main()
