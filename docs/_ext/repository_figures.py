"""
A Sphinx check that every figure of the repository's results is shown in the documentation: at the end of a build,
each tracked ``.png`` under ``benchmarks/`` that no page embeds is reported as a warning (an error with ``-W``).
"""

import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def repository_figures(root: Path) -> set[Path]:
    """The figures under ``benchmarks/`` of the checkout (tracked by git; all of them where git is missing)."""
    try:
        listed = subprocess.run(["git", "ls-files", "benchmarks"], cwd=root, capture_output=True, text=True, check=True)
        paths = [root / line for line in listed.stdout.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        paths = list((root / "benchmarks").rglob("*"))
    return {path.resolve() for path in paths if path.suffix == ".png"}


def check_figures(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.srcdir).parent
    shown = {(Path(app.srcdir) / name).resolve() for name in app.env.images}
    for figure in sorted(repository_figures(root) - shown):
        logger.warning(f"{figure.relative_to(root)} is in the repository but on no page of the documentation")


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", check_figures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
