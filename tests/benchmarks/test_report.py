"""The suite report, from committed fixture runs."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report


def test_load_runs_reads_zoo_layout(fixture_logs: Path):
    runs = report.load_runs(fixture_logs)
    assert sorted((run.algo, run.seed) for run in runs) == [("sac", 0), ("sac", 1), ("td3", 0), ("td3", 1)]
    evaluations = np.load(fixture_logs / "td3" / "Pendulum-v1_2" / "evaluations.npz")
    # Final return: mean of the last evaluation's episodes
    assert report.final_scores(runs, "Pendulum-v1", "td3")[1] == pytest.approx(evaluations["results"][-1].mean())


def test_report_on_partial_suite(tmp_path: Path, random_scores: Path, fixture_logs: Path):
    output_dir = tmp_path / "quick"
    output_dir.mkdir()
    # A throughput.json left in a suite's folder is not the report's business: it links to the one table
    (output_dir / "throughput.json").write_text(json.dumps({"results": {"td3": {"steps_per_s": 80.0, "runs": [80.0]}}}))
    markdown = report.write_report("quick", fixture_logs, output_dir, random_scores, reps=200)
    assert (output_dir / "results.md").read_text() == markdown
    assert (output_dir / report.CURVES).stat().st_size > 0
    # Missing algorithms and envs of the suite are shown as such
    assert "missing (0/3)" in markdown
    assert "| MountainCarContinuous-v0 | missing (0/3) | missing (0/3) | missing (0/3) |" in markdown
    assert "(2/3)" in markdown
    # TD3 normalised by its own mean: IQM of 2 seeds is their mean, hence exactly 1
    assert "| td3 | 1.00 |" in markdown
    assert "80.0" not in markdown and "benchmarks/results/throughput/throughput.md" in markdown
    # Per seed, and paired with TD3's run of the same seed
    td3 = report.final_scores(report.load_runs(fixture_logs), "Pendulum-v1", "td3")
    sac = report.final_scores(report.load_runs(fixture_logs), "Pendulum-v1", "sac")
    assert f"| Pendulum-v1 | td3 | 0: {td3[0]:.1f}, 1: {td3[1]:.1f} |  |" in markdown
    ahead = sum(sac > td3)
    assert (
        f"| Pendulum-v1 | sac | 0: {sac[0]:.1f}, 1: {sac[1]:.1f} | {np.mean(sac - td3):+.1f} ({ahead}/2 seeds ahead) |"
        in markdown
    )


def test_report_links_the_throughput_table_relatively_inside_the_repository():
    suite_dir = report.RESULTS_DIR / "quick"
    assert report._link(report.REPO_ROOT / report.THROUGHPUT_TABLE, suite_dir) == "../throughput/throughput.md"


def test_curves_draw_only_envs_with_finished_runs(tmp_path: Path, fixture_logs: Path, monkeypatch: pytest.MonkeyPatch):
    drawn = []
    grid = report.grid

    def recording_grid(*args, **kwargs):
        fig, panels = grid(*args, **kwargs)
        drawn.append(panels)
        return fig, panels

    monkeypatch.setattr(report, "grid", recording_grid)
    runs = report.load_runs(fixture_logs)
    report.plot_curves(runs, ["HalfCheetah-v5", "Pendulum-v1", "Hopper-v5"], ["denoise_pg", "td3", "sac"], tmp_path / "a.png")
    (panels,) = drawn
    assert len(panels) == 1 and panels[0].get_title().startswith("Pendulum-v1 (")
    # No finished run at all, or only of algorithms that are not drawn: one blank panel that says so
    for algos in (["td3"], ["denoise_pg"]):
        drawn.clear()
        report.plot_curves(runs if algos == ["denoise_pg"] else [], ["Pendulum-v1"], algos, tmp_path / "b.png")
        ((blank,),) = drawn
        assert not blank.axison and not blank.lines and (tmp_path / "b.png").stat().st_size > 0


def test_iqm_ci_bootstrap():
    scores = np.arange(12.0).reshape(4, 3)
    iqm, low, high = report.iqm_ci(scores, reps=500)
    assert iqm == pytest.approx(5.5)
    assert low <= iqm <= high
    assert report.iqm_ci(np.full((3, 1), 2.0), reps=100) == pytest.approx((2.0, 2.0, 2.0))
