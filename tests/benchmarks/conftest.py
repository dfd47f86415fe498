"""Fixtures of the benchmark tools' tests: committed runs of the smoke suite and a random-score cache."""

import json
from pathlib import Path

import pytest

from benchmarks.suites import get_suite

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_logs() -> Path:
    """Two seeds of td3 and sac on Pendulum-v1, made by `benchmarks.run` on the smoke suite through rl_zoo3.train."""
    return FIXTURES / "bench_logs"


@pytest.fixture
def random_scores(tmp_path: Path) -> Path:
    """A random-score cache covering the quick suite, so that no score is measured during the tests."""
    scores = json.loads((FIXTURES / "random_scores.json").read_text())
    scores.update({env_id: -100.0 for env_id in get_suite("quick").env_ids if env_id not in scores})
    path = tmp_path / "random_scores.json"
    path.write_text(json.dumps(scores))
    return path
