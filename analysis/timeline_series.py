"""The carousel over time: monthly committed flows, round-trips, concentration and OpenAI's share, each
as publicly reported by that month's end, as recorded in the ledger by then, and as known today.

Why three vintages: a reader of a 2025 article saw the web as it had been reported by then; later reports
revealed amounts, parties and deals. For each month end M (deals *in effect* on M, valid time):

* ``reported`` (as publicly reported by M's end): every fact dated by when it became public. A deal's
  announcement (and the corrections and timing evidence of it) counts from its public date, the earlier
  of its ``announced_date`` and its timing evidence's ``first_report_date`` (a leak; US/Eastern calendar
  dates, so an after-close report on M is public by M's end). A correction fixes what the announcement
  said, so it applies from that date too. The ledger records no reported date for an amendment or a
  retraction (their ``effective_date`` is valid time, not when the news came out), so one counts only
  once both its effective date and its recording (``recorded_at``, M 24:00 UTC at the latest) are on or
  before M: never earlier than the ledger can show it was known. This is the series a ledger compiled
  after the fact can give, and it never looks ahead: a fact reported after M never changes M's row.
* ``recorded`` (as recorded in the ledger by M's end, ``as_known_at`` = M 24:00 UTC): transaction time;
  for a ledger kept in real time, what it knew that day. A ledger compiled in one import after every
  announcement (the shipped one, recorded in 2026) knew nothing at any month end: that series is empty,
  and :func:`absent_vintages` says so, so that no table or figure lists it as if it were data.
* ``today``: the deals in effect on M as the ledger records them now.

``today - reported`` (:func:`revealed_later`) is what later records revealed about month M.

Per month and vintage (the rules of :mod:`analysis.network`, each contract counted once, an earlier
report standing in for the counting one until it is known, as in :mod:`analysis.features`):
``committed_usd`` (disclosed committed flows), ``n_edges``, ``n_undisclosed_edges``, ``n_round_trips``
(simple cycles up to length 6), ``hhi_out``/``hhi_in`` (0-10,000) and ``openai_share`` (the share of
the disclosed committed flows paid to or by OpenAI; null when nothing is disclosed).

I/O is :func:`timeline_snapshots` (one read of the log); the vintages' states (:func:`vintage_flows`),
:func:`carousel_timeline` and :func:`absent_vintages` are pure; :func:`persist_timeline` stores the
frame in the ``carousel_timeline`` table for ``carousel sql``; :func:`timeline_csv` and
:func:`timeline_plot` give the table and the figure (deterministic: see :func:`analysis.plots.save`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from analysis import network
from analysis.features import OPENAI, with_stand_in_reports
from core.db import transaction
from core.errors import InputError
from ledger import api as ledger_api
from ledger import log, project
from ledger.model import REGISTRY, StoredEvent

#: In reading order: the web as known then (two ways), then as known today.
VINTAGES = ("reported", "recorded", "today")
VINTAGE_LABELS = {
    "reported": "as publicly reported by month end",
    "recorded": "as recorded in the ledger by month end",
    "today": "as known today",
}
#: Deal events that describe the announcement itself: public from the deal's public date.
_AT_ANNOUNCEMENT = frozenset({"DealAnnounced", "DealCorrected", "DealTimingEvidenced"})

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


def _end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) - dt.timedelta(microseconds=1)


def _end_of_day_us(day: dt.date) -> int:
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(end.timestamp()) * 1_000_000 - 1


def public_dates(deals: pl.DataFrame) -> dict[str, dt.date]:
    """Each dated deal's public date: the earlier of ``announced_date`` and ``first_report_date``."""
    first = pl.col("first_report_date") if "first_report_date" in deals.columns else pl.lit(None, pl.Date)
    frame = deals.select("deal_id", pl.min_horizontal("announced_date", first).alias("public")).drop_nulls()
    return dict(zip(frame["deal_id"].to_list(), frame["public"].to_list(), strict=True))


def reported_events(events: Sequence[StoredEvent], public: dict[str, dt.date], month: dt.date) -> list[StoredEvent]:
    """The events of the log that were public by ``month``'s end (the ``reported`` vintage's rule, in the
    module doc): company records always; a deal's announcement, corrections and timing evidence from its
    public date; any other deal event (amendment, retraction) once it is also recorded by M 24:00 UTC."""
    cutoff = _end_of_day_us(month)
    kept = []
    for ev in events:
        if REGISTRY[ev.event_type].stream_kind != "deal":
            kept.append(ev)
            continue
        day = public.get(ev.payload["deal_id"])
        if day is None or day > month:
            continue
        if ev.event_type in _AT_ANNOUNCEMENT or ev.recorded_at_us <= cutoff:
            kept.append(ev)
    return kept


def vintage_flows(events: Sequence[StoredEvent], public: dict[str, dt.date], month: dt.date, vintage: str) -> pl.DataFrame:
    """The flows (``ledger.api.flows`` columns) of the deals in effect on ``month`` in ``vintage`` (pure).

    ``recorded``/``today`` equal ``ledger.api.flows(con, as_known_at=M 24:00 UTC | None, in_effect_on=M)``.
    ``reported`` folds :func:`reported_events` in effect on M and keeps every deal public by M, also one
    whose official announcement came later (a leak reported in M)."""
    if vintage == "recorded":
        return project.flows_frame(project.fold(events, as_known_at_us=_end_of_day_us(month), in_effect_on=month))
    if vintage == "today":
        return project.flows_frame(project.fold(events, in_effect_on=month))
    if vintage != "reported":
        raise InputError(f"unknown vintage {vintage!r}; one of {', '.join(VINTAGES)}", field="vintage")
    state = project.LedgerState()
    for ev in reported_events(events, public, month):
        project.apply(state, ev, in_effect_on=month)
    return project.flows_frame(state)


def timeline_snapshots(
    con: duckdb.DuckDBPyConnection, months: list[dt.date] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(flows, current deals): flows in effect at each month end for every vintage, stacked with
    ``known_on`` (the month end) and ``vintage`` columns. ``months`` defaults to every month from the
    first public report to the last announcement. One read of the log."""
    current = ledger_api.deals(con)
    public = public_dates(current)
    if months is None:
        dates = current["announced_date"].drop_nulls()
        if dates.len() == 0:
            return pl.DataFrame(), current
        months = month_ends(min(public.values()), dates.max())  # type: ignore[arg-type]
    events = log.read(con)
    parts = [
        vintage_flows(events, public, m, vintage).with_columns(pl.lit(m).alias("known_on"), pl.lit(vintage).alias("vintage"))
        for m in months
        for vintage in VINTAGES
    ]
    return pl.concat(parts, how="vertical_relaxed"), current


def carousel_timeline(flows: pl.DataFrame, current_deals: pl.DataFrame, months: list[dt.date]) -> pl.DataFrame:
    """One row per month end and vintage (see the module doc), sorted; pure.

    The measures are a function of a month's flows alone (rows in order), and most month ends repeat
    the previous one's flows (the shipped ledger: 164 (month, vintage) snapshots, 15 different ones),
    so each different snapshot is measured once: the same numbers as measuring every month, in a
    tenth of the time of a cold ``carousel run``'s timeline."""
    parts = flows.partition_by("known_on", "vintage", as_dict=True) if flows.height else {}
    empty = flows.clear()
    measured: dict[tuple[tuple[Any, ...], ...], dict[str, Any]] = {}
    rows = []
    for m in months:
        for vintage in VINTAGES:
            part = parts.get((m, vintage), empty)
            key = tuple(part.drop("known_on", "vintage", strict=False).rows())
            if key not in measured:
                measured[key] = _measures(part, current_deals)
            rows.append({"month": m, "vintage": vintage, **measured[key]})
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


def revealed_later(frame: pl.DataFrame, earlier: str = "reported") -> pl.DataFrame:
    """One row per month: each measure per vintage (``<measure>__<vintage>``) and ``today - earlier``
    (``<measure>__revealed``): what later records revealed about the month."""
    if earlier not in VINTAGES or earlier == "today":
        raise InputError(f"compare today with one of {', '.join(v for v in VINTAGES if v != 'today')}",
                         field="earlier")
    measures = [c for c in TIMELINE_SCHEMA if c not in ("month", "vintage")]
    wide = frame.pivot(on="vintage", index="month", values=measures, separator="__")
    return wide.with_columns(
        [(pl.col(f"{c}__today") - pl.col(f"{c}__{earlier}")).alias(f"{c}__revealed") for c in measures]
    ).sort("month")


def absent_vintages(frame: pl.DataFrame) -> dict[str, str]:
    """Vintages with no deal at any month end, each with the reason in words (pure). Such a series is
    never drawn or listed as data: the table and the figure say why it is absent instead."""
    out: dict[str, str] = {}
    if frame.height == 0:
        return out
    last = _last_month(frame)
    for vintage in VINTAGES:
        part = frame.filter(pl.col("vintage") == vintage)
        if part.height and int(part["n_edges"].sum()) > 0:
            continue
        if vintage == "recorded":
            out[vintage] = (f"no deal had been recorded in this ledger by the last month end ({last}): it was "
                            "compiled after the fact, so the ledger as recorded at each month end is empty; "
                            "'as publicly reported' dates each fact by when it became public instead")
        else:
            out[vintage] = f"no deal was in effect at any month end up to {last}"
    return out


def same_as_today(frame: pl.DataFrame, vintage: str) -> bool:
    """Whether ``vintage`` equals the ``today`` series in every measure at every month end."""
    a = frame.filter(pl.col("vintage") == vintage).drop("vintage").sort("month")
    b = frame.filter(pl.col("vintage") == "today").drop("vintage").sort("month")
    return a.height == b.height > 0 and a.equals(b)


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
    """Committed disclosed flows ($bn) and round-trips per month end for every vintage with data (today
    solid, reported dashed, recorded dotted); an absent vintage is named under the axes, not drawn."""
    from analysis.figure_files import plt, style

    absent = absent_vintages(frame)
    styles = {"today": "-", "reported": "--", "recorded": ":"}
    with style():
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.0, 4.6), sharex=True)
        for vintage in ("today", "reported", "recorded"):
            if vintage in absent:
                continue
            s = frame.filter(pl.col("vintage") == vintage).sort("month")
            label = VINTAGE_LABELS[vintage]
            if vintage != "today" and same_as_today(frame, vintage):
                label += " (= as known today)"
            ls = styles[vintage]
            ax1.step(s["month"].to_list(), (s["committed_usd"] / 1e9).to_list(), where="post", ls=ls, label=label)
            ax2.step(s["month"].to_list(), s["n_round_trips"].to_list(), where="post", ls=ls, label=label)
        ax1.set_ylabel("committed, disclosed ($bn)")
        ax2.set_ylabel("round-trips")
        ax1.set_title("The carousel over time")
        ax1.legend(frameon=False)
        fig.autofmt_xdate()
        notes = [f"Not drawn, {VINTAGE_LABELS[v]}: {_short_reason(v, frame)}" for v in VINTAGES if v in absent]
        fig.tight_layout(rect=(0, 0.04 * len(notes), 1, 1))
        for i, note in enumerate(notes):
            fig.text(0.01, 0.01 + 0.04 * i, note, fontsize=6.5, ha="left", va="bottom")
    return fig


def _last_month(frame: pl.DataFrame) -> str:
    return str(frame["month"].cast(pl.String).max())


def _short_reason(vintage: str, frame: pl.DataFrame) -> str:
    last = _last_month(frame)
    if vintage == "recorded":
        return f"empty (nothing recorded by {last}; the ledger was compiled later)"
    return "empty (no deal in effect at any month end)"


__all__ = [
    "TIMELINE_DDL",
    "TIMELINE_SCHEMA",
    "VINTAGES",
    "VINTAGE_LABELS",
    "absent_vintages",
    "carousel_timeline",
    "ensure_schema",
    "month_ends",
    "persist_timeline",
    "public_dates",
    "reported_events",
    "revealed_later",
    "same_as_today",
    "timeline",
    "timeline_csv",
    "timeline_plot",
    "timeline_snapshots",
    "vintage_flows",
]
