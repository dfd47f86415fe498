"""
Where a suite's runs execute: local processes (``benchmarks.run``'s default) or a SLURM cluster through submitit.

On SLURM every unfinished (algo, env, seed) of a suite is one task of a job array; each task runs
``benchmarks.training.execute`` on its node, so a run trains in its staging folder and lands, with its marker, in the
suite's usual log layout (``benchmarks.report`` reads a sweep's output as it reads a local one). The marker records
where the run executed (job id, node).

A sweep is idempotent and resumable. Each run's attempts are recorded in ``<log-root>/.slurm/`` (job id, when, the
options, submitit's output files), and a run is in one of five states (:func:`run_state`): finished (its marker and
evaluations parse: never submitted again), queued or running (its last job is listed by ``squeue``: left alone),
interrupted (its last job ended without a result: killed, timed out, preempted or cancelled; submitted again, from its
beginning, since the zoo saves the replay buffer only at the end of training), failed (its last job raised: a bad
hyperparameter, a crash; *not* submitted again until asked with ``--retry-failed``, or until its record in
``.slurm/`` is deleted), or not submitted yet. ``--status`` prints the sweep as a table, with the last lines of each
failed run's log.

    python -m benchmarks.run --suite standard --launcher slurm --partition cpu --time-min 720 --mem-gb 4 [--dry-run]
    python -m benchmarks.run --suite standard --launcher slurm ... --wait        # submit, then wait and report failures
    python -m benchmarks.run --suite standard --launcher slurm --status         # the sweep's state, submitting nothing
"""

import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import markdown_table
from benchmarks.training import LOG_FILE, execute, exit_code, is_finished, stop_children

LEDGER = ".slurm"
# States of a run in a sweep
FINISHED, ACTIVE, INTERRUPTED, FAILED, NEW = "finished", "queued or running", "interrupted", "failed", "not submitted"
# submitit signals a job this long before its time limit (its default), or a tenth of a short limit
SIGNAL_DELAY_S = 90
# The shortest time limit a run may have: the signal's margin, start-up and a first evaluation
MIN_TIME_MIN = 2
# What sbatch says when it refuses an option (lower case), and the option at fault
REFUSALS: tuple[tuple[str, str], ...] = (
    (r"unable to contact|connection refused|controller", "none: the SLURM controller is not reachable"),
    (r"invalid partition", "--partition"),
    (r"gres|generic resource|gpu", "--gpus (or the partition has no GPUs)"),
    (r"invalid account|account", "--account"),
    (r"qos", "--slurm-arg qos=..."),
    (r"time limit", "--time-min"),
    (r"memory", "--mem-gb"),
    (r"cpu count|cpus", "--cpus-per-task"),
)


class SlurmError(RuntimeError):
    """SLURM cannot be reached, or refused a submission."""


class RunInterrupted(RuntimeError):
    """A run's training was stopped by a signal (its job cancelled or preempted): not a failure of the run itself."""


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
    :param setup: Shell lines the job runs before training (``module load ...``, ``conda activate ...``)
    :param extra: Further sbatch options, name -> value (``qos``, ``constraint``, ``gres``, ...)
    :raise ValueError: For a limit no run can keep (a time limit under ``MIN_TIME_MIN`` minutes, no memory, no core)
    """

    partition: str | None = None
    time_min: int = 720
    cpus_per_task: int = 1
    mem_gb: int = 4
    gpus_per_node: int = 0
    array_parallelism: int = 256
    account: str | None = None
    cluster: str = "slurm"
    setup: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time_min < MIN_TIME_MIN:
            raise ValueError(f"--time-min must be at least {MIN_TIME_MIN} minutes (a run's start-up), got {self.time_min}")
        for name in ("mem_gb", "cpus_per_task", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.gpus_per_node < 0:
            raise ValueError(f"--gpus must be 0 or more, got {self.gpus_per_node}")

    @property
    def signal_delay_s(self) -> int:
        """How long before its time limit a job is signalled: submitit's 90 s, or a tenth of a limit under 15 minutes."""
        return min(SIGNAL_DELAY_S, self.time_min * 6)

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
        if self.cluster == "slurm":
            parameters["slurm_signal_delay_s"] = self.signal_delay_s
            if self.setup:
                parameters["slurm_setup"] = list(self.setup)
            if self.extra:
                parameters["slurm_additional_parameters"] = dict(self.extra)
        return parameters


def run_in_job(spec: Any, log_root: Path, device: str, zoo_args: tuple[str, ...]) -> dict:
    """
    A job's work: train one run where the launcher placed it. Raises when the run fails, so that the job fails too,
    with the last lines of the run's log in the message.
    """
    try:
        marker = execute(spec, log_root, device, zoo_args, jobs=1)
    except KeyboardInterrupt:  # submitit's local executor cancels a job with SIGINT
        stop_children(signal.SIGTERM)
        raise RunInterrupted(f"{spec} was interrupted (SIGINT)") from None
    if marker is None:
        staging = spec.staging_dir(log_root)
        code = exit_code(staging)
        if code is not None and code < 0:
            raise RunInterrupted(f"{spec} was interrupted: its training ended by signal {-code}")
        raise RuntimeError(f"{spec} failed: {last_lines(staging / LOG_FILE) or 'no log'} (log: {staging / LOG_FILE})")
    return marker


def last_lines(path: Path, n: int = 1) -> str:
    """The last ``n`` non-empty lines of a text file, joined by `` / ``; empty when there is none."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " / ".join(lines[-n:])


def _ledger_path(spec: Any, log_root: Path) -> Path:
    return log_root / LEDGER / f"{spec.staging_dir(log_root).name}.json"


def attempts(spec: Any, log_root: Path) -> list[dict[str, Any]]:
    """A run's recorded submissions, oldest first (a record of one job, as written before attempts were kept, too)."""
    path = _ledger_path(spec, log_root)
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    return record["attempts"] if "attempts" in record else [record]


def _record_attempt(spec: Any, log_root: Path, job: Any, options: "SlurmOptions", submitted_at: str) -> None:
    attempt = {
        "job_id": str(job.job_id),
        "submitted_at": submitted_at,
        "options": asdict(options),
        "result": str(job.paths.result_pickle),
        "stdout": str(job.paths.stdout),
        "stderr": str(job.paths.stderr),
    }
    record = {"run": str(spec), "attempts": [*attempts(spec, log_root), attempt]}
    _ledger_path(spec, log_root).write_text(json.dumps(record, indent=1) + "\n")


def why_it_ended(attempt: dict[str, Any], run_log: Path) -> tuple[str, str]:
    """
    A gone job's state and reason, from its files alone (submitit's own job states need SLURM's accounting): failed,
    with the error's last line and the run log's, or interrupted, with what SLURM wrote of it.
    """
    result = Path(attempt.get("result", ""))
    if result.is_file():
        with open(result, "rb") as file:
            outcome, value = pickle.load(file)
        if outcome == "error" and RunInterrupted.__name__ in str(value):
            return INTERRUPTED, "its training was stopped by a signal (the job cancelled or preempted)"
        if outcome == "error":
            error = str(value).strip().splitlines()[-1] if str(value).strip() else "an error"
            log = last_lines(run_log, 2)
            return FAILED, error + (f"; the run's log ends: {log}" if log and log not in error else "")
        return INTERRUPTED, "it returned without a finished run"
    stderr = last_lines(Path(attempt.get("stderr", "")), 50).upper()
    for pattern, reason in (("TIME LIMIT", "timed out"), ("PREEMPT", "preempted"), ("CANCELLED", "cancelled")):
        if pattern in stderr:
            return INTERRUPTED, reason
    return INTERRUPTED, "no result: it was killed, timed out, preempted or cancelled"


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


def run_states(runs: list[Any], log_root: Path, cluster: str) -> dict[Any, tuple[str, str]]:
    """
    Each run's state (``FINISHED``, ``ACTIVE``, ``INTERRUPTED``, ``FAILED``, ``NEW``) and, for a job that ended
    without a finished run, why.
    """
    last = {spec: attempts(spec, log_root)[-1] for spec in runs if attempts(spec, log_root)}
    unfinished = {spec: attempt for spec, attempt in last.items() if not is_finished(spec.run_dir(log_root))}
    active = active_jobs([attempt["job_id"] for attempt in unfinished.values()], cluster)
    states: dict[Any, tuple[str, str]] = {}
    for spec in runs:
        if is_finished(spec.run_dir(log_root)):
            states[spec] = (FINISHED, "")
        elif spec not in last:
            states[spec] = (NEW, "")
        elif last[spec]["job_id"] in active:
            states[spec] = (ACTIVE, "")
        else:
            states[spec] = why_it_ended(last[spec], spec.staging_dir(log_root) / LOG_FILE)
    return states


def plan_submission(
    runs: list[Any], log_root: Path, cluster: str, retry_failed: bool = False
) -> tuple[list[Any], dict[str, list[Any]]]:
    """
    Which runs of a sweep to submit: the new and the interrupted ones, and the failed ones when ``retry_failed``.

    :return: The runs to submit, and the others by state (``finished``, ``queued or running``, and ``failed`` where
        some are left out)
    """
    states = run_states(runs, log_root, cluster)
    left_out = {FINISHED, ACTIVE} | (set() if retry_failed else {FAILED})
    todo = [spec for spec in runs if states[spec][0] not in left_out]
    skipped = {state: [spec for spec in runs if states[spec][0] == state] for state in (FINISHED, ACTIVE)}
    failed = [spec for spec in runs if states[spec][0] == FAILED]
    if failed and not retry_failed:
        skipped[FAILED] = failed
    return todo, skipped


def status_table(runs: list[Any], log_root: Path, cluster: str) -> str:
    """The sweep as a table: each run's state, its attempts, its last job and why that job ended."""
    states = run_states(runs, log_root, cluster)
    rows = []
    for spec in runs:
        tried = attempts(spec, log_root)
        state, why = states[spec]
        rows.append([str(spec), state, len(tried), tried[-1]["job_id"] if tried else "", why])
    counts = ", ".join(
        f"{sum(s == state for s, _ in states.values())} {state}" for state in (FINISHED, ACTIVE, INTERRUPTED, FAILED, NEW)
    )
    return f"{len(runs)} runs: {counts}\n\n" + markdown_table(["run", "state", "attempts", "last job", "why it ended"], rows)


def refusal_message(error: Exception, options: "SlurmOptions") -> str:
    """One paragraph for a refused submission: what sbatch said and the option at fault."""
    text = str(error).strip()
    lines = [line.split("sbatch:", 1)[1].strip() for line in text.splitlines() if "sbatch:" in line] or [text]
    said = re.sub(r"\s+", " ", "; ".join(lines))[-400:]
    fault = next((option for pattern, option in REFUSALS if re.search(pattern, said.lower())), "unknown")
    parameters = ", ".join(f"{key}={value}" for key, value in options.executor_parameters().items())
    return (
        f"SLURM refused the submission. sbatch said: {said.strip()}. The option at fault: {fault}. "
        f"Submitted with {parameters}."
    )


def submit(
    runs: list[Any],
    log_root: Path,
    options: SlurmOptions,
    device: str = "cpu",
    zoo_args: tuple[str, ...] = (),
    dry_run: bool = False,
    retry_failed: bool = False,
) -> list[Any]:
    """
    Submit every run of a sweep that is new or interrupted (failed too, with ``retry_failed``), as one job array.

    :return: The submitted submitit jobs (none on a dry run)
    :raise SlurmError: When SLURM cannot be reached or refuses the submission, in one paragraph
    """
    todo, skipped = plan_submission(runs, log_root, options.cluster, retry_failed)
    counts = ", ".join(f"{len(specs)} {reason}" for reason, specs in skipped.items())
    print(f"{len(runs)} runs: {counts}, {len(todo)} to submit")
    if skipped.get(FAILED):
        print(
            f"{len(skipped[FAILED])} runs failed before and are not submitted again (--status says why; --retry-failed "
            f"submits them): {', '.join(map(str, skipped[FAILED]))}"
        )
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
    except (FileNotFoundError, subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as error:
        raise SlurmError(refusal_message(error, options)) from None
    submitted_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for spec, job in zip(todo, jobs, strict=True):
        _record_attempt(spec, log_root, job, options, submitted_at)
    print(f"Submitted {n} runs as job array {jobs[0].job_id.split('_')[0]} ({options.cluster}); ledger in {log_root / LEDGER}")
    return jobs


def wait(jobs: list[Any], log_root: Path, cluster: str, poll_s: float = 10.0) -> list[str]:
    """
    Wait until none of ``jobs`` is queued or running, then report each run that did not finish: its job id, why the
    job ended (the run's error and the last lines of its log, or that it was killed before it could write a result)
    and where its logs are.

    :return: One line per failed run
    """
    # SLURM: squeue, which needs no accounting database (submitit's job states read sacct); locally, the processes
    while active_jobs([str(job.job_id) for job in jobs], cluster) if cluster == "slurm" else not all(j.done() for j in jobs):
        time.sleep(poll_s)
    failures = []
    for job in jobs:
        spec = job.submission().args[0]
        if not is_finished(spec.run_dir(log_root)):
            attempt = {"result": str(job.paths.result_pickle), "stderr": str(job.paths.stderr)}
            state, why = why_it_ended(attempt, spec.staging_dir(log_root) / LOG_FILE)
            failures.append(
                f"{spec}: job {job.job_id} {state}: {why}; job output {job.paths.stdout}, {job.paths.stderr}; "
                f"run log {spec.staging_dir(log_root) / LOG_FILE}"
            )
    for line in failures:
        print(f"FAILED {line}")
    return failures
