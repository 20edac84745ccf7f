"""Drawing and saving the main job's figures in worker processes while the job goes on.

Why: writing 11 figures as PDF, SVG and PNG was about half of a cold ``carousel run`` (each format
redraws the figure; the PDF embeds subsetted fonts), and building them (text layout for
``tight_layout``, the Kamada-Kawai network layouts) was a quarter of what the main process had left.
Here the main process computes each figure's *data* (Polars frames, small arrays) and hands the data
with the figure's builder (a module-level function of ``analysis``) to a worker, which builds the figure
and saves it in the requested formats (:meth:`FigurePool.draw`); the main process goes on with its tables
and research sections, never imports matplotlib, and waits for the files before the report embeds the
PNGs.

Determinism: a worker builds and saves one whole figure with the same calls as the serial route
(``save(build(*args), ...)`` with :func:`analysis.figure_files.save`), so the bytes depend only on the
data and the format, not on which process or in which order (tests/shell/test_figure_pool.py compares
parallel and serial files byte for byte; the golden test compares the whole job's files).

Workers come from a ``forkserver``: a fresh interpreter that imports matplotlib and the figure modules
once and forks the workers from that clean state. Forking the main process itself is unsafe (DuckDB and
Polars threads may hold locks at the fork), and a spawned worker per figure would import matplotlib
again each time. The forkserver is started from a background thread: starting a worker waits for the
forkserver's imports (about a second), which the main process spends on its own steps instead.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import CarouselError, InputError

if TYPE_CHECKING:
    from analysis.research_sections import Builder

#: Every figure format, in the order they are written (analysis.figure_files.FORMATS; spelled out here
#: so that the main process need not import matplotlib to parse ``--formats``).
ALL_FORMATS = ("pdf", "svg", "png")

#: The report embeds the PNGs, so PNG is always written.
REQUIRED_FORMAT = "png"

#: What the forkserver imports once, before it forks the workers: matplotlib with pyplot and the house
#: style (analysis.figure_files), the three backends' writers (the PDF one loads fontTools for the font
#: subsets), the modules whose builders the main job hands over (with Polars and networkx under them)
#: and scipy.optimize for the network layouts; each worker would otherwise import them itself.
_PRELOAD = ["carousel.figure_pool", "analysis.figure_files", "matplotlib.backends.backend_agg",
            "matplotlib.backends.backend_pdf", "matplotlib.backends.backend_svg", "analysis.plots",
            "analysis.activity_figures", "analysis.dollar_outputs", "analysis.timeline_series", "scipy.optimize"]

T = TypeVar("T")



def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("pdf", "png")``: the formats in canonical order, PNG always included.

    InputError naming ``--formats`` for an unknown or empty entry."""
    if text is None:
        return ALL_FORMATS
    wanted = {part.strip().lower() for part in text.split(",")}
    if "" in wanted:
        raise InputError(f"--formats {text!r} has an empty entry; e.g. --formats png,pdf", field="--formats")
    unknown = sorted(wanted - set(ALL_FORMATS))
    if unknown:
        raise InputError(f"unknown figure format {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(ALL_FORMATS)}", field="--formats")
    wanted.add(REQUIRED_FORMAT)
    return tuple(f for f in ALL_FORMATS if f in wanted)


def default_workers() -> int:
    """One worker per core this process may use (at least one): the main process mostly waits on
    them once its own steps are done."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, n)


def _draw(build: Builder, args: tuple[Any, ...], folder: str, name: str, formats: tuple[str, ...]) -> list[str]:
    """Worker side: build the figure from its data and save it, as the serial route does."""
    from analysis.figure_files import save

    return [str(p) for p in save(build(*args), Path(folder), name, formats)]


def _warm() -> None:
    """Nothing: submitted first so the workers start (and the forkserver imports matplotlib) while the
    main process reads the ledger and the prices."""


class FigurePool:
    """Writes figures in ``formats``, in ``workers`` processes (0: in this process, as before).

    Use as a context manager; :meth:`save` returns the paths the figure *will* have, :meth:`wait`
    returns once every file is written (re-raising a worker's error). Leaving the context cancels
    what has not started and waits for the rest, so no worker writes after the caller has moved on
    (the staging folder is removed right after).
    """

    def __init__(self, formats: tuple[str, ...] = ALL_FORMATS, workers: int = 0) -> None:
        self.formats = formats
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._starting: threading.Thread | None = None
        self._pending: list[tuple[str, Future[list[str]]]] = []

    def __enter__(self) -> FigurePool:
        if self.workers > 0:
            self._starting = threading.Thread(target=self._start, name="figure-pool-start", daemon=True)
            self._starting.start()
        return self

    def _start(self) -> None:
        """Start the forkserver and the workers (blocks until the forkserver has imported _PRELOAD)."""
        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        except (OSError, ImportError, ValueError):
            # No forkserver or no POSIX semaphores here (some sandboxes): the figures are then
            # written in this process, the same files, only not in parallel.
            return
        self._pool = pool
        try:
            for _ in range(self.workers):
                pool.submit(_warm)
        except (OSError, ImportError, ValueError, BrokenProcessPool):
            self._pool = None
            pool.shutdown(wait=True, cancel_futures=True)

    def _ready(self) -> ProcessPoolExecutor | None:
        """The pool once started (None: figures are written in this process)."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        return self._pool

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pool = self._ready()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def draw(self, build: Builder, args: tuple[Any, ...], folder: Path, name: str) -> list[Path]:
        """Build ``build(*args)`` and write (or start writing) ``folder/name.<fmt>`` for each format; the
        paths, in format order. ``build`` must be a module-level function and ``args`` must pickle
        (frames and plain values, not connections)."""
        pool = self._ready()
        if pool is None:
            from analysis.figure_files import save

            return save(build(*args), folder, name, self.formats)
        folder.mkdir(parents=True, exist_ok=True)
        self._pending.append((name, pool.submit(_draw, build, args, str(folder), name, self.formats)))
        return [folder / f"{name}.{fmt}" for fmt in self.formats]

    def call(self, fn: Callable[..., T], *args: Any) -> Callable[[], T]:
        """``fn(*args)`` in a worker (in this process without workers); returns a function that gives
        its result (waiting for it). For pure work the main job needs only later (the report's network
        layout): the same result wherever it runs."""
        pool = self._ready()
        if pool is None:
            value = fn(*args)
            return lambda: value
        fut = pool.submit(fn, *args)

        def result() -> T:
            try:
                return fut.result()
            except BrokenProcessPool as exc:
                raise CarouselError(f"a figure worker died ({exc}); run again with --jobs 0 to do its work "
                                    "in the main process") from None

        return result

    def wait(self) -> None:
        """Block until every submitted figure is written; a worker's exception is raised here."""
        pending, self._pending = self._pending, []
        for name, fut in pending:
            try:
                fut.result()
            except BrokenProcessPool as exc:
                raise CarouselError(f"the process writing figure {name!r} died ({exc}); run again with "
                                    "--jobs 0 to write the figures in the main process") from None
