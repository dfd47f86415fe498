"""
The result figures' shared layout and how they are saved, so that every figure reads at the documentation's page
width: panels in a grid of at most three columns, one legend for the figure where the panels share their lines, env
steps in thousands, and the smallest font size recorded in the PNG (``min_font_pt``), from which the documentation's
build checks that no text renders below a legible size (``docs/_ext/repository_figures.py``).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The PNG text key of the smallest font size in a figure, in points
MIN_FONT_KEY = "min_font_pt"
# The panel size (inches) and resolution of the result figures: at three panels a row, 1215 px wide, shown at 928 px
PANEL_SIZE = (4.5, 3.2)
DPI = 90
MAX_COLUMNS = 3
# Font sizes (points): the smallest text of a figure is its legend's and ticks'
FONT_SIZES = {"font.size": 11, "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10}


def grid(n_panels: int, max_columns: int = MAX_COLUMNS, panel_size: tuple[float, float] = PANEL_SIZE) -> tuple[Any, list]:
    """
    A figure of ``n_panels`` axes in rows of at most ``max_columns``, the unused cells hidden.

    :return: The figure and its panels, in reading order
    """
    import matplotlib.pyplot as plt

    columns = max(1, min(max_columns, n_panels))
    rows = -(-n_panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows), squeeze=False)
    panels = list(axes.flat)
    for ax in panels[n_panels:]:
        ax.set_visible(False)
    return fig, panels[:n_panels]


def style() -> Any:
    """A context in which a figure is made with the result figures' font sizes (``with style(): ...``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.rc_context(FONT_SIZES)


def first_in_row(panels: Sequence[Any]) -> list[Any]:
    """The panels that start a row of their grid (where a shared y label goes)."""
    return [ax for ax in panels if ax.get_subplotspec().colspan.start == 0]


def steps_in_thousands(ax: Any) -> None:
    """x ticks in thousands of env steps (``20k``), at most five, so that they never run together."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:g}k"))


def shared_legend(fig: Any, panels: Sequence[Any]) -> None:
    """One legend for the figure, below the panels, with every line any panel labelled (each label once)."""
    handles: dict[str, Any] = {}
    for ax in panels:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        columns = min(len(handles), 4)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=columns, fontsize=FONT_SIZES["legend.fontsize"])
        rows = -(-len(handles) // columns)
        # Room at the bottom for the legend's rows (about 0.3 inch each, and its frame)
        fig.tight_layout(rect=(0, (0.15 + 0.3 * rows) / fig.get_size_inches()[1], 1, 1))
    else:
        fig.tight_layout()


def min_font_size(fig: Any) -> float:
    """The smallest font size (points) of the figure's visible, non-empty text."""
    from matplotlib.text import Text

    sizes = [
        text.get_fontsize()
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and (text.axes is None or text.axes.get_visible())
    ]
    return min(sizes) if sizes else 0.0


def save_figure(fig: Any, path: Path, dpi: int = DPI) -> None:
    """Save ``fig`` as a PNG with its smallest font size recorded, and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi, metadata={MIN_FONT_KEY: f"{min_font_size(fig):g}"})
    plt.close(fig)
