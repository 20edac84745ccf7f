"""Which moment of an announcement the study treats as the news: the date basis.

Why: the official announcement is not always the first time the market could know. The ledger records the
timing evidence of each deal (``DealTimingEvidenced`` events: the earliest public time found, with its
source and confidence, and - where a credible report came on an earlier day - that first-report date;
see ``data/events/timing_evidence.csv``). A robustness check re-runs the study on another basis:

* ``official`` (default): the announced date, time of day and session as the deal row states them; where
  the official row has no time of day (``session='unknown'``, no ``announced_time_et``) the time and
  session of the timing evidence fill it. The ledger's import checks that the evidence is for the
  official date (``ledger.timing``), so this never moves the date: a report on another day (a leak,
  ``first_report_*``) stays with the ``first_report`` basis. Where the frame says which date the evidence
  was recorded for (``timing_for_date``, :func:`ledger.api.timing_dates`; the study's inputs carry it),
  evidence for another date - the deal's date was corrected since - fills nothing, on any basis. Without it the unknown-time policy put
  SoftBank-OpenAI 2025-03-31 (evidence 22:17 ET) and Anthropic-Google 2025-10-23 (evidence after the
  close) on the day before the news for MSFT and GOOGL. Evidence of any confidence fills: the
  confidence grades the source and the minute (mostly an upper bound taken from a copy), while the only
  alternative is the policy's blind 08:00 ET; ``time_source`` says which rows were filled.
* ``evidence``: the official date, with the time of day and session the timing evidence found (the
  earliest public time on that date), also where the official row states a different session; rows
  without evidence keep their official time.
* ``first_report``: the first credible report (date, time and session) where the evidence names one on
  an earlier day (Anthropic-Google first reported 2025-10-21 after the close; the 2026-02-27 round on
  02-25), else as ``evidence``.
* ``deal_row``: the deal row alone, no timing evidence (a row without a time follows the unknown-time
  policy): the robustness check of the official basis's fill, whose evidence is sometimes weak (the
  after-close label of Anthropic-Google 2025-10-23 is inferred from the next day's move).

Evidence whose session is ``unknown`` and that gives no time says nothing about the time of day: it is
treated as no evidence under every basis (it never overwrites an official session).

The function rewrites the three columns the t0 aligner reads (``announced_date``, ``announced_time_et``,
``session``), keeps the official ones beside them (``official_*``) and adds ``time_source``: where the
time of day the aligner reads came from (``official``: the deal row; ``evidence``: the timing evidence
on the official date; ``first_report``: the earlier first report; ``none``: no time or session known, the
unknown-time policy decides). Firm-event ids and deal ids do not change, so the same deal is comparable
across bases.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from core.errors import InputError

DateBasis = Literal["official", "evidence", "first_report", "deal_row"]
DATE_BASES: tuple[str, ...] = ("official", "evidence", "first_report", "deal_row")
#: Values of the ``time_source`` column.
TIME_SOURCES: tuple[str, ...] = ("official", "evidence", "first_report", "none")

_TIMING = ("timing_time_et", "timing_session")
_FIRST = ("first_report_date", "first_report_time_et", "first_report_session")
_OFFICIAL = ("announced_date", "announced_time_et", "session")


def _has_time(time: pl.Expr, session: pl.Expr) -> pl.Expr:
    """A time of day, or a session label other than 'unknown': something the aligner can use."""
    return time.is_not_null() | (session.is_not_null() & (session != "unknown"))


def apply_date_basis(deals: pl.DataFrame, basis: str = "official") -> pl.DataFrame:
    """``deals`` (a ``ledger.api.deals`` frame) with announced_date/time/session on ``basis``, the
    official values in ``official_*`` and ``time_source`` (module doc). A frame this function already
    rewrote is rewritten again from its ``official_*`` columns, so bases do not stack."""
    if basis not in DATE_BASES:
        raise InputError(f"unknown date basis {basis!r}; choose {', '.join(DATE_BASES)}", field="--date-basis")
    needed = _TIMING + (_FIRST if basis == "first_report" else ())
    missing = [c for c in needed if c not in deals.columns]
    if missing and basis not in ("official", "deal_row"):
        raise InputError(
            f"the deals carry no timing evidence (column(s) {', '.join(missing)} missing): import "
            "data/events/timing_evidence.csv, or use --date-basis official",
            field="--date-basis",
        )
    if "official_announced_date" in deals.columns:
        deals = deals.with_columns(pl.col(f"official_{c}").alias(c) for c in _OFFICIAL)
    out = deals.with_columns(pl.col(c).alias(f"official_{c}") for c in _OFFICIAL)
    official_has_time = _has_time(pl.col("announced_time_et"), pl.col("session"))
    if missing or basis == "deal_row":  # no evidence read (none there, or not wanted)
        return out.with_columns(
            pl.when(official_has_time).then(pl.lit("official")).otherwise(pl.lit("none")).alias("time_source"))
    # The evidence's time and session describe the official date; a session label without a time
    # (evidence that the news came before the open, say) replaces the session alone. 'unknown' without
    # a time is no evidence.
    has_evidence = _has_time(pl.col("timing_time_et"), pl.col("timing_session"))
    if "timing_for_date" in out.columns:
        # Evidence recorded for another date (the deal's date was corrected or amended since) describes
        # that date's news, not this one's: it fills nothing (ledger.api.timing_dates).
        has_evidence = has_evidence & (pl.col("timing_for_date").is_null()
                                       | (pl.col("timing_for_date") == pl.col("announced_date")))
    use = has_evidence if basis != "official" else has_evidence & ~official_has_time
    out = out.with_columns(
        pl.when(use).then(pl.col("timing_time_et")).otherwise(pl.col("announced_time_et"))
        .alias("announced_time_et"),
        pl.when(use).then(pl.col("timing_session")).otherwise(pl.col("session")).alias("session"),
        pl.when(use).then(pl.lit("evidence")).when(official_has_time).then(pl.lit("official"))
        .otherwise(pl.lit("none")).alias("time_source"),
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
            pl.when(earlier).then(pl.lit("first_report")).otherwise(pl.col("time_source")).alias("time_source"),
        )
    return out
