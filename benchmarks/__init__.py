"""Benchmark harness of DenoisePG: suites, a resumable runner over the zoo, reports and a throughput measurement."""

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """
    :param headers: Column names
    :param rows: Rows of cells, converted with ``str``
    :return: A GitHub-flavoured markdown table (without trailing newline)
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def library_version() -> str | None:
    """
    :return: The version of the ``sb3_denoise_pg`` that this interpreter imports (its ``version.txt``, read without
        importing the package and torch), ``None`` if it is not importable
    """
    spec = importlib.util.find_spec("sb3_denoise_pg")
    if spec is None or spec.origin is None:
        return None
    version_file = Path(spec.origin).parent / "version.txt"
    return version_file.read_text().strip() if version_file.is_file() else None


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """
    :param repo: A folder of the checkout
    :return: ``git rev-parse HEAD`` of the checkout, with ``+dirty`` appended when a tracked file differs from it
        (untracked files do not count); ``$BENCHMARK_COMMIT`` instead when it is set (a copy of the checkout on
        another machine, whose own git state may be stale or absent, is told the commit it is); ``None`` if neither
        is known
    """
    if os.environ.get("BENCHMARK_COMMIT"):
        return os.environ["BENCHMARK_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def provenance(repo: Path = REPO_ROOT) -> dict[str, str | None]:
    """
    What produced a result, recorded by every benchmark tool in the same two fields: ``version``, the library's
    (:func:`library_version`), and ``commit``, the checkout's (:func:`git_commit`). Call it when the measurement
    starts, so that the commit is the code that ran.

    :param repo: A folder of the checkout
    :return: ``{"version": ..., "commit": ...}``
    """
    return {"version": library_version(), "commit": git_commit(repo)}


def started(repo: Path = REPO_ROOT) -> dict[str, str | None]:
    """
    :func:`provenance` and the UTC time (``date``), taken as a measurement starts.

    :param repo: A folder of the checkout
    """
    return {**provenance(repo), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def relative_path(path: Path | str, root: Path = REPO_ROOT) -> str:
    """
    :param path: A path
    :param root: The folder to express it from
    :return: ``path`` relative to ``root`` if it lies inside it, else ``path`` unchanged (as a string)
    """
    absolute = Path(path).resolve()
    return str(absolute.relative_to(root.resolve())) if absolute.is_relative_to(root.resolve()) else str(path)


def portable_text(text: str, root: Path = REPO_ROOT) -> str:
    """
    ``text`` without this machine's absolute paths: the interpreter becomes ``python``, paths inside the checkout
    become relative to its root, installed packages' files relative to their ``site-packages`` folder.

    :param text: A recorded command, log or settings file
    :param root: The checkout's root
    :return: The text with these prefixes replaced
    """
    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Longest first, each as a whole path: the interpreter, installed packages, the checkout
    prefixes = [(sys.executable, "python"), *((str(Path(folder)), "") for folder in folders), (str(root.resolve()), "")]
    for prefix, replacement in sorted(prefixes, key=lambda item: -len(item[0])):
        # A path inside the prefix loses it with its slash; the prefix alone becomes the replacement (or ".")
        text = re.sub(re.escape(prefix) + r"/", replacement + "/" if replacement else "", text)
        text = re.sub(re.escape(prefix) + r"(?![\w./-])", replacement or ".", text)
    return text


class _ZooConfigLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads the zoo's ``OrderedDict`` dumps (its ``config.yml`` and ``args.yml``)."""


_ZooConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict",
    lambda loader, node: dict(loader.construct_sequence(node, deep=True)[0]),
)


def load_zoo_config(path: Path) -> Any:
    """
    :param path: A ``config.yml`` (or ``args.yml``) written by the zoo
    :return: Its content, the zoo's ordered mapping as a ``dict`` in the file's order
    """
    return yaml.load(path.read_text(), Loader=_ZooConfigLoader)
