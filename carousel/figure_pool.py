"""Saving the main job's figures in worker processes while the job goes on.

Why: writing 11 figures as PDF, SVG and PNG was about half of a cold ``carousel run`` (each format
redraws the figure; the PDF embeds subsetted fonts), all of it in one process on a machine with more
cores. Here the main process still *builds* every figure (the data and the drawing calls are cheap),
then hands it pickled to a worker that saves it in the requested formats, and goes on with its tables
and research sections; the job waits for the files before the report embeds the PNGs.

Determinism: a worker saves one whole figure with :func:`analysis.figure_files.save`, exactly the call the
serial route makes, so the bytes depend only on the figure and the format, not on which process or in
which order (tests/shell/test_figure_pool.py compares parallel and serial files byte for byte).

Workers come from a ``forkserver``: a fresh interpreter that imports matplotlib once and forks the
workers from that clean, single-threaded state. Forking the main process itself is unsafe (DuckDB and
Polars threads may hold locks at the fork), and a spawned worker per figure would import matplotlib
again each time.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from analysis.figure_files import FORMATS as ALL_FORMATS
from core.errors import CarouselError, InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The report embeds the PNGs, so PNG is always written.
REQUIRED_FORMAT = "png"

#: What the forkserver imports once, before it forks the workers: matplotlib and the three backends'
#: writers (the PDF one loads fontTools for the font subsets), not Polars or the analysis.
_PRELOAD = ["carousel.figure_pool", "matplotlib.backends.backend_agg", "matplotlib.backends.backend_pdf",
            "matplotlib.backends.backend_svg"]

#: ``save(fig, folder, name) -> paths``: how the job's steps write a figure.
SaveFn = Callable[["Figure", Path, str], list[Path]]


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


def _save_pickled(blob: bytes, folder: str, name: str, formats: tuple[str, ...]) -> list[str]:
    """Worker side: the figure back from its pickle, saved as the serial route would save it."""
    from analysis.figure_files import save

    fig = pickle.loads(blob)
    return [str(p) for p in save(fig, Path(folder), name, formats)]


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
        self._pending: list[tuple[str, Future[list[str]]]] = []

    def __enter__(self) -> FigurePool:
        if self.workers > 0:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(_PRELOAD)
                self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
                for _ in range(self.workers):
                    self._pool.submit(_warm)
            except (OSError, ImportError, ValueError):
                # No forkserver or no POSIX semaphores here (some sandboxes): the figures are then
                # written in this process, the same files, only not in parallel.
                self.__exit__(None, None, None)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def save(self, fig: Figure, folder: Path, name: str) -> list[Path]:
        """Write (or start writing) ``folder/name.<fmt>`` for each format; the paths, in format order."""
        if self._pool is None:
            from analysis.figure_files import save

            return save(fig, folder, name, self.formats)
        import matplotlib.pyplot as plt

        folder.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(fig, protocol=pickle.HIGHEST_PROTOCOL)
        plt.close(fig)  # the worker has its own copy; this one would only hold memory
        self._pending.append((name, self._pool.submit(_save_pickled, blob, str(folder), name, self.formats)))
        return [folder / f"{name}.{fmt}" for fmt in self.formats]

    def wait(self) -> None:
        """Block until every submitted figure is written; a worker's exception is raised here."""
        pending, self._pending = self._pending, []
        for name, fut in pending:
            try:
                fut.result()
            except BrokenProcessPool as exc:
                raise CarouselError(f"the process writing figure {name!r} died ({exc}); run again with "
                                    "--jobs 0 to write the figures in the main process") from None
