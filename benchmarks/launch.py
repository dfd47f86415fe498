"""
Where a suite's runs execute: local processes (``benchmarks.run``'s default) or a SLURM cluster through submitit.

On SLURM every unfinished (algo, env, seed) of a suite is one task of a job array; each task runs
``benchmarks.training.execute`` on its node, so a run trains in its staging folder and lands, with its marker, in the
suite's usual log layout (``benchmarks.report`` reads a sweep's output as it reads a local one). The marker records
where the run executed (job id, node).

A sweep is idempotent and resumable: a run with a marker is finished and never submitted again; a run whose last
job is still queued or running (``squeue``) is left alone; anything else (a job that failed, timed out, was
preempted or cancelled) is submitted again, and restarts from its beginning: the zoo saves the replay buffer only
at the end of training, so it cannot continue a run faithfully from a checkpoint. Each submission is recorded in
``<log-root>/.slurm/`` (the job id per run, and submitit's job folders with each task's output).

    python -m benchmarks.run --suite standard --launcher slurm --partition cpu --time-min 720 --mem-gb 4 [--dry-run]
    python -m benchmarks.run --suite standard --launcher slurm ... --wait        # submit, then wait and report failures
"""

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.training import LOG_FILE, execute, is_finished

LEDGER = ".slurm"


class SlurmError(RuntimeError):
    """SLURM cannot be reached, or refused a submission."""


@dataclass(frozen=True)
class SlurmOptions:
    """
    The resources of one run's job.

    :param partition: SLURM partition (``None``: the cluster's default)
    :param time_min: Time limit of a run, in minutes
    :param cpus_per_task: CPU cores of a run (the runs use one torch thread: 1 is enough)
    :param mem_gb: Memory of a run, in GB
    :param gpus_per_node: GPUs of a run (0: none; a run then trains on the CPU)
    :param array_parallelism: The most runs of the array that SLURM runs at once
    :param account: SLURM account to charge (``None``: the user's default)
    :param cluster: ``"slurm"``, or ``"local"`` for submitit's local executor (the same jobs as local processes,
        for tests and for trying a sweep without a cluster)
    """

    partition: str | None = None
    time_min: int = 720
    cpus_per_task: int = 1
    mem_gb: int = 4
    gpus_per_node: int = 0
    array_parallelism: int = 256
    account: str | None = None
    cluster: str = "slurm"

    def executor_parameters(self) -> dict[str, Any]:
        """submitit's ``update_parameters`` of these options."""
        parameters: dict[str, Any] = dict(
            name="denoise-pg-benchmark",
            timeout_min=self.time_min,
            cpus_per_task=self.cpus_per_task,
            mem_gb=self.mem_gb,
            slurm_array_parallelism=self.array_parallelism,
        )
        if self.gpus_per_node:
            parameters["gpus_per_node"] = self.gpus_per_node
        if self.partition:
            parameters["slurm_partition"] = self.partition
        if self.account:
            parameters["slurm_account"] = self.account
        return parameters


def run_in_job(spec: Any, log_root: Path, device: str, zoo_args: tuple[str, ...]) -> dict:
    """
    A job's work: train one run where the launcher placed it. Raises when the run fails, so that the job fails too,
    with the run's log path in the message.
    """
    marker = execute(spec, log_root, device, zoo_args, jobs=1)
    if marker is None:
        raise RuntimeError(f"{spec} failed: see {spec.staging_dir(log_root) / LOG_FILE}")
    return marker


def _ledger_path(spec: Any, log_root: Path) -> Path:
    return log_root / LEDGER / f"{spec.staging_dir(log_root).name}.json"


def active_jobs(job_ids: list[str], cluster: str) -> set[str]:
    """
    The jobs of ``job_ids`` that are still queued or running: on SLURM those ``squeue`` lists (array tasks one by
    one); with the local executor, those whose process is alive (the processes of an earlier invocation). No
    accounting database is needed.
    """
    if not job_ids:
        return set()
    if cluster == "local":
        alive = set()
        for job_id in job_ids:
            try:
                os.kill(int(job_id), 0)
                alive.add(job_id)
            except (OSError, ValueError):
                pass
        return alive
    command = [
        "squeue",
        "--noheader",
        "--array",
        "--format=%i",
        "--jobs",
        ",".join(sorted({j.split("_")[0] for j in job_ids})),
    ]
    result = _slurm_command(command, allow_invalid_ids=True)
    listed = {line.strip() for line in result.splitlines() if line.strip()}
    return {job_id for job_id in job_ids if job_id in listed}


def _slurm_command(command: list[str], allow_invalid_ids: bool = False) -> str:
    if shutil.which(command[0]) is None:
        raise SlurmError(f"SLURM is not reachable: `{command[0]}` is not on PATH (run on a login node of the cluster)")
    result = subprocess.run(command, capture_output=True, text=True)
    # squeue --jobs of jobs long gone answers "Invalid job id specified": none of them is active
    if result.returncode != 0 and not (allow_invalid_ids and "Invalid job id" in result.stderr):
        raise SlurmError(f"SLURM is not reachable: `{shlex.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout


def plan_submission(runs: list[Any], log_root: Path, cluster: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """
    Which runs of a sweep to submit.

    :return: The runs to submit, and the others by reason (``finished``, ``queued or running``)
    """
    finished = [spec for spec in runs if is_finished(spec.run_dir(log_root))]
    recorded = {}
    for spec in runs:
        record = _ledger_path(spec, log_root)
        if spec not in finished and record.is_file():
            recorded[spec] = json.loads(record.read_text())["job_id"]
    active = active_jobs(list(recorded.values()), cluster)
    queued = [spec for spec, job_id in recorded.items() if job_id in active]
    todo = [spec for spec in runs if spec not in finished and spec not in queued]
    return todo, {"finished": finished, "queued or running": queued}


def submit(
    runs: list[Any],
    log_root: Path,
    options: SlurmOptions,
    device: str = "cpu",
    zoo_args: tuple[str, ...] = (),
    dry_run: bool = False,
) -> list[Any]:
    """
    Submit every run of a sweep that is neither finished nor queued, as one job array.

    :return: The submitted submitit jobs (none on a dry run)
    """
    todo, skipped = plan_submission(runs, log_root, options.cluster)
    counts = ", ".join(f"{len(specs)} {reason}" for reason, specs in skipped.items())
    print(f"{len(runs)} runs: {counts}, {len(todo)} to submit")
    if not todo:
        return []
    if dry_run:
        parameters = " ".join(f"{key}={value}" for key, value in options.executor_parameters().items())
        print(f"Would submit a job array of {len(todo)} tasks to {options.cluster} ({parameters}):")
        for spec in todo:
            print(f"  {spec}")
        return []
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise SlurmError("SLURM is not reachable: `sbatch` is not on PATH (submit from a login node of the cluster)")
    import submitit

    (log_root / LEDGER).mkdir(parents=True, exist_ok=True)
    (log_root / LEDGER / ".gitignore").write_text("*\n")  # job records and outputs, never committed
    folder = log_root / LEDGER / "jobs"
    executor = submitit.AutoExecutor(folder=folder, cluster=options.cluster)
    executor.update_parameters(**options.executor_parameters())
    n = len(todo)
    try:
        jobs = executor.map_array(run_in_job, todo, [log_root] * n, [device] * n, [tuple(zoo_args)] * n)
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        raise SlurmError(f"SLURM refused the submission: {error}") from error
    submitted_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for spec, job in zip(todo, jobs, strict=True):
        record = {"job_id": str(job.job_id), "run": str(spec), "submitted_at": submitted_at, "options": asdict(options)}
        _ledger_path(spec, log_root).write_text(json.dumps(record, indent=1) + "\n")
    print(f"Submitted {n} runs as job array {jobs[0].job_id.split('_')[0]} ({options.cluster}); ledger in {log_root / LEDGER}")
    return jobs


def _why_it_ended(job: Any) -> str:
    """A finished job's reason from its result file alone (submitit's own job states need SLURM's accounting)."""
    import pickle

    if not job.paths.result_pickle.is_file():
        return "no result: it was killed, timed out, preempted or cancelled"
    with open(job.paths.result_pickle, "rb") as file:
        outcome, value = pickle.load(file)
    return str(value).strip().splitlines()[-1] if outcome == "error" else "it returned without a finished run"


def wait(jobs: list[Any], log_root: Path, cluster: str, poll_s: float = 10.0) -> list[str]:
    """
    Wait until none of ``jobs`` is queued or running, then report each run that did not finish: its job id, why the
    job ended (the run's error, or that it was killed before it could write a result) and where its logs are.

    :return: One line per failed run
    """
    # SLURM: squeue, which needs no accounting database (submitit's job states read sacct); locally, the processes
    while active_jobs([str(job.job_id) for job in jobs], cluster) if cluster == "slurm" else not all(j.done() for j in jobs):
        time.sleep(poll_s)
    failures = []
    for job in jobs:
        spec = job.submission().args[0]
        if not is_finished(spec.run_dir(log_root)):
            failures.append(
                f"{spec}: job {job.job_id} ended without a finished run: {_why_it_ended(job)}; job output "
                f"{job.paths.stdout}, {job.paths.stderr}; run log {spec.staging_dir(log_root) / LOG_FILE}"
            )
    for line in failures:
        print(f"FAILED {line}")
    return failures
