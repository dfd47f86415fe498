"""Result figures record their smallest font, and the documentation's build refuses one it would show illegibly."""

import importlib.util
from pathlib import Path

import pytest

from benchmarks import figures

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("repository_figures", ROOT / "docs" / "_ext" / "repository_figures.py")


@pytest.fixture(scope="module")
def check():
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figure(path: Path, n_panels: int, legend_pt: float, width_in: float) -> None:
    import matplotlib.pyplot as plt

    with figures.style():
        fig, panels = figures.grid(n_panels, max_columns=n_panels, panel_size=(width_in / n_panels, 3))
        for ax in panels:
            ax.plot([0, 10_000], [0, 1], label="a line")
            figures.steps_in_thousands(ax)
        panels[0].legend(fontsize=legend_pt)
        figures.save_figure(fig, path)
    assert fig.number not in plt.get_fignums()  # saved and closed


def test_a_saved_figure_records_its_smallest_font(tmp_path, check):
    _figure(tmp_path / "f.png", 2, 7.5, 8.0)
    width, dpi, font = check.png_facts(tmp_path / "f.png")
    assert (width, round(dpi), font) == (8 * figures.DPI, figures.DPI, 7.5)


def test_a_wide_strip_of_panels_is_illegible_and_a_grid_is_not(tmp_path, check):
    _figure(tmp_path / "strip.png", 5, 7.0, 21.0)  # the gradient-truth figure before it became a grid
    assert check.smallest_text_px(tmp_path / "strip.png", None) < check.LEGIBLE_PX
    _figure(tmp_path / "grid.png", 3, 10.0, 13.5)
    assert check.smallest_text_px(tmp_path / "grid.png", None) >= check.LEGIBLE_PX
    # Stretched to the page, a small figure's text grows; a width option is honoured
    assert check.smallest_text_px(tmp_path / "grid.png", "50%") < check.smallest_text_px(tmp_path / "grid.png", None)


def test_every_committed_result_figure_reads_at_page_width(check):
    for path in sorted((ROOT / "benchmarks").rglob("*.png")):
        assert check.smallest_text_px(path, None) >= check.LEGIBLE_PX, path
