"""Writing a figure to files: the house style and a save that is byte-identical when re-run.

Why a module of its own: the main job's figure workers (carousel.figure_pool) only save figures the
main process built, so they import this (matplotlib alone), not analysis.plots with Polars, networkx
and the analysis it draws. Determinism: the PDF/SVG/PNG backends embed creation dates and random ids
unless told otherwise, so every save strips the date metadata and SVG ids use a fixed hash salt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.layout_engine import PlaceHolderLayoutEngine  # noqa: E402

STYLE: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["DejaVu Serif"],
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.0,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "standard",
    "svg.hashsalt": "carousel",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "path.simplify": False,
}
FORMATS = ("pdf", "svg", "png")
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "carousel"},
    "svg": {"Date": None, "Creator": "carousel"},
    "png": {"Software": None},
}


def style() -> Any:
    """The house style as an rc context: drawing and saving both run inside it."""
    return plt.rc_context(STYLE)  # type: ignore[arg-type]


def save(fig: Figure, folder: Path, name: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``name.<fmt>`` for each of ``formats`` (default PDF, SVG, PNG) without timestamps; returns
    the paths. Used in the main process or, figure by figure, in a worker (carousel.figure_pool): the
    bytes depend only on the figure and the format."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    # ``fig.tight_layout()`` leaves a placeholder layout engine behind, and savefig draws a figure that
    # has a layout engine once more before every format (a dry run so that the engine can lay it out;
    # the placeholder lays out nothing): half the cost of saving, for the same bytes. Without an engine
    # savefig draws once per format.
    if isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        fig.set_layout_engine(None)
    # The style (svg.hashsalt in particular) must be active when saving, not only when drawing.
    with style():
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, metadata=_METADATA[fmt])
            out.append(path)
    plt.close(fig)
    return out
