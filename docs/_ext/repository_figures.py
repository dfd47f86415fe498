"""
Sphinx checks of the repository's result figures, at the end of a build (warnings, errors with ``-W``):

- every tracked ``.png`` under ``benchmarks/`` is shown on some page;
- every figure's text is legible at the page's width: from the PNG's size and resolution, the smallest font size it
  records (``min_font_pt``, written by ``benchmarks.figures.save_figure``; a figure without one is taken to have
  ``ASSUMED_MIN_FONT_PT``) and the width the page gives it, the smallest text must render at ``LEGIBLE_PX`` pixels or
  more.
"""

import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

# The text column of a page in a 1280 px wide window: the theme's 300 px sidebar and the content's padding off
PAGE_WIDTH_PX = 928
# The smallest text height (px) a reader takes in without zooming
LEGIBLE_PX = 9.0
# The smallest font size any of the project's plotting code sets, for a figure that records none
ASSUMED_MIN_FONT_PT = 7.0
MIN_FONT_KEY = b"min_font_pt"


def png_facts(path: Path) -> tuple[int, float, float | None]:
    """The PNG's width (px), resolution (dpi; 72 when it records none) and recorded smallest font size (points)."""
    data = path.read_bytes()
    width, dpi, font = struct.unpack(">I", data[16:20])[0], 72.0, None
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"pHYs" and body[8] == 1:  # pixels per metre
            dpi = struct.unpack(">I", body[:4])[0] * 0.0254
        elif kind == b"tEXt" and body.split(b"\0", 1)[0] == MIN_FONT_KEY:
            font = float(body.split(b"\0", 1)[1])
        elif kind == b"zTXt" and body.split(b"\0", 1)[0] == MIN_FONT_KEY:
            font = float(zlib.decompress(body.split(b"\0", 1)[1][1:]))
        offset += 12 + length
    return width, dpi, font


def displayed_width(png_width: int, width_option: str | None) -> float:
    """The width (px) the page shows a figure at: its ``:width:`` option, else its own width up to the column's."""
    if width_option:
        number = float(re.sub(r"[^0-9.]", "", width_option))
        return PAGE_WIDTH_PX * number / 100 if width_option.endswith("%") else number
    return min(png_width, PAGE_WIDTH_PX)


def smallest_text_px(path: Path, width_option: str | None) -> float:
    """The height (px) at which the figure's smallest text is shown."""
    png_width, dpi, font = png_facts(path)
    font = ASSUMED_MIN_FONT_PT if font is None else font
    return font / 72 * dpi * displayed_width(png_width, width_option) / png_width


def repository_figures(root: Path) -> set[Path]:
    """The figures under ``benchmarks/`` of the checkout (tracked by git; all of them where git is missing)."""
    try:
        listed = subprocess.run(["git", "ls-files", "benchmarks"], cwd=root, capture_output=True, text=True, check=True)
        paths = [root / line for line in listed.stdout.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        paths = list((root / "benchmarks").rglob("*"))
    return {path.resolve() for path in paths if path.suffix == ".png"}


def check_figures(app: Any, exception: Exception | None) -> None:
    # Sphinx is imported here, so that the functions above can be used (and tested) without it
    from docutils import nodes
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.srcdir).parent
    shown = {(Path(app.srcdir) / name).resolve() for name in app.env.images}
    for figure in sorted(repository_figures(root) - shown):
        logger.warning(f"{figure.relative_to(root)} is in the repository but on no page of the documentation")
    for docname in sorted(app.env.found_docs):
        for image in app.env.get_doctree(docname).findall(nodes.image):
            path = (Path(app.srcdir) / image["uri"]).resolve()
            if path.suffix != ".png" or not path.is_file():
                continue
            size = smallest_text_px(path, image.get("width"))
            if size < LEGIBLE_PX:
                logger.warning(
                    f"{docname}: {path.relative_to(root)}: its smallest text shows at {size:.1f} px on a 1280 px window "
                    f"(below {LEGIBLE_PX:g} px): fewer panels a row, larger fonts, or a narrower figure"
                )


def setup(app: Any) -> dict:
    app.connect("build-finished", check_figures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
