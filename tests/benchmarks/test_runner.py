"""The benchmark harness: report from fixture runs, the runner's plan and resumability, and a tiny end-to-end run."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import ablation, report, run, throughput
from benchmarks.suites import get_suite, select

FIXTURES = Path(__file__).parent / "fixtures"
# Two seeds of td3 and sac on Pendulum-v1, made by `benchmarks.run` on the smoke suite through rl_zoo3.train
FIXTURE_LOGS = FIXTURES / "bench_logs"


@pytest.fixture
def random_scores(tmp_path: Path) -> Path:
    """A random-score cache covering the quick suite, so that no score is measured during the tests."""
    scores = json.loads((FIXTURES / "random_scores.json").read_text())
    scores.update({env_id: -100.0 for env_id in get_suite("quick").env_ids if env_id not in scores})
    path = tmp_path / "random_scores.json"
    path.write_text(json.dumps(scores))
    return path


def test_load_runs_reads_zoo_layout():
    runs = report.load_runs(FIXTURE_LOGS)
    assert sorted((run.algo, run.seed) for run in runs) == [("sac", 0), ("sac", 1), ("td3", 0), ("td3", 1)]
    evaluations = np.load(FIXTURE_LOGS / "td3" / "Pendulum-v1_2" / "evaluations.npz")
    # Final return: mean of the last evaluation's episodes
    assert report.final_scores(runs, "Pendulum-v1", "td3")[1] == pytest.approx(evaluations["results"][-1].mean())


def test_report_on_partial_suite(tmp_path: Path, random_scores: Path):
    output_dir = tmp_path / "quick"
    output_dir.mkdir()
    throughput = {
        "env_id": "Pendulum-v1",
        "steps": 10,
        "repeats": 2,
        "results": {"td3": {"steps_per_s": 80.0, "runs": [79.0, 81.0]}, "denoise_pg": {"steps_per_s": 40.0, "runs": [40.0]}},
    }
    (output_dir / "throughput.json").write_text(json.dumps(throughput))
    markdown = report.write_report("quick", FIXTURE_LOGS, output_dir, random_scores, reps=200)
    assert (output_dir / "results.md").read_text() == markdown
    assert (output_dir / report.CURVES).stat().st_size > 0
    # Missing algorithms and envs of the suite are shown as such
    assert "missing (0/3)" in markdown
    assert "| MountainCarContinuous-v0 | missing (0/3) | missing (0/3) | missing (0/3) |" in markdown
    assert "(2/3)" in markdown
    # TD3 normalised by its own mean: IQM of 2 seeds is their mean, hence exactly 1
    assert "| td3 | 1.00 |" in markdown
    assert "| denoise_pg | 40.0 | 40.0 | 0.50 |" in markdown
    # Per seed, and paired with TD3's run of the same seed
    td3 = report.final_scores(report.load_runs(FIXTURE_LOGS), "Pendulum-v1", "td3")
    sac = report.final_scores(report.load_runs(FIXTURE_LOGS), "Pendulum-v1", "sac")
    assert f"| Pendulum-v1 | td3 | 0: {td3[0]:.1f}, 1: {td3[1]:.1f} |  |" in markdown
    ahead = sum(sac > td3)
    assert (
        f"| Pendulum-v1 | sac | 0: {sac[0]:.1f}, 1: {sac[1]:.1f} | {np.mean(sac - td3):+.1f} ({ahead}/2 seeds ahead) |"
        in markdown
    )


def test_iqm_ci_bootstrap():
    scores = np.arange(12.0).reshape(4, 3)
    iqm, low, high = report.iqm_ci(scores, reps=500)
    assert iqm == pytest.approx(5.5)
    assert low <= iqm <= high
    assert report.iqm_ci(np.full((3, 1), 2.0), reps=100) == pytest.approx((2.0, 2.0, 2.0))


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
    """Stands for the zoo's training subprocess: writes the zoo's layout into --log-folder."""

    def __init__(self, returncode: int = 0):
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], log_file: Path) -> int:
        self.commands.append(command)
        log_file.write_text("training\n")
        log_folder = Path(command[command.index("--log-folder") + 1])
        algo, env = command[command.index("--algo") + 1], command[command.index("--env") + 1]
        run_dir = log_folder / algo / f"{env}_1"
        (run_dir / env).mkdir(parents=True)
        np.savez(run_dir / "evaluations.npz", timesteps=[200], results=[[-1.0, -2.0]], ep_lengths=[[200, 200]])
        return self.returncode


def test_runner_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    suite = select(get_suite("smoke"), algos=["td3"], n_seeds=3)
    finished, unfinished, never_started = run.plan_runs(suite)
    finished.run_dir(tmp_path).mkdir(parents=True)
    (finished.run_dir(tmp_path) / run.MARKER).write_text("{}")
    # A crashed attempt: its half-written run folder and staging folder must go
    (unfinished.run_dir(tmp_path) / "junk").mkdir(parents=True)
    (unfinished.staging_dir(tmp_path) / "td3" / "Pendulum-v1_1").mkdir(parents=True)
    fake_zoo = FakeZoo()
    monkeypatch.setattr(run, "launch", fake_zoo)

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
    monkeypatch.setattr(run, "launch", FakeZoo(returncode=1))
    suite = select(get_suite("smoke"), algos=["td3"])
    (spec,) = run.plan_runs(suite)
    assert run.run_suite(suite, tmp_path) == [spec]
    assert not spec.run_dir(tmp_path).exists()
    assert (spec.staging_dir(tmp_path) / run.LOG_FILE).is_file()


def test_dry_run_launches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setattr(run, "launch", None)
    argv = ["--suite", "quick", "--seeds", "1", "--log-root", str(tmp_path), "--dry-run", "--", "--verbose", "0"]
    assert run.main(argv) == 0
    output = capsys.readouterr().out
    assert "15 to run" in output  # 5 envs x 3 algorithms x 1 seed
    assert "--env sb3_denoise_pg/NoisyPendulum-v1 --seed 0 -n 20000" in output
    assert output.rstrip().endswith("--verbose 0")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("sb3_denoise_pg.zoo") is None, reason="needs the project's zoo entry point")
def test_smoke_suite_end_to_end(tmp_path: Path, random_scores: Path):
    assert run.main(["--suite", "smoke", "--jobs", "2", "--log-root", str(tmp_path / "logs")]) == 0
    markdown = report.write_report("smoke", tmp_path / "logs", tmp_path, random_scores, reps=100)
    assert "missing" not in markdown


def test_ablation_runs_variants_and_resumes(tmp_path: Path):
    args = ["--variants", "base", "td3", "2 noise draws", "--seeds", "1", "--steps", "300", "--learning-starts", "100"]
    args += ["--eval-freq", "100", "--eval-episodes", "1", "--jobs", "1", "--output", str(tmp_path)]
    ablation.main(args)
    run = json.loads((tmp_path / "runs" / "2_noise_draws_0.json").read_text())
    assert run["overrides"] == {"n_noise_samples": 2} and run["timesteps"] == [100, 200, 300]
    table = (tmp_path / "results.md").read_text()
    assert "| td3 | TD3 |" in table and (tmp_path / "learning_curves.png").is_file()
    # Finished runs are read back, not redone
    mtime = (tmp_path / "runs" / "td3_0.json").stat().st_mtime
    ablation.main(args)
    assert (tmp_path / "runs" / "td3_0.json").stat().st_mtime == mtime


def test_ablation_studies_take_their_own_settings_and_refuse_unknown_variants(tmp_path: Path, monkeypatch):
    seen = {}

    def fake_run_plan(plan, worker, path_of, jobs, describe):
        seen["plan"], seen["args"] = plan, worker.args[0]
        return []

    monkeypatch.setattr(ablation, "run_plan", fake_run_plan)
    monkeypatch.setattr(ablation, "report", lambda *args: "")
    ablation.main(["--study", "halfcheetah", "--seeds", "2", "--output", str(tmp_path)])
    study = ablation.STUDIES["halfcheetah"]
    assert seen["args"].steps == study.steps == 30_000 and seen["args"].net_arch == [400, 300]
    assert seen["plan"] == [(variant, seed) for seed in range(2) for variant in study.variants]
    assert ablation.output_dir("halfcheetah").name == "ablation-halfcheetah"
    assert ablation.output_dir("pendulum").name == "ablation"  # where the committed Pendulum runs live
    with pytest.raises(SystemExit):
        ablation.main(["--study", "halfcheetah", "--variants", "sigma 0.05", "--output", str(tmp_path)])
    # Every study's panels show only its own variants, and every variant somewhere
    for study in ablation.STUDIES.values():
        shown = {variant for panel in study.panels.values() for variant in panel}
        assert shown == set(study.variants)


def test_compiled_variant_compiles_critics_and_denoiser_but_not_the_actor():
    import torch as th

    from sb3_denoise_pg import DenoisePG

    model = DenoisePG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu")
    throughput.compile_networks(model.policy)  # lazy: nothing is compiled before a forward pass
    compiled = th._dynamo.eval_frame.OptimizedModule
    assert all(isinstance(q_net, compiled) for q_net in model.critic.q_networks + model.critic_target.q_networks)
    assert isinstance(model.denoiser.noise_net, compiled)
    assert not isinstance(model.actor.mu, compiled)
