"""Figures saved by worker processes (carousel.figure_pool) are the bytes the main process writes.

Why: ``carousel run`` hands each figure's builder and data to a worker that draws and saves it while
the job goes on; a reader comparing a paper's figure with a re-run must
get the same file whichever route wrote it.
The whole job's 33 figure files are compared with the golden (serially written) copies by
tests/outputs/test_golden.py; here a few figures are compared directly, and the option is checked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import network, plots
from carousel.db import connect
from carousel.figure_pool import FigurePool, parse_formats
from core.errors import InputError
from ledger import api
from ledger.load import import_file

DEALS = Path(__file__).resolve().parents[2] / "data" / "events" / "deals.csv"


def _figures(tmp: Path) -> dict[str, object]:
    """Three figures of different kinds (bands and markers, a t band, a drawn graph with labels), built
    in this process from the data :func:`_figure_data` hands the workers."""
    return {name: build(*args) for name, (build, args) in _figure_data(tmp).items()}  # type: ignore[operator]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _figure_data(tmp: Path) -> dict[str, tuple[object, tuple[object, ...]]]:
    """The same three figures as builders and their data, as the main job hands them to draw()."""
    days = np.arange(-5, 11)
    rng = np.random.default_rng(20261201)
    ar = rng.normal(0.002, 0.01, days.size)
    path = pl.DataFrame({"rel_day": days, "car": np.cumsum(ar), "se": 0.01 * np.sqrt(np.arange(1, days.size + 1))})
    caar = path.rename({"car": "caar"}).with_columns(pl.Series("n", np.full(days.size, 40)))
    with connect(tmp / "d.duckdb") as con:
        import_file(con, DEALS)
        fa = network.analyse(api.flows(con))
    return {
        "car_path": (plots.car_path_figure, (path, "CAR, a test firm-event [é, ü]")),
        "caar": (plots.caar_figure, (caar,)),
        "flow_network": (plots.network_figure, (fa, {"openai": "OpenAI", "oracle": "Oracle"})),
    }


def test_figures_drawn_in_workers_are_the_serial_bytes(tmp_path: Path) -> None:
    """draw(): the worker builds the figure from its data; the files are those of building and saving
    it in the main process, with or without workers, and the same again on a re-run (no timestamps,
    fixed SVG ids)."""
    from analysis.figure_files import FORMATS, save

    for name, fig in _figures(tmp_path).items():
        save(fig, tmp_path / "serial", name, FORMATS)  # type: ignore[arg-type]
    with FigurePool(workers=0) as here:
        for name, (build, args) in _figure_data(tmp_path).items():
            here.draw(build, args, tmp_path / "here", name)  # type: ignore[arg-type]
    with FigurePool(workers=2) as pool:
        written = []
        for name, (build, args) in _figure_data(tmp_path).items():
            written += pool.draw(build, args, tmp_path / "drawn", name)  # type: ignore[arg-type]
        pool.wait()
    a = _digests(tmp_path / "serial")
    assert len(a) == 9  # 3 figures x pdf, svg, png
    assert _digests(tmp_path / "here") == a
    assert _digests(tmp_path / "drawn") == a
    assert sorted(p.name for p in written) == sorted(a)
    for name, fig in _figures(tmp_path).items():
        save(fig, tmp_path / "again", name, FORMATS)  # type: ignore[arg-type]
    assert _digests(tmp_path / "again") == a


def test_call_in_a_worker_gives_the_in_process_result(tmp_path: Path) -> None:
    """call(): the report's network layout computed by a worker is the one computed here, to the bit,
    and the report's SVG drawn from it is the SVG the report draws computing the layout itself."""
    from analysis.report import flow_svg

    with connect(tmp_path / "l.duckdb") as con:
        import_file(con, DEALS)
        fa = network.analyse(api.flows(con))
    with FigurePool(workers=0) as here:
        a = here.call(plots._layout, fa.graph)()
    with FigurePool(workers=1) as pool:
        b = pool.call(plots._layout, fa.graph)()
    assert sorted(a) == sorted(b) == sorted(fa.graph.nodes) and len(a) > 5
    for node in a:
        np.testing.assert_array_equal(a[node], b[node])
    car = pl.DataFrame(schema={"deal_id": pl.String, "ticker": pl.String, "window": pl.String, "car": pl.Float64})
    svg = flow_svg(fa, {}, car, "[-1,+1]", pos=b)
    assert svg.startswith("<svg") or "<svg" in svg
    assert svg == flow_svg(fa, {}, car, "[-1,+1]")


def test_all_formats_are_the_figure_writers(tmp_path: Path) -> None:
    """The pool spells the formats out (so --formats needs no matplotlib): they are figure_files'."""
    from analysis.figure_files import FORMATS
    from carousel.figure_pool import ALL_FORMATS

    assert ALL_FORMATS == FORMATS


def test_formats_choose_the_files_and_png_is_always_written(tmp_path: Path) -> None:
    build, args = _figure_data(tmp_path)["caar"]
    with FigurePool(parse_formats("pdf"), workers=1) as pool:
        paths = pool.draw(build, args, tmp_path / "f", "caar")  # type: ignore[arg-type]
        pool.wait()
    assert [p.name for p in paths] == ["caar.pdf", "caar.png"]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["caar.pdf", "caar.png"]
    assert (tmp_path / "f" / "caar.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "f" / "caar.png").read_bytes().startswith(b"\x89PNG")


def test_parse_formats() -> None:
    assert parse_formats(None) == ("pdf", "svg", "png")
    assert parse_formats("png") == ("png",)
    assert parse_formats(" SVG ,png,pdf") == ("pdf", "svg", "png")
    with pytest.raises(InputError, match="unknown figure format 'jpg'") as err:
        parse_formats("png,jpg")
    assert err.value.field == "--formats"
    with pytest.raises(InputError, match="empty entry"):
        parse_formats("png,")


def _broken_figure() -> object:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title(r"$\notacommand{x}$")
    return fig


def test_a_drawing_error_in_a_worker_reaches_the_caller(tmp_path: Path) -> None:
    """A figure that fails while being drawn (bad mathtext, parsed only at draw time) fails the job in
    the worker as it would in the main process: the error is raised by wait(), not lost."""
    with FigurePool(workers=1) as pool:
        pool.draw(_broken_figure, (), tmp_path, "broken")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="notacommand"):
            pool.wait()


def test_the_main_jobs_modules_import_no_matplotlib_or_scipy_stats() -> None:
    """The main job hands figures to workers as builders and data, so importing what its steps import
    (the figure builders' modules included) loads neither matplotlib (~0.6 s) nor scipy.stats (~0.7 s)."""
    import subprocess
    import sys

    modules = ["carousel.mainjob", "carousel.figure_pool", "analysis.plots", "analysis.figure_data",
               "analysis.activity_figures", "analysis.dollar_outputs", "analysis.research_sections",
               "analysis.timeline_series", "analysis.report", "analysis.significance", "analysis.maintable",
               "analysis.clustered", "analysis.robustness", "analysis.study", "analysis.dollar_columns"]
    code = (f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
            "print(sorted(m for m in ('matplotlib', 'scipy.stats', 'fontTools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
