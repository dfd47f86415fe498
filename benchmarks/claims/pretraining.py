"""
Claim 2 of the source post: the denoiser benefits from pretraining without external reward.

For each env and seed, two DenoisePG runs with the same total number of env-steps ``T``:
- ``scratch``: ``learn(T)``;
- ``pretrained``: ``pretrain_denoiser(collect_steps=K, gradient_steps=G)`` on ``K`` steps of uniformly random,
  reward-free exploration (reward slot masked), then ``learn(T - K)``.
Both are evaluated (deterministic, ``--eval-episodes`` episodes) every ``--eval-freq`` steps; the pretrained run's
x-axis counts its ``K`` exploration steps. Settings: the zoo's TD3 settings for Pendulum-v1 (as ``hyperparams/``),
``learning_starts=1000``, but ``[64, 64]`` networks by default (``--net-arch``) so that 5 seeds of both envs fit in
about half an hour on 2 cores. Each run is a process with one thread; finished runs (one JSON each) are not redone.

    python -m benchmarks.claims.pretraining [--envs Pendulum-v1 sb3_denoise_pg/NoisyPendulum-v1] [--seeds 5]
        [--steps 12000] [--collect 2000] [--pretrain-steps 2000] [--net-arch 64 64] [--jobs 2]

Writes ``benchmarks/claims/results/pretraining/`` (runs) and ``pretraining.{md,png}``.
"""

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from benchmarks import markdown_table
from benchmarks.variants import learn_with_evaluations, plot_mean_curve, run_plan

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("scratch", "pretrained")


def run_one(args: argparse.Namespace, env_id: str, variant: str, seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_denoise_pg import DenoisePG

    env = gym.make(env_id)
    n_actions = env.action_space.shape[0]
    model = DenoisePG(
        "MlpPolicy",
        env,
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=1000,
        action_noise=NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions)),
        policy_kwargs=dict(net_arch=args.net_arch),
        seed=seed,
    )
    offset = 0
    if variant == "pretrained":
        model.pretrain_denoiser(collect_steps=args.collect, gradient_steps=args.pretrain_steps)
        offset = args.collect
    curves = learn_with_evaluations(
        model, env_id, args.steps - offset, args.eval_freq, args.eval_episodes, seed + 1000, offset
    )
    return {"env_id": env_id, "variant": variant, "seed": seed, **curves}


def run_path(output: Path, env_id: str, variant: str, seed: int) -> Path:
    return output / "pretraining" / f"{env_id.replace('/', '-')}_{variant}_{seed}.json"


def report(results: list[dict], output: Path, command: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = sorted({r["env_id"] for r in results})
    rows = []
    fig, axes = plt.subplots(1, len(env_ids), figsize=(5 * len(env_ids), 4), squeeze=False)
    for ax, env_id in zip(axes[0], env_ids, strict=True):
        for variant in VARIANTS:
            runs = [r for r in results if r["env_id"] == env_id and r["variant"] == variant]
            if not runs:
                continue
            returns = plot_mean_curve(ax, runs, variant)
            final = returns[:, -1]
            # Area under the curve: the mean evaluation return over the whole run, sensitive to speed of learning
            rows.append([env_id, variant, len(runs), f"{final.mean():.1f} +/- {final.std():.1f}", f"{returns.mean():.1f}"])
        ax.set_title(env_id)
        ax.set_xlabel("env steps (pretraining exploration included)")
        ax.set_ylabel("deterministic evaluation return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(output / "pretraining.png", dpi=120)
    table = markdown_table(["env", "variant", "seeds", "final return (mean +/- std)", "mean return over the run"], rows)
    (output / "pretraining.md").write_text(f"`{command}`\n\n{table}\n")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1", "sb3_denoise_pg/NoisyPendulum-v1"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12_000, help="total env-steps of a run, exploration included")
    parser.add_argument("--collect", type=int, default=2_000, help="reward-free random exploration steps")
    parser.add_argument("--pretrain-steps", type=int, default=2_000, help="denoiser updates of the pretraining")
    parser.add_argument("--eval-freq", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64], help="small: 5 seeds fit on 2 cores")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    (args.output / "pretraining").mkdir(parents=True, exist_ok=True)
    plan = [(env_id, variant, seed) for seed in range(args.seeds) for env_id in args.envs for variant in VARIANTS]
    results = run_plan(
        plan,
        functools.partial(run_one, args),
        functools.partial(run_path, args.output),
        args.jobs,
        lambda r: f"{r['env_id']} {r['variant']} seed {r['seed']}: {r['returns'][-1]:.1f}",
    )
    print(report(results, args.output, " ".join(["python -m benchmarks.claims.pretraining", *argv])))


if __name__ == "__main__":
    main()
