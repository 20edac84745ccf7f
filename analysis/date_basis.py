"""Which moment of an announcement the study treats as the news: the date basis.

Why: the official announcement is not always the first time the market could know. The ledger records the
timing evidence of each deal (``DealTimingEvidenced`` events: the earliest public time found, with its
source and confidence, and - where a credible report came on an earlier day - that first-report date;
see ``data/events/timing_evidence.csv``). A robustness check re-runs the study on another basis:

* ``official`` (default): the announced date, time of day and session as the deal row states them.
* ``evidence``: the official date, with the time of day and session the timing evidence found (the
  earliest public time on that date); rows without evidence keep their official time.
* ``first_report``: the first credible report (date, time and session) where the evidence names one on
  an earlier day (Anthropic-Google first reported 2025-10-21 after the close; the 2026-02-27 round on
  02-25), else as ``evidence``.

The function only rewrites the three columns the t0 aligner reads (``announced_date``,
``announced_time_et``, ``session``) and keeps the official ones beside them (``official_*``), so firm-event
ids and deal ids do not change and the same deal is comparable across bases.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from core.errors import InputError

DateBasis = Literal["official", "evidence", "first_report"]
DATE_BASES: tuple[str, ...] = ("official", "evidence", "first_report")

_TIMING = ("timing_time_et", "timing_session")
_FIRST = ("first_report_date", "first_report_time_et", "first_report_session")


def apply_date_basis(deals: pl.DataFrame, basis: str = "official") -> pl.DataFrame:
    """``deals`` (a ``ledger.api.deals`` frame) with announced_date/time/session on ``basis``."""
    if basis not in DATE_BASES:
        raise InputError(f"unknown date basis {basis!r}; choose {', '.join(DATE_BASES)}", field="--date-basis")
    if basis == "official":
        return deals
    needed = _TIMING + (_FIRST if basis == "first_report" else ())
    missing = [c for c in needed if c not in deals.columns]
    if missing:
        raise InputError(
            f"the deals carry no timing evidence (column(s) {', '.join(missing)} missing): import "
            "data/events/timing_evidence.csv, or use --date-basis official",
            field="--date-basis",
        )
    out = deals.with_columns(
        pl.col("announced_date").alias("official_announced_date"),
        pl.col("announced_time_et").alias("official_announced_time_et"),
        pl.col("session").alias("official_session"),
    )
    # The evidence's time and session describe the official date; a session label without a time
    # (evidence that the news came before the open, say) replaces the session alone.
    has_evidence = pl.col("timing_session").is_not_null()
    out = out.with_columns(
        pl.when(has_evidence).then(pl.col("timing_time_et")).otherwise(pl.col("announced_time_et"))
        .alias("announced_time_et"),
        pl.when(has_evidence).then(pl.col("timing_session")).otherwise(pl.col("session")).alias("session"),
    )
    if basis == "first_report":
        earlier = pl.col("first_report_date").is_not_null() & (
            pl.col("first_report_date") < pl.col("official_announced_date"))
        out = out.with_columns(
            pl.when(earlier).then(pl.col("first_report_date")).otherwise(pl.col("announced_date"))
            .alias("announced_date"),
            pl.when(earlier).then(pl.col("first_report_time_et")).otherwise(pl.col("announced_time_et"))
            .alias("announced_time_et"),
            pl.when(earlier).then(pl.col("first_report_session").fill_null("unknown"))
            .otherwise(pl.col("session")).alias("session"),
        )
    return out
