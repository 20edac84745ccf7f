"""Figures of the volume, volatility and run-up studies, for the report and the paper.

One function per output, each taking the result the pure study returns (no I/O; save with
:func:`analysis.plots.save`, which strips timestamps so figures are byte-identical run to run):

=========================  ==============================================  =========================
output                     frames (from the study)                          figure
=========================  ==============================================  =========================
pre-event run-up           ``runup_study(...).car`` / ``.battery()``        :func:`runup_figure`
abnormal volume            ``abnormal_volume(...).car`` / ``.aar`` /        :func:`volume_figure`
                           ``.tests(w).frame``
variance ratio             ``variance_ratio(res.panel, w).frame/.pooled``   :func:`variance_ratio_figure`
GARCH market model         ``run_study(..., model='garch').car/.params``    :func:`runup_figure` (any
                                                                            firm-event's daily ARs)
=========================  ==============================================  =========================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.special import fdtri

from analysis.plots import Z95
from analysis.results import EventStudyResult
from analysis.volatility import VarianceRatioResult
from core.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def runup_figure(res: EventStudyResult, event_id: str, title: str | None = None) -> Figure:
    """Daily abnormal returns of one firm-event over the study's non-estimation days (bars with 95 %
    intervals, AR ± 1.96 se) and their running sum (line): where in the run-up the move happened."""
    return daily_ar_figure(runup_rows(res, event_id), event_id, title or f"{event_id}: daily AR ({res.model.name})")


def runup_rows(res: EventStudyResult, event_id: str) -> pl.DataFrame:
    """The rows of ``res.ar`` (rel_day, ar, se) of one firm-event: the data of :func:`daily_ar_figure`."""
    return res.ar.filter(pl.col("event_id") == event_id).sort("rel_day")


def daily_ar_figure(ar: pl.DataFrame, event_id: str, title: str) -> Figure:
    """:func:`runup_figure` from its data (:func:`runup_rows`), so that a figure worker can draw it."""
    from analysis.figure_files import plt, style

    if ar.height == 0:
        raise InputError(f"no abnormal returns for firm-event {event_id!r}", field="event_id")
    d = ar["rel_day"].to_numpy()
    a = 100 * ar["ar"].fill_null(np.nan).to_numpy()
    se = 100 * ar["se"].fill_null(np.nan).to_numpy()
    with style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        ax.bar(d, a, color="#3498db", width=0.7, label="AR", yerr=Z95 * se, ecolor="#7f8c8d", capsize=1.5)
        ax.plot(d, np.nancumsum(a), color="#2c3e50", marker="o", ms=2.5, label="cumulative AR")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("trading days relative to t0")
        ax.set_ylabel("abnormal return (%)")
        ax.set_title(title)
        ax.legend(frameon=False, loc="upper left")
        fig.tight_layout()
    return fig


def volume_figure(res: EventStudyResult, title: str | None = None) -> Figure:
    """Mean abnormal log volume per relative day over the firm-events (``res.aar`` of
    :func:`analysis.volume.abnormal_volume`), in log points."""
    from analysis.figure_files import plt, style

    aar = res.aar.sort("rel_day").drop_nulls("aar")
    with style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        ax.bar(aar["rel_day"].to_numpy(), aar["aar"].to_numpy(), color="#16a085", width=0.7)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("trading days relative to t0")
        ax.set_ylabel("mean abnormal ln(volume + 1)")
        n = int(aar["n"].to_numpy().max(initial=0))
        ax.set_title(title or f"Abnormal trading volume (N = {n} firm-events)")
        fig.tight_layout()
    return fig


def variance_ratio_figure(vr: VarianceRatioResult, title: str | None = None) -> Figure:
    """Variance ratio per firm-event (log scale, sorted) against 1 and the 5 % F critical value at
    the median denominator degrees of freedom."""
    from analysis.figure_files import plt, style

    f = vr.frame.drop_nulls("var_ratio").sort("var_ratio")
    if f.height == 0:
        raise InputError("no firm-event has a complete window", field="window")
    df1 = int(f["df1"][0])
    crit = float(fdtri(df1, float(np.median(f["df2"].to_numpy())), 0.95))
    y = np.arange(f.height)
    with style():
        fig, ax = plt.subplots(figsize=(4.5, max(2.5, 0.12 * f.height + 0.8)))
        ax.scatter(f["var_ratio"].to_numpy(), y, s=8, color="#c0392b", zorder=3)
        ax.axvline(1.0, color="black", lw=0.6)
        ax.axvline(crit, color="grey", lw=0.6, ls="--", label=f"5 % critical F({df1}, ·) = {crit:.2f}")
        ax.set_xscale("log")
        ax.set_yticks(y, [str(e) for e in f["event_id"].to_list()], fontsize=5)
        ax.set_xlabel("event-window AR variance / estimation variance")
        ax.set_title(title or f"Abnormal volatility, window {vr.pooled['window'][0]}")
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
    return fig


__all__ = ["daily_ar_figure", "runup_figure", "runup_rows", "variance_ratio_figure", "volume_figure"]
