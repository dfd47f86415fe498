"""Sweeps through submitit: what is submitted, idempotence, resubmission, failures, the suite's layout."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import launch, report, run
from benchmarks.suites import get_suite, select
from benchmarks.training import PID_FILE

LOCAL = launch.SlurmOptions(cluster="local", time_min=10)


def smoke(n_seeds: int = 1) -> list:
    return run.plan_runs(select(get_suite("smoke"), algos=["td3"], n_seeds=n_seeds))


def record(spec, log_root, job_id: str) -> None:
    path = launch._ledger_path(spec, log_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"job_id": job_id}))


def test_dry_run_shows_the_array_and_submits_nothing(tmp_path, capsys):
    options = launch.SlurmOptions(partition="cpu", time_min=90, mem_gb=3, gpus_per_node=1)
    assert launch.submit(smoke(2), tmp_path, options, dry_run=True) == []
    out = capsys.readouterr().out
    assert "2 to submit" in out and "job array of 2 tasks" in out
    assert "slurm_partition=cpu" in out and "timeout_min=90" in out and "mem_gb=3" in out and "gpus_per_node=1" in out
    assert not (tmp_path / launch.LEDGER).exists()


def test_runs_of_live_jobs_wait_and_runs_of_gone_jobs_are_submitted_again(tmp_path):
    finished, queued, gone, new = smoke(4)
    finished.run_dir(tmp_path).mkdir(parents=True)
    (finished.run_dir(tmp_path) / run.MARKER).write_text('{"algo": "td3", "env_id": "Pendulum-v1", "seed": 0}')
    np.savez(finished.run_dir(tmp_path) / run.EVALUATIONS, timesteps=[200], results=[[-1.0]], ep_lengths=[[200]])
    record(queued, tmp_path, str(subprocess.os.getpid()))  # a live process
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    record(gone, tmp_path, str(ended.pid))
    todo, skipped = launch.plan_submission([finished, queued, gone, new], tmp_path, "local")
    assert todo == [gone, new]
    assert skipped == {"finished": [finished], "queued or running": [queued]}


def test_an_unreachable_slurm_gets_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(launch.SlurmError, match="not reachable: `sbatch` is not on PATH"):
        launch.submit(smoke(), tmp_path, launch.SlurmOptions())
    record(smoke()[0], tmp_path, "123_0")
    with pytest.raises(launch.SlurmError, match="not reachable: `squeue`"):
        launch.plan_submission(smoke(), tmp_path, "slurm")


@pytest.mark.slow
def test_a_sweep_lands_in_the_suite_layout_and_a_killed_run_is_submitted_again(tmp_path, capsys):
    runs = smoke(2)
    jobs = launch.submit(runs, tmp_path, LOCAL)
    assert len(jobs) == 2 and len(set(job.job_id for job in jobs)) == 2
    # Killed once it trains, as a preempted or timed-out job is. Not sooner: a signal that reaches submitit's job
    # controller before it forwards signals ends the controller alone, and its run goes on to finish
    training_pid = runs[1].staging_dir(tmp_path) / PID_FILE
    deadline = time.monotonic() + 120
    while not training_pid.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    jobs[1].cancel()
    failures = launch.wait(jobs, tmp_path, "local", poll_s=1)
    assert len(failures) == 1 and str(runs[1]) in failures[0] and "run log" in failures[0]
    marker = json.loads((runs[0].run_dir(tmp_path) / run.MARKER).read_text())
    assert marker["where"]["launcher"] == "local" and marker["where"]["job_id"] == str(jobs[0].job_id)
    # Only the killed run is submitted again, and it completes; then nothing is left to submit
    again = launch.submit(runs, tmp_path, LOCAL)
    assert len(again) == 1 and launch.wait(again, tmp_path, "local", poll_s=1) == []
    assert launch.submit(runs, tmp_path, LOCAL) == []
    assert "2 finished, 0 queued or running, 0 to submit" in capsys.readouterr().out
    # The sweep's output reads as a local suite's
    assert {(r.algo, r.seed) for r in report.load_runs(tmp_path)} == {("td3", 0), ("td3", 1)}
