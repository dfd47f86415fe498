"""The suite runner and the report under bad input: arguments, half-written runs, signals, a second runner."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report, run, training
from benchmarks.suites import get_suite, select
from tests.benchmarks.test_runner import FakeZoo


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--envs", "NoSuchEnv-v0"], "NoSuchEnv-v0 is not in suite 'quick'"),
        (["--jobs", "0"], "--jobs: must be an integer >= 1"),
        (["--seeds", "-3"], "--seeds: must be an integer >= 1"),
        (["--poll-s", "0"], "--poll-s: must be a number > 0"),
        (["--poll-s", "nan"], "--poll-s: must be a number > 0"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--log-root", str(tmp_path), "--dry-run", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _finished_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / run.MARKER).write_text(json.dumps({"algo": "td3", "env_id": "Pendulum-v1", "seed": 0}))
    np.savez(run_dir / run.EVALUATIONS, timesteps=[200, 400], results=[[-1.0], [-0.5]], ep_lengths=[[200], [200]])


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / run.MARKER).write_text(""),
        lambda d: (d / run.MARKER).write_text('{"algo": "td3", "env'),
        lambda d: (d / run.EVALUATIONS).unlink(),
        lambda d: (d / run.EVALUATIONS).write_bytes((d / run.EVALUATIONS).read_bytes()[:50]),
    ],
    ids=["empty marker", "truncated marker", "missing evaluations", "truncated evaluations"],
)
def test_a_half_written_run_is_redone_and_the_report_names_its_file(damage, tmp_path, monkeypatch, capsys):
    suite = select(get_suite("smoke"), algos=["td3"])
    (spec,) = run.plan_runs(suite)
    _finished_run(spec.run_dir(tmp_path))
    assert run.is_finished(spec.run_dir(tmp_path))
    damage(spec.run_dir(tmp_path))
    assert not run.is_finished(spec.run_dir(tmp_path))
    assert report.load_runs(tmp_path) == []
    assert str(spec.run_dir(tmp_path)) in capsys.readouterr().err
    fake_zoo = FakeZoo()
    monkeypatch.setattr(training, "launch", fake_zoo)
    assert run.run_suite(suite, tmp_path) == [] and len(fake_zoo.commands) == 1
    assert run.is_finished(spec.run_dir(tmp_path))


def test_a_signal_to_the_runner_ends_its_zoo_processes(tmp_path):
    codes = []
    command = [sys.executable, "-c", "import time; time.sleep(120)"]
    worker = threading.Thread(target=lambda: codes.append(training.launch(command, tmp_path / "train.log", tmp_path)))
    try:
        worker.start()
        while not (tmp_path / run.PID_FILE).is_file():
            time.sleep(0.05)
        pid = int((tmp_path / run.PID_FILE).read_text())
        run.stop_children(signal.SIGTERM)
        worker.join(timeout=30)
        assert codes == [-signal.SIGTERM]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not (tmp_path / run.PID_FILE).exists()
        # Once stopping, no new run starts
        assert run.execute(run.plan_runs(select(get_suite("smoke"), algos=["td3"]))[0], tmp_path) is None
    finally:
        run._STOPPING.clear()


def test_a_run_another_runner_is_training_is_not_started_twice(tmp_path, monkeypatch, capsys):
    suite = select(get_suite("smoke"), algos=["td3"])
    (spec,) = run.plan_runs(suite)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        spec.staging_dir(tmp_path).mkdir(parents=True)
        (spec.staging_dir(tmp_path) / run.PID_FILE).write_text(f"{other.pid}\n")
        fake_zoo = FakeZoo()
        monkeypatch.setattr(training, "launch", fake_zoo)
        assert run.run_suite(suite, tmp_path) == [spec]
        assert fake_zoo.commands == []
        assert f"being trained by process {other.pid}" in capsys.readouterr().out
    finally:
        other.kill()
        other.wait()
