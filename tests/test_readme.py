"""The README's numbers are the committed reports' numbers: the results table, the throughput ratio, the test counts."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESULTS = README[README.index("## Current results") : README.index("## Development")]


def _table_rows(text: str) -> list[list[str]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]
    return rows[2:]  # after the header and its rule


def _report_cells(path: Path) -> dict[str, list[str]]:
    """Env id -> the IQM cells of the report's first table (``missing`` as ``not run``, without the seed counts)."""
    text = path.read_text()
    first = text[text.index("| Env |") :].split("\n\n")[0]
    cells = {}
    for row in _table_rows(first):
        cells[row[0].split("/")[-1]] = [re.sub(r" \(\d+/\d+\)$", "", cell).replace("missing", "not run") for cell in row[1:]]
    return cells


def _reports() -> list[Path]:
    return [ROOT / link for link in re.findall(r"\((benchmarks/results/[^)]+/results\.md)\)", RESULTS)]


def test_every_row_of_the_results_table_is_in_a_linked_report():
    reports = [_report_cells(path) for path in _reports()]
    assert reports
    rows = _table_rows(RESULTS)
    assert len(rows) >= 5
    for row in rows:
        env = row[0].split(" (")[0]
        assert any(report.get(env, [None])[:3] == row[1:4] for report in reports), row


def test_the_ratio_column_pairs_the_reports_seeds():
    checked = set()
    for path in _reports():
        text = path.read_text()
        for row in _table_rows(RESULTS):
            env, ratio = row[0].split(" (")[0], row[4]
            per_seed = dict(re.findall(rf"\| \S*{re.escape(env)} \| (denoise_pg|td3) \| ([^|]+) \|", text))
            if not ratio or len(per_seed) < 2:
                continue
            means = {
                algo: sum(float(v) for v in re.findall(r"\d+: (-?[\d.]+)", seeds)) / 3 for algo, seeds in per_seed.items()
            }
            assert ratio == f"{means['denoise_pg'] / means['td3']:.2f}x", (env, ratio)
            checked.add(env)
    assert checked == {row[0].split(" (")[0] for row in _table_rows(RESULTS) if row[4]}


def test_the_throughput_the_readme_quotes_is_the_committed_table():
    data = json.loads((ROOT / "benchmarks/results/throughput/throughput.json").read_text())["results"]
    denoise_pg, td3 = data["denoise_pg"]["steps_per_s"], data["td3"]["steps_per_s"]
    assert f"at {denoise_pg / td3:.2f}x TD3's env-steps per second" in RESULTS
    assert f"the {denoise_pg:.1f} env-steps/s DenoisePG trains there with one torch thread, TD3 {td3:.1f}" in README


def test_the_test_counts_are_the_suites(request: pytest.FixtureRequest):
    items = request.session.items
    if {Path(str(item.fspath)).name for item in items} != {path.name for path in ROOT.glob("tests/**/test_*.py")}:
        pytest.skip("only the whole suite knows its size")
    quick = sum(1 for item in items if item.get_closest_marker("slow") is None)
    rows = {line.split("|")[1].strip(): line for line in README.splitlines() if line.startswith("| `make ")}
    assert f"({len(items)} tests)" in rows["`make test`"]
    assert f"({quick} tests)" in rows["`make quick-test`"]
