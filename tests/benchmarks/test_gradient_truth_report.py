"""The gradient-truth benchmark's report: rebuilt from committed probes, and recording no path of this machine."""

import shutil
from pathlib import Path

from benchmarks import REPO_ROOT
from benchmarks.gradient_truth import PROBES, _recorded_argument, main

COMMITTED = REPO_ROOT / "benchmarks" / "results" / "gradient-truth" / PROBES


def test_recorded_arguments_name_no_folder_of_this_machine(tmp_path: Path):
    assert _recorded_argument("--report-only") == "--report-only"
    assert _recorded_argument(str(COMMITTED)) == "benchmarks/results/gradient-truth/probes"
    assert _recorded_argument(str(tmp_path)) == "DIR"


def test_the_report_is_rebuilt_from_the_probes_found(tmp_path: Path):
    probes = sorted(COMMITTED.glob("*Pendulum-v1-seed0-20000.json"))
    assert len(probes) >= 2
    (tmp_path / PROBES).mkdir()
    for probe in probes:
        shutil.copy(probe, tmp_path / PROBES)
    assert main(["--report-only", "--no-figure", "--output-dir", str(tmp_path)]) == 0
    report = (tmp_path / "results.md").read_text()
    assert f"Probes of {len(probes)} checkpoints" in report
    assert "this report: `python -m benchmarks.gradient_truth --report-only --no-figure --output-dir DIR`" in report
    assert str(tmp_path) not in report
    # One row per (env, checkpoint, algo) in each signal table, every probe's rows in the CSV
    assert "| Pendulum-v1 | 20000 | denoise_pg |" in report
    rows = (tmp_path / "rows.csv").read_text().splitlines()
    assert len(rows) > len(probes)
