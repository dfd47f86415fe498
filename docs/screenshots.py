"""
Looks at the built documentation in a real headless browser (Debian's ``chromium``): screenshots of the main pages at
1280 px to look at, and two checks on the pages as the browser renders them, offline: every equation is typeset by
MathJax (no raw LaTeX is left) and every embedded figure loads.

    python docs/screenshots.py [docs/_build/html] [docs/_build/screenshots]
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PAGES = ("index", "guide", "estimator", "gradient_truth", "results", "claims", "benchmarks")
WIDTH, HEIGHT = 1280, 6000


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("No chromium found: apt-get install chromium (Debian) to look at the pages")


def _run(arguments: list[str], profile: str) -> str:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
    # Nothing may come from the network: a proxy that leads nowhere makes any remote load fail
    command += ["--proxy-server=127.0.0.1:9", "--virtual-time-budget=15000", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180).stdout


def check_page(page: Path, profile: str) -> list[str]:
    """What is wrong with a page as rendered: raw LaTeX left, figures that did not load."""
    dom = _run(["--dump-dom", page.as_uri()], profile)
    problems = []
    raw = len(re.findall(r"\\\(|\\\[", dom))
    typeset = len(re.findall(r"<mjx-container", dom))
    if raw and not typeset:
        problems.append(f"{raw} equations left as raw LaTeX")
    for source in re.findall(r"<img[^>]*src=\"([^\"]+)\"", dom):
        if not (page.parent / source).is_file():
            problems.append(f"missing image {source}")
    return problems


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "docs/_build/html").resolve()
    output = Path(argv[1] if len(argv) > 1 else "docs/_build/screenshots")
    output.mkdir(parents=True, exist_ok=True)
    failed = False
    with tempfile.TemporaryDirectory() as profile:
        for name in PAGES:
            page = site / f"{name}.html"
            _run([f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={(output / name).resolve()}.png", page.as_uri()], profile)
            problems = check_page(page, profile)
            failed |= bool(problems)
            print(f"{name}: {'; '.join(problems) if problems else 'equations typeset, figures loaded'}")
    print(f"Screenshots ({WIDTH} px wide) in {output}: look at them")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
