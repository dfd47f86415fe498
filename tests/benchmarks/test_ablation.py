"""The ablation tool: variants, resumability and per-study settings."""

import json
from pathlib import Path

import pytest

from benchmarks import ablation


def test_ablation_runs_variants_and_resumes(tmp_path: Path):
    args = ["--variants", "base", "td3", "2 noise draws", "--seeds", "1", "--steps", "300", "--learning-starts", "100"]
    args += ["--eval-freq", "100", "--eval-episodes", "1", "--net-arch", "32", "32", "--jobs", "1", "--output", str(tmp_path)]
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


@pytest.mark.parametrize("study_name", list(ablation.STUDIES))
def test_every_committed_variant_still_builds(study_name):
    """The committed runs stay reproducible: each variant of each study constructs its model with today's code."""
    study = ablation.STUDIES[study_name]
    for variant in study.variants:
        model = ablation.make_model(study, variant, seed=0, learning_starts=study.learning_starts, net_arch=[8])
        if variant != "td3":
            overrides = {**study.base, **study.variants[variant]}
            for name, value in overrides.items():
                assert getattr(model, name) == (tuple(value) if isinstance(value, list) else value), (variant, name)
