"""
Resumable runner of a benchmark suite through the zoo.

Every (algo, env, seed) is one zoo training in its own single-threaded subprocess, ``--jobs`` of them at a time,
seed-major so that a partial suite is balanced across envs and algorithms. A run trains in a staging folder and is
moved, with a marker file, to ``<log-root>/<algo>/<env>_<seed + 1>/`` (the zoo's layout, so that rl-zoo3's plotting
scripts work on it) only once it succeeded: a run with a marker is never redone, anything else is removed and redone.

What one run does, records and leaves is ``benchmarks.training``'s, shared with the SLURM launcher.

    python -m benchmarks.run --suite quick --jobs 2 [--algos denoise_pg td3] [--seeds 3] [--dry-run] [-- zoo args]

``--launcher slurm`` submits the same runs to a SLURM cluster instead (``benchmarks.launch``).
"""

import argparse
import math
import shlex
import signal
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from benchmarks.launch import SlurmError, SlurmOptions, status_table, submit, wait
from benchmarks.suites import SUITES, Suite, get_suite, select
from benchmarks.training import (  # noqa: F401  (the runner's names, also for its callers)
    _STOPPING,
    EVALUATIONS,
    LOG_FILE,
    MARKER,
    PID_FILE,
    STAGING,
    RunSpec,
    UnreadableRun,
    default_log_root,
    execute,
    is_finished,
    plan_runs,
    read_run,
    stop_children,
    zoo_command,
)


def run_suite(
    suite: Suite, log_root: Path, jobs: int = 1, device: str = "cpu", zoo_args: tuple[str, ...] = (), dry_run: bool = False
) -> list[RunSpec]:
    """
    Train every unfinished run of ``suite``, ``jobs`` at a time.

    :return: The runs that failed
    """
    runs = plan_runs(suite)
    todo = [spec for spec in runs if not is_finished(spec.run_dir(log_root))]
    print(f"Suite {suite.name}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run in {log_root}")
    if dry_run:
        for spec in todo:
            print(f"{spec}: {shlex.join(zoo_command(spec, spec.staging_dir(log_root), device, suite.zoo_args + zoo_args))}")
        return []
    (log_root / STAGING).mkdir(parents=True, exist_ok=True)
    # Staging folders are transient (a failed run's log stays there until it is retried): never committed
    (log_root / STAGING / ".gitignore").write_text("*\n")
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as executor:
        futures = {executor.submit(execute, spec, log_root, device, suite.zoo_args + zoo_args, jobs): spec for spec in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            spec = futures[future]
            try:
                marker = future.result()
            except RuntimeError as error:
                failed.append(spec)
                print(f"[{done}/{len(todo)}] {error}", flush=True)
                continue
            if _STOPPING.is_set() and marker is None:
                failed.append(spec)
                print(f"[{done}/{len(todo)}] {spec}: stopped, unfinished (the next invocation redoes it)", flush=True)
            elif marker is None:
                failed.append(spec)
                print(f"[{done}/{len(todo)}] {spec}: FAILED, see {spec.staging_dir(log_root) / LOG_FILE}", flush=True)
            else:
                print(
                    f"[{done}/{len(todo)}] {spec}: {marker['wall_time_s']:.0f} s, {marker['env_steps_per_s']:.1f} steps/s",
                    flush=True,
                )
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), default="quick")
    parser.add_argument("--algos", nargs="+", help="Algorithms (default: the suite's)")
    parser.add_argument("--envs", nargs="+", help="Subset of the suite's env ids (default: all)")
    parser.add_argument("--seeds", type=positive_int, help="Number of seeds, 0 .. n-1 (default: the suite's)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="Runs in parallel, one CPU core each (local launcher)")
    parser.add_argument("--log-root", type=Path, help="Zoo log folder (default: benchmarks/results/<suite>/logs)")
    parser.add_argument("--device", help="Torch device of the runs (default: cpu; cuda with --gpus)")
    parser.add_argument("--dry-run", action="store_true", help="Print what would run (or be submitted) and exit")
    cluster = parser.add_argument_group("SLURM (--launcher slurm, through submitit; see benchmarks/launch.py)")
    cluster.add_argument("--launcher", choices=["local", "slurm"], default="local", help="Where the runs execute")
    cluster.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    cluster.add_argument("--time-min", type=int, default=720, help="Time limit of one run, minutes")
    cluster.add_argument("--cpus-per-task", type=int, default=1, help="CPU cores of one run")
    cluster.add_argument("--mem-gb", type=int, default=4, help="Memory of one run, GB")
    cluster.add_argument("--gpus", type=int, default=0, help="GPUs of one run (the runs then train on --device cuda)")
    cluster.add_argument("--array-parallelism", type=int, default=256, help="The most runs at once")
    cluster.add_argument("--account", help="SLURM account to charge")
    cluster.add_argument("--submitit-cluster", choices=["slurm", "local"], default="slurm", help=argparse.SUPPRESS)
    cluster.add_argument("--wait", action="store_true", help="Wait for the submitted runs and report the failed ones")
    cluster.add_argument("--poll-s", type=positive_float, default=10.0, help="How often --wait asks SLURM, seconds")
    cluster.add_argument("--status", action="store_true", help="Print each run's state (and why a job ended); submit nothing")
    cluster.add_argument("--retry-failed", action="store_true", help="Submit again the runs whose last job failed")
    cluster.add_argument(
        "--setup", action="append", default=[], help="A shell line the job runs first (repeatable): module load, conda"
    )
    cluster.add_argument(
        "--slurm-arg", action="append", default=[], type=_key_value, help="A further sbatch option KEY=VALUE (repeatable)"
    )
    # Unknown arguments (after `--` or not) go to every zoo command, e.g. `-- --hyperparams learning_starts:1000`
    args, zoo_args = parser.parse_known_args(argv)
    zoo_args = [arg for arg in zoo_args if arg != "--"]
    try:
        suite = select(get_suite(args.suite), args.algos, args.envs, args.seeds)
    except KeyError as error:
        parser.error(error.args[0])
    log_root = (args.log_root or default_log_root(suite.name)).resolve()
    if args.gpus and args.device not in (None, "cuda") and not str(args.device).startswith("cuda:"):
        parser.error(
            f"--gpus {args.gpus} asks for GPUs the runs would not use with --device {args.device}: leave --device out"
        )
    args.device = args.device or ("cuda" if args.gpus else "cpu")
    if args.launcher == "slurm":
        return _run_on_slurm(suite, log_root, args, tuple(zoo_args))
    # A signal to the runner reaches the zoo processes it started, and leaves their runs unfinished
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_children)
    failed = run_suite(suite, log_root, args.jobs, args.device, tuple(zoo_args), args.dry_run)
    if _STOPPING.is_set():
        print(f"Stopped by a signal: {len(failed)} runs left unfinished")
        return 130
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(map(str, failed))}")
    return 1 if failed else 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    """argparse type of ``--slurm-arg``: ``KEY=VALUE``."""
    key, separator, value = text.partition("=")
    if not (separator and key.strip()):
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE (an sbatch option without its dashes), got {text!r}")
    return key.strip().lstrip("-"), value.strip()


def _run_on_slurm(suite: Suite, log_root: Path, args: argparse.Namespace, zoo_args: tuple[str, ...]) -> int:
    try:
        options = SlurmOptions(
            partition=args.partition,
            time_min=args.time_min,
            cpus_per_task=args.cpus_per_task,
            mem_gb=args.mem_gb,
            gpus_per_node=args.gpus,
            array_parallelism=args.array_parallelism,
            account=args.account,
            cluster=args.submitit_cluster,
            setup=tuple(args.setup),
            extra=dict(args.slurm_arg),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runs = plan_runs(suite)
    try:
        if args.status:
            print(status_table(runs, log_root, options.cluster))
            return 0
        (log_root / STAGING).mkdir(parents=True, exist_ok=True)
        (log_root / STAGING / ".gitignore").write_text("*\n")
        jobs = submit(runs, log_root, options, args.device, suite.zoo_args + zoo_args, args.dry_run, args.retry_failed)
    except SlurmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.wait and jobs:
        return 1 if wait(jobs, log_root, options.cluster, args.poll_s) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
