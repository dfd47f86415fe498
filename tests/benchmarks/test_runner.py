"""The suite runner: its plan, the zoo commands, resumability, what a run records, and a tiny end-to-end run."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run, training
from benchmarks.suites import get_suite, select


def test_plan_is_seed_major():
    suite = select(get_suite("quick"), algos=["denoise_pg", "td3"], n_seeds=2)
    plan = run.plan_runs(suite)
    assert len(plan) == 2 * len(suite.envs) * 2
    assert [spec.seed for spec in plan] == sorted(spec.seed for spec in plan)
    namespaced = next(spec for spec in plan if spec.env.env_id == "sb3_denoise_pg/NoisyPendulum-v1")
    assert namespaced.run_dir(Path("logs")) == Path("logs/denoise_pg/sb3_denoise_pg-NoisyPendulum-v1_1")


def test_env_overrides_reach_the_zoo_command():
    """Every algorithm gets the env's overrides, and extra zoo arguments come last so that they win."""
    suite = get_suite("quick")
    inverted = suite.budget("InvertedPendulum-v5")
    assert inverted.hyperparams == ("learning_starts:1000",)
    for algo in suite.algos:
        command = run.zoo_command(run.RunSpec(algo, inverted, 0), Path("logs"), "cpu", ("--hyperparams", "gamma:0.9"))
        assert command[-4:] == ["--hyperparams", "learning_starts:1000", "--hyperparams", "gamma:0.9"]
    plain = run.zoo_command(run.RunSpec("td3", suite.budget("Pendulum-v1"), 0), Path("logs"), "cpu")
    assert "--hyperparams" not in plain


class FakeZoo:
    """
    Stands for the zoo's training subprocess, run in ``cwd``: writes the zoo's layout into --log-folder, with the
    absolute paths that the zoo writes (its command line with the interpreter, its log).
    """

    def __init__(self, returncode: int = 0):
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], log_file: Path, cwd: Path) -> int:
        self.commands.append(command)
        log_folder = cwd / command[command.index("--log-folder") + 1]
        algo, env = command[command.index("--algo") + 1], command[command.index("--env") + 1]
        run_dir = log_folder / algo / f"{env}_1"
        log_file.write_text(f"Log path: {run_dir.resolve()}\ntraining\n")
        (run_dir / env).mkdir(parents=True)
        (run_dir / env / "command.txt").write_text(
            " ".join([sys.executable, *command[1:]]).replace(str(log_folder), str(log_folder.resolve()))
        )
        (run_dir / env / "args.yml").write_text(
            f"!!python/object/apply:collections.OrderedDict\n- - - log_folder\n    - {log_folder.resolve()}\n"
        )
        (run_dir / env / "config.yml").write_text(
            "!!python/object/apply:collections.OrderedDict\n- - - learning_starts\n    - 200\n  - - policy\n    - MlpPolicy\n"
        )
        np.savez(run_dir / "evaluations.npz", timesteps=[200], results=[[-1.0, -2.0]], ep_lengths=[[200, 200]])
        return self.returncode


def test_runner_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    suite = select(get_suite("smoke"), algos=["td3"], n_seeds=3)
    finished, unfinished, never_started = run.plan_runs(suite)
    finished.run_dir(tmp_path).mkdir(parents=True)
    (finished.run_dir(tmp_path) / run.MARKER).write_text('{"algo": "td3", "env_id": "Pendulum-v1", "seed": 0}')
    np.savez(finished.run_dir(tmp_path) / run.EVALUATIONS, timesteps=[200], results=[[-1.0]], ep_lengths=[[200]])
    # A crashed attempt: its half-written run folder and staging folder must go
    (unfinished.run_dir(tmp_path) / "junk").mkdir(parents=True)
    (unfinished.staging_dir(tmp_path) / "td3" / "Pendulum-v1_1").mkdir(parents=True)
    fake_zoo = FakeZoo()
    monkeypatch.setattr(training, "launch", fake_zoo)

    assert run.run_suite(suite, tmp_path, jobs=2) == []
    assert sorted(command[command.index("--seed") + 1] for command in fake_zoo.commands) == ["1", "2"]
    for spec in (unfinished, never_started):
        run_dir = spec.run_dir(tmp_path)
        assert {path.name for path in run_dir.iterdir()} == {"Pendulum-v1", run.LOG_FILE, run.MARKER, "evaluations.npz"}
        marker = json.loads((run_dir / run.MARKER).read_text())
        assert (marker["seed"], marker["n_timesteps"], marker["eval_env_steps"]) == (spec.seed, 600, 400)
        assert not spec.staging_dir(tmp_path).exists()

    # Everything finished: nothing is launched again
    run.run_suite(suite, tmp_path)
    assert len(fake_zoo.commands) == 2


def test_runner_failure_keeps_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(training, "launch", FakeZoo(returncode=1))
    suite = select(get_suite("smoke"), algos=["td3"])
    (spec,) = run.plan_runs(suite)
    assert run.run_suite(suite, tmp_path) == [spec]
    assert not spec.run_dir(tmp_path).exists()
    assert (spec.staging_dir(tmp_path) / run.LOG_FILE).is_file()


def test_dry_run_launches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setattr(training, "launch", None)
    argv = ["--suite", "quick", "--seeds", "1", "--log-root", str(tmp_path), "--dry-run", "--", "--verbose", "0"]
    assert run.main(argv) == 0
    output = capsys.readouterr().out
    assert "15 to run" in output  # 5 envs x 3 algorithms x 1 seed
    assert "--env sb3_denoise_pg/NoisyPendulum-v1 --seed 0 -n 20000" in output
    assert output.rstrip().endswith("--verbose 0")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("sb3_denoise_pg.zoo") is None, reason="needs the project's zoo entry point")
def test_smoke_suite_end_to_end(tmp_path: Path, random_scores: Path):
    from benchmarks import report

    assert run.main(["--suite", "smoke", "--jobs", "2", "--log-root", str(tmp_path / "logs")]) == 0
    markdown = report.write_report("smoke", tmp_path / "logs", tmp_path, random_scores, reps=100)
    assert "missing" not in markdown
    # What the zoo recorded names no interpreter path, and the marker carries the run's settings
    for spec in run.plan_runs(get_suite("smoke")):
        run_dir = spec.run_dir(tmp_path / "logs")
        marker = json.loads((run_dir / run.MARKER).read_text())
        assert marker["command"].startswith("python -m sb3_denoise_pg.zoo train ")
        assert (run_dir / spec.env_name / "command.txt").read_text().startswith("python -m sb3_denoise_pg.zoo train ")
        assert marker["config"]["learning_starts"] == 200


def test_zoo_runs_from_the_repository_root_with_relative_paths():
    spec = run.RunSpec("denoise_pg", get_suite("quick").budget("Pendulum-v1"), 0)
    log_root = run.default_log_root("quick")
    command = run.zoo_command(spec, spec.staging_dir(log_root), "cpu")
    assert command[command.index("--log-folder") + 1] == "benchmarks/results/quick/logs/.staging/denoise_pg-Pendulum-v1-seed0"
    # The project's settings, named as the zoo entry point would, but relative
    assert command[command.index("--conf-file") + 1] == "hyperparams/denoise_pg.yml"
    # A log folder outside the checkout stays as given
    outside = Path("/nonexistent/logs")
    assert run.zoo_command(spec, outside, "cpu")[command.index("--log-folder") + 1] == str(outside)


def test_recorded_run_has_no_machine_paths_and_records_its_provenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run inside the checkout (here a stand-in root) records repository-relative paths and a bare python."""
    monkeypatch.setattr(training, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(training, "provenance", lambda root: {"version": "9.9.9", "commit": "abc123+dirty"})
    fake_zoo = FakeZoo()
    monkeypatch.setattr(training, "launch", fake_zoo)
    log_root = tmp_path / "benchmarks" / "results" / "smoke" / "logs"
    (spec,) = run.plan_runs(select(get_suite("smoke"), algos=["td3"]))
    assert run.run_suite(select(get_suite("smoke"), algos=["td3"]), log_root) == []
    (command,) = fake_zoo.commands
    staging = "benchmarks/results/smoke/logs/.staging/td3-Pendulum-v1-seed0"
    assert command[command.index("--log-folder") + 1] == staging
    run_dir = spec.run_dir(log_root)
    for path in run_dir.rglob("*"):
        if path.suffix in (".json", ".yml", ".txt", ".log"):
            text = path.read_text()
            assert str(tmp_path) not in text and sys.executable not in text, path
    assert (run_dir / run.LOG_FILE).read_text().startswith(f"Log path: {staging}/td3/Pendulum-v1_1\n")
    assert (run_dir / "Pendulum-v1" / "command.txt").read_text().startswith("python -m sb3_denoise_pg.zoo train --algo td3")
    marker = json.loads((run_dir / run.MARKER).read_text())
    assert marker["command"].startswith("python -m sb3_denoise_pg.zoo train --algo td3 --env Pendulum-v1 --seed 0")
    assert f"--log-folder {staging} " in marker["command"]
    assert (marker["version"], marker["commit"]) == ("9.9.9", "abc123+dirty")
    assert marker["finished_at"]
    assert marker["config"] == {"learning_starts": 200, "policy": "MlpPolicy"}


def test_committed_markers_record_version_commit_and_config():
    """Every committed run says what produced it (runs older than the commit field: where they were committed)."""
    from benchmarks import RESULTS_DIR

    markers = sorted(RESULTS_DIR.glob(f"**/{run.MARKER}")) + sorted(Path(__file__).parent.glob(f"fixtures/**/{run.MARKER}"))
    assert markers
    for path in markers:
        marker = json.loads(path.read_text())
        assert marker["version"] and marker["finished_at"], path
        assert marker["commit"] or marker["committed_in"], path
        assert isinstance(marker["config"], dict) and marker["config"], path
        assert not marker["command"].startswith("/"), path


def test_provenance_outside_a_checkout(tmp_path: Path):
    from benchmarks import git_commit, library_version, provenance

    assert git_commit(tmp_path) is None
    assert provenance(tmp_path) == {"version": library_version(), "commit": None}
    version_file = Path(importlib.util.find_spec("sb3_denoise_pg").origin).parent / "version.txt"
    assert library_version() == version_file.read_text().strip()
