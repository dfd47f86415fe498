"""
Training throughput (env-steps per second) of each algorithm at the same network, batch and update settings.

Each measurement is a fresh subprocess with one torch thread, run one after another (never concurrently, so that
they do not skew each other), interleaved across algorithms over the repeats so that a change of machine load hits
them all alike. Only ``learn()`` after a warm-up is timed; the median over repeats is reported.

The one current table is ``benchmarks/results/throughput/throughput.{json,md}`` (``--output-dir`` to write elsewhere);
the JSON records the library's version and the checkout's commit when the measurement started, and its date.

    python -m benchmarks.throughput [--env Pendulum-v1] [--steps 3000] [--algos denoise_pg td3 sac]
"""

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, markdown_table, provenance

OUTPUT_DIR = RESULTS_DIR / "throughput"

# Options that the library measured and did not keep (one-critic baseline, regression head, anchored form) run through the
# ablations' variant class, which takes them as keyword arguments with the same names and meaning
ABLATION_DENOISE_PG = "benchmarks.ablation_variants:AblationDenoisePG"
# Name -> (class, constructor overrides)
ALGOS: dict[str, tuple[str, dict[str, Any]]] = {
    "denoise_pg": ("sb3_denoise_pg:DenoisePG", {}),
    "td3": ("stable_baselines3:TD3", {}),
    "sac": ("stable_baselines3:SAC", {}),
    "tqc": ("sb3_contrib:TQC", {}),
    "crossq": ("sb3_contrib:CrossQ", {}),
    # DenoisePG's cheaper settings; how each learns is in benchmarks/results/ablation
    "denoise_pg-one_critic": (ABLATION_DENOISE_PG, {"baseline_reduction": "first"}),
    "denoise_pg-4_draws": ("sb3_denoise_pg:DenoisePG", {"n_noise_samples": 4}),
    "denoise_pg-4_draws-one_critic": (ABLATION_DENOISE_PG, {"n_noise_samples": 4, "baseline_reduction": "first"}),
    "denoise_pg-2_draws": ("sb3_denoise_pg:DenoisePG", {"n_noise_samples": 2}),
    "denoise_pg-2_draws-one_critic": (ABLATION_DENOISE_PG, {"n_noise_samples": 2, "baseline_reduction": "first"}),
    "denoise_pg-regression": (ABLATION_DENOISE_PG, {"actor_gradient": "regression", "critic_control_variate": None}),
    # Without the critic control variate (the default since 0.2.0): what its backward pass through the critics costs
    "denoise_pg-no_cv": ("sb3_denoise_pg:DenoisePG", {"critic_control_variate": None}),
    # Without the pre-activation penalty (0.01 by default, chosen by the HalfCheetah ablation): what it costs
    "denoise_pg-no_penalty": ("sb3_denoise_pg:DenoisePG", {"actor_preactivation_penalty": 0.0}),
    # The anchored form (adaptive eta): one more critic backward pass, at mu_theta(s), and no kernel
    "denoise_pg-anchored": (ABLATION_DENOISE_PG, {"anchor": "adaptive", "actor_kernel_width": None}),
}
# Every critic and denoiser MLP through torch.compile (compiled in the untimed warm-up): whether compiling pays
COMPILED: dict[str, str] = {"denoise_pg-compiled": "denoise_pg", "td3-compiled": "td3"}
VARIANTS = [*ALGOS, *COMPILED]


def algo_spec(algo: str) -> tuple[str, dict[str, Any]]:
    """
    The class and constructor overrides of a variant: a key of ``ALGOS`` or ``COMPILED``, or a cell of the estimate's
    budget sweep (``benchmarks.estimate_budget``, e.g. ``denoise_pg-den64x64-draws4-critics1``).

    :raise ValueError: For a name that is neither
    """
    from benchmarks import estimate_budget

    if algo in VARIANTS:
        return ALGOS[COMPILED.get(algo, algo)]
    return "sb3_denoise_pg:DenoisePG", estimate_budget.Cell.parse(algo).overrides()


def _variant(algo: str) -> str:
    """argparse type of a variant name: checked by :func:`algo_spec`."""
    try:
        algo_spec(algo)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}; or one of {', '.join(VARIANTS)}") from None
    return algo


# The same for all algorithms: one gradient step of batch 256 per env step, on [400, 300] networks
SETTINGS: dict[str, Any] = dict(
    batch_size=256, train_freq=1, gradient_steps=1, learning_starts=500, policy_kwargs=dict(net_arch=[400, 300])
)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def measure(algo: str, env_id: str, steps: int, warmup: int, seed: int = 0) -> float:
    """
    Time ``learn()`` of ``algo`` in this process.

    :param algo: Key of ``ALGOS``
    :param env_id: Gymnasium id
    :param steps: Timed training steps (all with gradient updates)
    :param warmup: Training steps with gradient updates before timing, after ``learning_starts``
    :param seed: Seed of the model
    :return: Training env-steps per second
    """
    import torch as th

    import sb3_denoise_pg  # noqa: F401  (registers the project's env ids)

    th.set_num_threads(1)
    class_path, overrides = algo_spec(algo)
    module, name = class_path.split(":")
    algo_class = getattr(importlib.import_module(module), name)
    # A variant's policy options join the common network sizes
    policy_kwargs = {**SETTINGS["policy_kwargs"], **overrides.get("policy_kwargs", {})}
    settings = {**SETTINGS, **overrides, "policy_kwargs": policy_kwargs}
    model = algo_class("MlpPolicy", env_id, seed=seed, device="cpu", **settings)
    if algo in COMPILED:
        compile_networks(model.policy)
    # Fills the buffer up to learning_starts and runs the first updates (allocations, lazy initialisations)
    model.learn(SETTINGS["learning_starts"] + warmup)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def compile_networks(policy: Any) -> None:
    """
    Replace, in place, every MLP (``nn.Sequential``) of ``policy`` but the actor's ``mu`` by its ``torch.compile``
    version; the critics' ``q_networks`` lists follow. ``mu`` stays eager: DenoisePG indexes it for the pre-activation
    penalty, and it is the smallest share of a step (one batch of 256 every second step).
    """
    import torch as th

    for module in list(policy.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, th.nn.Sequential) and name != "mu":
                setattr(module, name, th.compile(child))
        if hasattr(module, "q_networks"):
            module.q_networks = [getattr(module, f"qf{index}") for index in range(len(module.q_networks))]


def measure_in_subprocess(algo: str, env_id: str, steps: int, warmup: int) -> float:
    """:func:`measure` in a fresh single-threaded Python process."""
    command = [sys.executable, "-m", "benchmarks.throughput", "--worker", algo, "--env", env_id]
    command += ["--steps", str(steps), "--warmup", str(warmup)]
    process = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **SINGLE_THREAD_ENV})
    return float(process.stdout.strip().splitlines()[-1])


def throughput_markdown(data: dict[str, Any]) -> str:
    """
    :param data: Content of ``throughput.json``
    :return: Markdown table of steps per second per algorithm, with the ratio to TD3's
    """
    results = data["results"]
    td3 = results.get("td3", {}).get("steps_per_s")
    rows = [
        [
            algo,
            f"{result['steps_per_s']:.1f}",
            ", ".join(f"{value:.1f}" for value in result["runs"]),
            f"{result['steps_per_s'] / td3:.2f}" if td3 else "n/a",
        ]
        for algo, result in results.items()
    ]
    caption = (
        f"Training throughput on {data['env_id']}: median over {data['repeats']} runs of {data['steps']} timed steps, "
        f"batch {SETTINGS['batch_size']}, net_arch {SETTINGS['policy_kwargs']['net_arch']}, "
        "1 gradient step per env step, 1 torch thread, CPU."
    )
    commit = data.get("commit") or data.get("committed_in")
    made = f"Measured {data['date'][:10]} on {data.get('cpu_count', '?')} CPU cores"
    made += f", sb3-denoise-pg {data['version']}" if data.get("version") else ""
    made += f", commit {commit}" if data.get("commit") else (f", committed in {commit}" if commit else "")
    caption += " " + made + "."
    return caption + "\n\n" + markdown_table(["Algorithm", "Steps/s", "Runs", "Ratio to TD3"], rows)


def run_throughput(algos: list[str], env_id: str, steps: int, warmup: int, repeats: int) -> dict[str, Any]:
    """
    Measure every algorithm ``repeats`` times, one subprocess after another.

    :return: The content of ``throughput.json``
    """
    started = provenance()
    runs: dict[str, list[float]] = {algo: [] for algo in algos}
    for repeat in range(repeats):
        for algo in algos:
            runs[algo].append(measure_in_subprocess(algo, env_id, steps, warmup))
            print(f"[{repeat + 1}/{repeats}] {algo}: {runs[algo][-1]:.1f} steps/s", flush=True)
    return {
        "env_id": env_id,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "settings": SETTINGS,
        "results": {algo: {"steps_per_s": statistics.median(values), "runs": values} for algo, values in runs.items()},
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        # The library's version and the checkout's commit (``+dirty``: with uncommitted changes) when it started
        **started,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=3000, help="Timed training steps per run")
    parser.add_argument("--warmup", type=int, default=200, help="Training steps after learning_starts before timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--algos", nargs="+", type=_variant, default=["denoise_pg", "td3", "sac"], help=f"Of {', '.join(VARIANTS)} or cells"
    )
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR, help="Default: benchmarks/results/throughput/")
    parser.add_argument("--worker", type=_variant, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(measure(args.worker, args.env, args.steps, args.warmup))
        return
    data = run_throughput(args.algos, args.env, args.steps, args.warmup, args.repeats)
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "throughput.json").write_text(json.dumps(data, indent=2) + "\n")
    table = throughput_markdown(data)
    (output_dir / "throughput.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
