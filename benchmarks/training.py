"""
One run of a benchmark suite, as the local runner (``benchmarks.run``) and the SLURM launcher (``benchmarks.launch``)
both execute it: its spec and zoo command, training it single-threaded in a staging folder, and landing it, with its
marker, in the zoo's log layout (``<log-root>/<algo>/<env>_<seed + 1>/``) once it succeeded. A run is finished when its
marker and its evaluations parse (``read_run``); anything else is removed and redone.

The zoo runs from the repository root with paths relative to it where they lie inside it, and what a run records
(the marker's command, the zoo's ``command.txt``, ``args.yml`` and the log) names the interpreter ``python`` and no
absolute path of this machine: a committed run reads the same on every machine. The marker also records the
library's version, the checkout's commit when the run started, where it ran and the run's hyperparameters (the zoo's
``config.yml``).
"""

import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_sb3 import EnvironmentName

from benchmarks import REPO_ROOT, RESULTS_DIR, load_zoo_config, portable_text, provenance, relative_path
from benchmarks.suites import EnvBudget, Suite

# The zoo training entry point: the project's, which registers denoise_pg and uses the project's hyperparams/<algo>.yml
ZOO_TRAIN: tuple[str, ...] = ("-m", "sb3_denoise_pg.zoo", "train")
MARKER = "benchmark_run.json"
EVALUATIONS = "evaluations.npz"
# The zoo process of each run under way, so that a signal to the runner reaches them (``_stop_children``)
_CHILDREN: dict[int, subprocess.Popen] = {}
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()
# In a staging folder: the pid of the zoo process training it, so that a second runner leaves it alone
PID_FILE = "zoo.pid"
# In the staging folder of a run that did not finish: the zoo process's exit code (negative: ended by that signal)
EXIT_FILE = "zoo.exit"
LOG_FILE = "train.log"
STAGING = ".staging"
# Text files of a run in which the zoo may write absolute paths (its command line, arguments, log)
RECORDED_SUFFIXES = (".txt", ".yml", ".log", ".csv", ".json")
# One torch/BLAS thread per process: runs are parallelised across processes, threads would only contend
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class RunSpec:
    """
    One training run of a suite.

    :param algo: Zoo name of the algorithm
    :param env: Environment and its budget
    :param seed: Seed, also giving the zoo run id ``seed + 1``
    """

    algo: str
    env: EnvBudget
    seed: int

    @property
    def env_name(self) -> str:
        """The zoo's folder name of the env id: ``sb3_denoise_pg/NoisyPendulum-v1`` -> ``sb3_denoise_pg-NoisyPendulum-v1``."""
        return str(EnvironmentName(self.env.env_id))

    def run_dir(self, log_root: Path) -> Path:
        return log_root / self.algo / f"{self.env_name}_{self.seed + 1}"

    def staging_dir(self, log_root: Path) -> Path:
        return log_root / STAGING / f"{self.algo}-{self.env_name}-seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.algo} {self.env.env_id} seed {self.seed}"


def default_log_root(suite_name: str) -> Path:
    return RESULTS_DIR / suite_name / "logs"


def plan_runs(suite: Suite) -> list[RunSpec]:
    """All runs of ``suite``, seed-major: every (env, algo) of seed 0 first."""
    return [RunSpec(algo, env, seed) for seed in range(suite.n_seeds) for env in suite.envs for algo in suite.algos]


class UnreadableRun(ValueError):
    """A run folder whose marker or evaluations are missing or cannot be parsed: not a finished run."""


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """
    The marker and the evaluations (``timesteps``, ``results``, ``ep_lengths``) of a finished run.

    :raise UnreadableRun: Naming the file that is missing, truncated or not what the runner writes
    """
    marker_path, evaluations_path = run_dir / MARKER, run_dir / EVALUATIONS
    try:
        marker = json.loads(marker_path.read_text())
        if not (isinstance(marker, dict) and {"algo", "env_id", "seed"} <= set(marker)):
            raise ValueError("not a run marker")
    except (OSError, ValueError) as error:
        raise UnreadableRun(f"{marker_path}: {error}") from error
    try:
        with np.load(evaluations_path) as data:
            evaluations = {key: np.asarray(data[key]) for key in ("timesteps", "results", "ep_lengths")}
        if len(evaluations["timesteps"]) == 0 or len(evaluations["results"]) != len(evaluations["timesteps"]):
            raise ValueError("no evaluation, or as many results as evaluation steps")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise UnreadableRun(f"{evaluations_path}: {error}") from error
    return marker, evaluations


def is_finished(run_dir: Path) -> bool:
    """Whether a run is done: its marker and evaluations parse (anything less is redone)."""
    try:
        read_run(run_dir)
    except UnreadableRun:
        return False
    return True


def default_conf_file(algo: str, env_id: str) -> str | None:
    """
    :return: The ``--conf-file`` that the project's zoo entry point would add (``hyperparams/<algo>.yml`` where the
        project has settings for the pair), relative to the repository root where it lies inside it; ``None`` to
        let the zoo use its own
    """
    from sb3_denoise_pg.zoo import default_conf_file as entry_point_default

    conf_file = entry_point_default(algo, env_id)
    return None if conf_file is None else relative_path(conf_file, REPO_ROOT)


def zoo_command(spec: RunSpec, log_folder: Path, device: str, zoo_args: tuple[str, ...] = ()) -> list[str]:
    """
    The zoo training command of ``spec``, to run from the repository root. No replay buffer or tensorboard logs are
    saved (zoo defaults, made explicit), and checkpoints only where the env's budget asks for them (every greatest
    common divisor of its checkpoints; :func:`keep_checkpoints` removes the others), so that a run only writes small
    files besides its model zips.

    :param spec: The run
    :param log_folder: The zoo's ``--log-folder``, passed relative to the repository root if it lies inside it
    :param device: Torch device
    :param zoo_args: Extra zoo arguments, appended last so that they override ours (a ``--hyperparams`` there
        replaces the env's overrides)
    """
    env_overrides = ("--hyperparams", *spec.env.hyperparams) if spec.env.hyperparams else ()
    save_freq = math.gcd(*spec.env.checkpoints) if spec.env.checkpoints else -1
    conf_file = default_conf_file(spec.algo, spec.env.env_id)
    return [
        sys.executable,
        *ZOO_TRAIN,
        *("--algo", spec.algo, "--env", spec.env.env_id, "--seed", str(spec.seed)),
        *("-n", str(spec.env.n_timesteps), "--log-folder", relative_path(log_folder, REPO_ROOT)),
        *(("--conf-file", conf_file) if conf_file else ()),
        *("--eval-freq", str(spec.env.eval_freq), "--eval-episodes", str(spec.env.eval_episodes), "--n-eval-envs", "1"),
        *("--num-threads", "1", "--device", device, "--vec-env", "dummy"),
        *("--save-freq", str(save_freq), "--tensorboard-log", "", "--log-interval", "10"),
        *env_overrides,
        *zoo_args,
    ]


def checkpoint_path(run_dir: Path, steps: int) -> Path:
    """Where the zoo saves the model of a run (its folder as :meth:`RunSpec.run_dir` gives it) after ``steps`` env-steps."""
    return run_dir / f"rl_model_{steps}_steps.zip"


def keep_checkpoints(run_dir: Path, checkpoints: tuple[int, ...]) -> None:
    """Remove the zoo's checkpoints of a run other than those at ``checkpoints`` env-steps."""
    keep = {checkpoint_path(run_dir, steps) for steps in checkpoints}
    for path in run_dir.glob("rl_model_*_steps.zip"):
        if path not in keep:
            path.unlink()


def launch(command: list[str], log_file: Path, cwd: Path) -> int:
    """
    Run ``command`` single-threaded in ``cwd``, its stdout and stderr to ``log_file``, its pid in ``PID_FILE`` beside
    the log while it runs; a signal to the runner ends it (:func:`stop_children`).

    :return: Its exit code
    """
    pid_file = log_file.parent / PID_FILE
    with open(log_file, "w") as log, _CHILDREN_LOCK:
        if _STOPPING.is_set():
            return -signal.SIGTERM
        env = {**os.environ, **SINGLE_THREAD_ENV}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _CHILDREN[process.pid] = process
        pid_file.write_text(f"{process.pid}\n")
    try:
        return process.wait()
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.pop(process.pid, None)
        pid_file.unlink(missing_ok=True)


def exit_code(staging: Path) -> int | None:
    """The exit code of the zoo process of a run that did not finish (negative: the signal that ended it), if known."""
    try:
        return int((staging / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None


def stop_children(signum: int, _frame: Any = None) -> None:
    """
    Signal handler of the runner: no new run starts, every zoo process under way gets the signal and is waited for;
    their runs stay unfinished (no marker), to be redone by the next invocation.
    """
    _STOPPING.set()
    with _CHILDREN_LOCK:
        children = list(_CHILDREN.values())
    for child in children:
        child.send_signal(signum)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def training_elsewhere(staging: Path) -> int | None:
    """The pid of a live zoo process that another runner started on this staging folder, if any."""
    try:
        pid = int((staging / PID_FILE).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return None if pid in _CHILDREN else pid


def make_portable(run_dir: Path) -> None:
    """Rewrite, in place, the text files of a finished run without this machine's absolute paths (:func:`portable_text`)."""
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in RECORDED_SUFFIXES:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
            portable = portable_text(text, REPO_ROOT)
            if portable != text:
                path.write_bytes(portable.encode("utf-8", errors="surrogateescape"))


def _marker(
    spec: RunSpec,
    command: list[str],
    wall_time: float,
    run_dir: Path,
    jobs: int,
    started: dict[str, str | None],
    where: dict[str, Any],
) -> dict:
    evaluations = np.load(run_dir / "evaluations.npz")
    config_file = run_dir / spec.env_name / "config.yml"
    return {
        "algo": spec.algo,
        "env_id": spec.env.env_id,
        "seed": spec.seed,
        "n_timesteps": spec.env.n_timesteps,
        "eval_freq": spec.env.eval_freq,
        "eval_episodes": spec.env.eval_episodes,
        "wall_time_s": round(wall_time, 2),
        # The wall time includes process start-up, env creation and evaluation (see eval_env_steps)
        "env_steps_per_s": round(spec.env.n_timesteps / wall_time, 2),
        "eval_env_steps": int(evaluations["ep_lengths"].sum()),
        # Run from the repository root
        "command": portable_text(shlex.join(command), REPO_ROOT),
        "jobs": jobs,
        # The launcher, the node and, on a cluster, the job id
        "where": where,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        # The library's version and the checkout's commit (``+dirty``: with uncommitted changes) when the run started
        **started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # The run's hyperparameters as the zoo saved them
        "config": load_zoo_config(config_file) if config_file.is_file() else None,
    }


def execute(spec: RunSpec, log_root: Path, device: str = "cpu", zoo_args: tuple[str, ...] = (), jobs: int = 1) -> dict | None:
    """
    Train ``spec`` unless it is finished, after removing what an unfinished attempt left.

    :return: The run's marker (``None`` if it failed: its log stays in the staging folder until the next attempt)
    """
    run_dir = spec.run_dir(log_root)
    if is_finished(run_dir):
        return read_run(run_dir)[0]
    staging = spec.staging_dir(log_root)
    if _STOPPING.is_set():
        return None
    other = training_elsewhere(staging)
    if other is not None:
        raise RuntimeError(f"{spec} is being trained by process {other} (another runner): not started twice")
    for stale in (run_dir, staging):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True)
    command = zoo_command(spec, staging, device, zoo_args)
    started = provenance(REPO_ROOT)
    start = time.perf_counter()
    returncode = launch(command, staging / LOG_FILE, REPO_ROOT)
    wall_time = time.perf_counter() - start
    # Alone in its log folder, the zoo numbers the run 1
    produced = staging / spec.algo / f"{spec.env_name}_1"
    if returncode != 0 or not (produced / EVALUATIONS).is_file():
        (staging / EXIT_FILE).write_text(f"{returncode}\n")
        return None
    (staging / LOG_FILE).replace(produced / LOG_FILE)
    keep_checkpoints(produced, spec.env.checkpoints)
    make_portable(produced)
    marker = _marker(spec, command, wall_time, produced, jobs, started, where_this_runs())
    (produced / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    # The marker is in place before the rename, so a run folder without one was never completed
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    produced.replace(run_dir)
    shutil.rmtree(staging)
    return marker


def where_this_runs() -> dict[str, Any]:
    """For a run's marker: the launcher, the node and, inside a SLURM or submitit job, its job id."""
    where: dict[str, Any] = {"node": os.environ.get("SLURMD_NODENAME") or socket.gethostname()}
    try:
        import submitit

        environment = submitit.JobEnvironment()
        where.update(launcher=environment.cluster, job_id=str(environment.job_id))
    except (ImportError, RuntimeError):
        where["launcher"] = "local"
    return where
