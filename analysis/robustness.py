"""The main results under every choice of event day: t0 policy for announcements without a time of day
(``same_day`` | ``next_session``) x date basis (``official`` | ``evidence`` | ``first_report`` | ``deal_row``).

Why: the event day is the study's most contestable input (an undated press release, a leak reported a
day early). A reader checks that the CAAR does not hinge on it by reading eight rows per window, each the
main table's N, CAAR, SE and cross-sectional p (``analysis.maintable.main_results``) re-estimated with
only the event-day choice changed. Pure: deals and returns in, a frame out.
"""

from __future__ import annotations

import polars as pl

from analysis.date_basis import DATE_BASES
from analysis.maintable import main_results
from analysis.results import EventStudyResult
from analysis.spec import UNKNOWN_POLICIES, StudySpec
from analysis.summary import Column, Summary, Table, integer, percent, pvalue
from analysis.window import EventWindow


def event_day_robustness(deals: pl.DataFrame, returns: pl.DataFrame, spec: StudySpec,
                         base: EventStudyResult | None = None) -> pl.DataFrame:
    """window, unknown_policy, date_basis, n, caar, se, p (cross-sectional t), main (the spec's own
    choice); windows in numeric order, then policy and basis in their listed order.

    ``base``: the study already estimated with ``spec`` (reused, not re-estimated).
    """
    from analysis.study import run_spec

    parts = []
    for policy in UNKNOWN_POLICIES:
        for basis in DATE_BASES:
            own = (policy, basis) == (spec.unknown_policy, spec.date_basis)
            res = base if own and base is not None else run_spec(
                deals, returns, spec.with_(unknown_policy=policy, date_basis=basis))
            parts.append(main_results(res).select(
                "window", pl.lit(policy).alias("unknown_policy"), pl.lit(basis).alias("date_basis"), "n", "caar",
                "se", pl.col("cross_sectional_t_p").alias("p"), pl.lit(own).alias("main")))
    order = {w.label: i for i, w in enumerate(sorted(spec.windows, key=EventWindow.sort_key))}
    return (pl.concat(parts).with_row_index("_i")
            .sort(pl.col("window").replace_strict(order, return_dtype=pl.Int64), "_i").drop("_i"))


def robustness_summary(frame: pl.DataFrame) -> Summary:
    shown = frame.with_columns(
        pl.col("unknown_policy").str.replace("_", " "), pl.col("date_basis").str.replace("_", " "),
        pl.when(pl.col("main")).then(pl.lit("main")).otherwise(pl.lit("")).alias("main"))
    return Summary.of(Table(shown, (
        Column("window", "Window"), Column("unknown_policy", "Time unknown"), Column("date_basis", "Date basis"),
        Column("n", "N", integer()), Column("caar", "CAAR %", percent(2), stars="p"),
        Column("se", "SE %", percent(2)), Column("p", "p", pvalue(4)), Column("main", ""))),
        title="Main results under each choice of event day",
        notes=["Time unknown: t0 of an announcement without a time of day, its date (same day) or the next "
               "session. Date basis: official, the announcement (its time of day from the timing evidence "
               "of that date where the deal row gives none); evidence, a timestamped source's time on "
               "the same date; first report, the first press report (may be earlier); deal row, the deal "
               "row's own time only (no timing evidence). p: cross-sectional t, "
               "t(N-1); * p<0.10, ** p<0.05, *** p<0.01. 'main' marks the specification of the main table.",
               "SE and p as in the main table; the eight rows of a window differ only in their event days."])
