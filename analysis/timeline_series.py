"""The carousel over time: monthly committed flows, round-trips, concentration and OpenAI's share, each
as known at that month's end and as known today.

Why two vintages: a reader of a 2025 article saw the web as it was reported then; later reports
revealed amounts, parties and deals that were already in effect (valid time) but not yet recorded
(transaction time). For each month end M:

* ``then``: the deals in effect on M as recorded in the ledger by M's end (``as_known_at`` = M, 24:00
  UTC); for a ledger kept in real time, what was known that day.
* ``today``: the deals in effect on M as the ledger records them now (``as_known_at`` = None).

``today - then`` is what later records revealed about month M. A ledger compiled after the fact in one
import (the shipped one, recorded in 2026) knew nothing at earlier month ends: its ``then`` series is
empty until the import, which is the truthful answer about that ledger, not a gap in the method.

Per month and vintage (the rules of :mod:`analysis.network`, each contract counted once, an earlier
report standing in for the counting one until it is known, as in :mod:`analysis.features`):
``committed_usd`` (disclosed committed flows), ``n_edges``, ``n_undisclosed_edges``, ``n_round_trips``
(simple cycles up to length 6), ``hhi_out``/``hhi_in`` (0-10,000) and ``openai_share`` (the share of
the disclosed committed flows paid to or by OpenAI; null when nothing is disclosed).

I/O is :func:`timeline_snapshots`; :func:`carousel_timeline` is pure; :func:`persist_timeline` stores it
in the ``carousel_timeline`` table for ``carousel sql``; :func:`timeline_csv` and :func:`timeline_plot`
give the table and the figure (deterministic: see :func:`analysis.plots.save`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import polars as pl

from analysis import network
from analysis.features import OPENAI, with_stand_in_reports
from core.db import transaction
from core.errors import InputError
from ledger import api as ledger_api

VINTAGES = ("then", "today")

TIMELINE_SCHEMA: dict[str, Any] = {
    "month": pl.Date,
    "vintage": pl.String,
    "committed_usd": pl.Float64,
    "n_edges": pl.Int64,
    "n_undisclosed_edges": pl.Int64,
    "n_round_trips": pl.Int64,
    "hhi_out": pl.Float64,
    "hhi_in": pl.Float64,
    "openai_share": pl.Float64,
}

TIMELINE_DDL = [
    """
    CREATE TABLE IF NOT EXISTS carousel_timeline (
        month DATE NOT NULL, vintage VARCHAR NOT NULL, committed_usd DOUBLE, n_edges BIGINT,
        n_undisclosed_edges BIGINT, n_round_trips BIGINT, hhi_out DOUBLE, hhi_in DOUBLE,
        openai_share DOUBLE, PRIMARY KEY (month, vintage)
    )
    """,
]


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month end from ``first``'s month to ``last``'s month, inclusive."""
    if first > last:
        raise InputError(f"timeline starts {first} after it ends {last}", field="months")
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append(dt.date(ny, nm, 1) - dt.timedelta(days=1))
        y, m = ny, nm
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) - dt.timedelta(microseconds=1)


def timeline_snapshots(
    con: duckdb.DuckDBPyConnection, months: list[dt.date] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(flows, current deals): flows in effect at each month end for both vintages, stacked with
    ``known_on`` (the month end) and ``vintage`` columns. ``months`` defaults to every month from the
    first announcement to the last."""
    current = ledger_api.deals(con)
    if months is None:
        dates = current["announced_date"].drop_nulls()
        if dates.len() == 0:
            return pl.DataFrame(), current
        months = month_ends(dates.min(), dates.max())  # type: ignore[arg-type]
    from ledger import log, project

    # The log is read once and each snapshot folds its prefix, exactly as ``ledger_api.flows(con,
    # as_known_at=, in_effect_on=)`` does after reading it again (two reads per month: 164 on the
    # shipped ledger, most of this step's time).
    events = log.read(con)
    parts = []
    for m in months:
        for vintage, known_at in (("then", _end_of_day(m)), ("today", None)):
            known_us = None if known_at is None else (known_at - _EPOCH) // dt.timedelta(microseconds=1)
            f = project.flows_frame(project.fold(events, as_known_at_us=known_us, in_effect_on=m))
            parts.append(f.with_columns(pl.lit(m).alias("known_on"), pl.lit(vintage).alias("vintage")))
    return pl.concat(parts, how="vertical_relaxed"), current


def carousel_timeline(flows: pl.DataFrame, current_deals: pl.DataFrame, months: list[dt.date]) -> pl.DataFrame:
    """One row per month end and vintage (see the module doc), sorted; pure."""
    rows = []
    for m in months:
        for vintage in VINTAGES:
            part = flows.filter((pl.col("known_on") == m) & (pl.col("vintage") == vintage)) if flows.height else flows
            rows.append({"month": m, "vintage": vintage, **_measures(part, current_deals)})
    return pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row").sort("month", "vintage")


def _measures(part: pl.DataFrame, current_deals: pl.DataFrame) -> dict[str, Any]:
    if part.height == 0:
        return {"committed_usd": 0.0, "n_edges": 0, "n_undisclosed_edges": 0, "n_round_trips": 0,
                "hhi_out": 0.0, "hhi_in": 0.0, "openai_share": None}
    f = with_stand_in_reports(part, current_deals).drop("known_on", "vintage")
    e = network.edges(f)
    committed = e.filter("counted")
    g = network.build_graph(e)
    _, hhi_out, hhi_in = network.concentration(e)
    disclosed = committed.drop_nulls("amount_usd")
    total = float(disclosed["amount_usd"].sum())
    openai = float(
        disclosed.filter((pl.col("payer") == OPENAI) | (pl.col("payee") == OPENAI))["amount_usd"].sum()
    )
    return {
        "committed_usd": total,
        "n_edges": committed.height,
        "n_undisclosed_edges": int(committed["undisclosed"].sum()),
        "n_round_trips": network.cycles(g).height,
        "hhi_out": hhi_out,
        "hhi_in": hhi_in,
        "openai_share": openai / total if total > 0 else None,
    }


def timeline(con: duckdb.DuckDBPyConnection, months: list[dt.date] | None = None) -> pl.DataFrame:
    """:func:`carousel_timeline` of the ledger in ``con`` (every month of its announcements by default)."""
    flows, current = timeline_snapshots(con, months)
    if months is None:
        if flows.height == 0:
            return pl.DataFrame(schema=TIMELINE_SCHEMA)
        months = sorted(flows["known_on"].unique().to_list())
    return carousel_timeline(flows, current, months)


def revealed_later(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per month: each measure then and today and the difference (today - then)."""
    measures = [c for c in TIMELINE_SCHEMA if c not in ("month", "vintage")]
    wide = frame.pivot(on="vintage", index="month", values=measures, separator="__")
    return wide.with_columns(
        [(pl.col(f"{c}__today") - pl.col(f"{c}__then")).alias(f"{c}__revealed") for c in measures]
    ).sort("month")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in TIMELINE_DDL:
        con.execute(stmt)


def persist_timeline(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    """Replace the ``carousel_timeline`` table with ``frame``, atomically (read-write connection)."""
    ensure_schema(con)
    data = frame.select([pl.col(c).cast(t) for c, t in TIMELINE_SCHEMA.items()])
    with transaction(con):
        con.execute("DELETE FROM carousel_timeline")
        con.register("_timeline", data.to_arrow())
        try:
            con.execute("INSERT INTO carousel_timeline SELECT * FROM _timeline")
        finally:
            con.unregister("_timeline")


def timeline_csv(frame: pl.DataFrame) -> str:
    """The table as CSV text (sorted rows, full float precision: byte-identical for the same ledger)."""
    return frame.sort("month", "vintage").write_csv(float_precision=None)


def timeline_plot(frame: pl.DataFrame) -> Any:
    """Committed disclosed flows ($bn) and round-trips per month end, then (dashed) and today (solid)."""
    import matplotlib.pyplot as plt

    from analysis.plots import _style

    with _style():
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.0, 4.2), sharex=True)
        for vintage, ls in (("today", "-"), ("then", "--")):
            s = frame.filter(pl.col("vintage") == vintage).sort("month")
            label = "as known today" if vintage == "today" else "as known at month end"
            ax1.step(s["month"].to_list(), (s["committed_usd"] / 1e9).to_list(), where="post", ls=ls, label=label)
            ax2.step(s["month"].to_list(), s["n_round_trips"].to_list(), where="post", ls=ls, label=label)
        ax1.set_ylabel("committed, disclosed ($bn)")
        ax2.set_ylabel("round-trips")
        ax1.set_title("The carousel over time")
        ax1.legend(frameon=False)
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig


__all__ = [
    "TIMELINE_DDL",
    "TIMELINE_SCHEMA",
    "carousel_timeline",
    "ensure_schema",
    "month_ends",
    "persist_timeline",
    "revealed_later",
    "timeline",
    "timeline_csv",
    "timeline_plot",
    "timeline_snapshots",
]
