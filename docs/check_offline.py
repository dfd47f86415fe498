"""
Checks a built HTML site for anything loaded from the network: every ``<script src>``, ``<link href>`` (styles,
fonts), ``<img src>`` and CSS ``url()`` must point inside the site. Exit status 1 with the offending references.

    python docs/check_offline.py docs/_build/html
"""

import re
import sys
from pathlib import Path

REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
REFERENCES = (
    re.compile(r"<script[^>]*\bsrc=[\"']([^\"']+)", re.IGNORECASE),
    re.compile(r"<link[^>]*\bhref=[\"']([^\"']+)[^>]*>", re.IGNORECASE),
    re.compile(r"<img[^>]*\bsrc=[\"']([^\"']+)", re.IGNORECASE),
    re.compile(r"url\(\s*[\"']?([^\"')]+)", re.IGNORECASE),
)


def remote_references(site: Path) -> list[str]:
    """``file: reference`` for every reference of the site's HTML and CSS files to another host."""
    found = []
    for path in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):
        text = path.read_text(errors="replace")
        for pattern in REFERENCES:
            for match in pattern.finditer(text):
                tag, reference = match.group(0), match.group(1)
                # Links to other sites (canonical, source repository) are not loaded; stylesheets and icons are
                if tag.lower().startswith("<link") and not re.search(r"rel=[\"'](stylesheet|icon|preload)", tag, re.I):
                    continue
                if REMOTE.match(reference):
                    found.append(f"{path.relative_to(site)}: {reference}")
    return found


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "docs/_build/html")
    if not (site / "index.html").is_file():
        print(f"No built site in {site}")
        return 1
    found = remote_references(site)
    for line in found:
        print(f"loaded from the network: {line}")
    print(f"{len(found)} references to other hosts in {site}" if found else f"{site} loads nothing from the network")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
