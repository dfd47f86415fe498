"""Sweeps that go wrong: failed runs remembered and explained, refusals in one paragraph, limits, GPUs, job set-up."""

import json
import pickle
import subprocess
import sys

import pytest

from benchmarks import launch, run
from benchmarks.suites import get_suite, select


def smoke(n_seeds: int = 1) -> list:
    return run.plan_runs(select(get_suite("smoke"), algos=["td3"], n_seeds=n_seeds))


def gone_job(spec, log_root, *, error: str | None = None, stderr: str = "", log: str = "") -> None:
    """A recorded attempt whose job has ended (a process that exited), with the files it left."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    jobs = log_root / launch.LEDGER / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    attempt = {"job_id": str(ended.pid), "result": str(jobs / f"{ended.pid}_result.pkl"), "stderr": str(jobs / "err")}
    if error is not None:
        with open(attempt["result"], "wb") as file:
            pickle.dump(("error", error), file)
    (jobs / "err").write_text(stderr)
    if log:
        spec.staging_dir(log_root).mkdir(parents=True, exist_ok=True)
        (spec.staging_dir(log_root) / run.LOG_FILE).write_text(log)
    launch._ledger_path(spec, log_root).write_text(json.dumps({"run": str(spec), "attempts": [attempt]}))


def test_a_failed_run_is_remembered_explained_and_submitted_again_only_when_asked(tmp_path, capsys):
    failed, timed_out, new = smoke(3)
    log = "Traceback (most recent call last):\n  ...\nTypeError: __init__() got an unexpected keyword argument 'bogus_param'\n"
    gone_job(failed, tmp_path, error="RuntimeError: td3 Pendulum-v1 seed 0 failed", log=log)
    gone_job(timed_out, tmp_path, stderr="slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***")
    todo, skipped = launch.plan_submission([failed, timed_out, new], tmp_path, "local")
    assert todo == [timed_out, new] and skipped[launch.FAILED] == [failed]
    assert launch.plan_submission([failed, timed_out, new], tmp_path, "local", retry_failed=True)[0] == [
        failed,
        timed_out,
        new,
    ]
    table = launch.status_table([failed, timed_out, new], tmp_path, "local")
    assert "3 runs: 0 finished, 0 queued or running, 1 interrupted, 1 failed, 1 not submitted" in table
    assert "unexpected keyword argument 'bogus_param'" in table and "| interrupted | 1 |" in table and "timed out" in table
    # The runner's own command says so too, and the status table submits nothing
    argv = ["--suite", "smoke", "--algos", "td3", "--seeds", "3", "--log-root", str(tmp_path), "--launcher", "slurm"]
    assert run.main([*argv, "--submitit-cluster", "local", "--status"]) == 0
    assert "bogus_param" in capsys.readouterr().out
    assert run.main([*argv, "--submitit-cluster", "local", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out and "not submitted again" in out and "2 to submit" in out


def test_a_refused_submission_is_one_paragraph_naming_the_option(tmp_path, monkeypatch, capsys):
    submitit = pytest.importorskip("submitit")

    def refuse(*args, **kwargs):
        raise submitit.core.utils.FailedJobError(
            "sbatch: error: invalid partition specified: nosuch\nsbatch: error: Batch job submission failed"
        )

    (tmp_path / "bin").mkdir()
    for command in ("sbatch", "srun"):  # submitit looks for both before it submits
        (tmp_path / "bin" / command).write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / "bin" / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", refuse)
    argv = ["--suite", "smoke", "--algos", "td3", "--log-root", str(tmp_path / "logs"), "--launcher", "slurm"]
    assert run.main([*argv, "--partition", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: SLURM refused the submission") and "The option at fault: --partition" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", [["--time-min", "0"], ["--time-min", "1"], ["--mem-gb", "-4"], ["--cpus-per-task", "0"]])
def test_limits_no_run_can_keep_are_refused_before_submission(tmp_path, capsys, bad):
    argv = ["--suite", "smoke", "--algos", "td3", "--log-root", str(tmp_path), "--launcher", "slurm", "--dry-run", *bad]
    assert run.main(argv) == 2
    assert f"{bad[0]} must be at least" in capsys.readouterr().err
    assert not (tmp_path / launch.LEDGER).exists()


def test_gpus_train_on_cuda_and_refuse_an_explicit_cpu(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(run, "submit", lambda runs, log_root, options, device, *rest: seen.update(device=device) or [])
    argv = ["--suite", "smoke", "--algos", "td3", "--log-root", str(tmp_path), "--launcher", "slurm", "--gpus", "1"]
    assert run.main(argv) == 0 and seen["device"] == "cuda"
    with pytest.raises(SystemExit):
        run.main([*argv, "--device", "cpu"])


def test_the_job_gets_its_setup_lines_further_options_and_a_signal_margin_that_fits_its_limit():
    options = launch.SlurmOptions(
        time_min=2, setup=("module load python/3.11", "source venv/bin/activate"), extra={"qos": "low"}
    )
    parameters = options.executor_parameters()
    assert parameters["slurm_setup"] == ["module load python/3.11", "source venv/bin/activate"]
    assert parameters["slurm_additional_parameters"] == {"qos": "low"}
    assert parameters["slurm_signal_delay_s"] == 12  # a tenth of the limit, where submitit's 90 s would end it at once
    assert launch.SlurmOptions(time_min=720).executor_parameters()["slurm_signal_delay_s"] == 90
    assert run._key_value("--constraint=skylake") == ("constraint", "skylake")
