"""Benchmark harness of DenoisePG: suites, a resumable runner over the zoo, reports and a throughput measurement."""

from collections.abc import Sequence
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """
    :param headers: Column names
    :param rows: Rows of cells, converted with ``str``
    :return: A GitHub-flavoured markdown table (without trailing newline)
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
