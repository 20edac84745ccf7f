"""As-of at many times in one pass: every version of every deal, with the interval of transaction time
in which it was the ledger's knowledge, joined with the times asked for.

Why: as-of graph characteristics at every event date need the ledger's state at thousands of instants.
Replaying the log once per instant costs N x T; a deal changes only when one of its events is recorded,
so one replay yields each deal's versions with ``[known_from, known_until)`` intervals, and an interval
(inequality) join gives the state at every instant at once. Same rule as ``ledger.api.deals(con,
as_known_at=T)``: the events recorded at or before T, every known amendment applied (a test holds the two
equal at every event time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import polars as pl

from ledger import project
from ledger.model import StoredEvent
from ledger.state import LedgerState

_UTC = pl.Datetime("us", "UTC")
_FOREVER = 2**62  # beyond any recorded_at in microseconds


def deal_versions(events: Iterable[StoredEvent]) -> tuple[list[dict[str, Any]], list[int]]:
    """(deal rows, recorded_at_us from which each is known), one per deal event, in log order."""
    state = LedgerState()
    rows: list[dict[str, Any]] = []
    known_from: list[int] = []
    for ev in events:
        project.apply(state, ev)
        deal_id = ev.payload.get("deal_id") if ev.event_type != "CompanyRegistered" else None
        if deal_id is not None and deal_id in state.deals:
            rows.append(project.deal_row(deal_id, state.deals[deal_id]))
            known_from.append(ev.recorded_at_us)
    return rows, known_from


def _intervals(frame: pl.DataFrame, known_from: list[int]) -> pl.DataFrame:
    """Add ``_from``/``_until`` (µs): a version is known from its event until the deal's next version."""
    return frame.with_columns(pl.Series("_from", known_from, dtype=pl.Int64)).with_columns(
        pl.col("_from").shift(-1).over("deal_id").fill_null(_FOREVER).alias("_until"))


def _at_times(versions: pl.DataFrame, times: Sequence[Any] | pl.Series) -> pl.DataFrame:
    """Join versions with ``times`` on _from <= t < _until; a column ``as_known_at`` first."""
    t = pl.DataFrame({"as_known_at": pl.Series(times)})
    if t["as_known_at"].dtype == pl.Object or not isinstance(t["as_known_at"].dtype, pl.Datetime):
        raise ValueError("times must be timezone-aware datetimes")
    if t["as_known_at"].dtype.time_zone is None:
        raise ValueError("times must be timezone-aware")
    t = t.with_columns(pl.col("as_known_at").dt.convert_time_zone("UTC").cast(_UTC))
    t = t.unique(maintain_order=True).with_columns(pl.col("as_known_at").dt.epoch("us").alias("_t"))
    with duckdb.connect() as mem:  # an in-memory database: the join is pure, no user file is touched
        mem.register("v", versions.to_arrow())
        mem.register("t", t.to_arrow())
        out = mem.sql(
            "SELECT t.as_known_at, v.* EXCLUDE (_from, _until) FROM t JOIN v "
            "ON v._from <= t._t AND t._t < v._until ORDER BY t.as_known_at, v.deal_id"
        ).pl()
    return out.with_columns(pl.col("as_known_at").cast(_UTC))


def deals_at(events: Iterable[StoredEvent], times: Sequence[Any] | pl.Series) -> pl.DataFrame:
    """Every deal (active and retracted) as known at each of ``times``: ``as_known_at`` plus the columns of
    ``ledger.api.deals``, sorted by (as_known_at, deal_id). Pure over the events."""
    rows, known_from = deal_versions(events)
    versions = _intervals(project.rows_frame(rows, project.DEAL_COLUMNS), known_from)
    return _at_times(versions, times).cast(pl.Schema({"as_known_at": _UTC, **project.DEAL_COLUMNS}))


def flows_at(events: Iterable[StoredEvent], times: Sequence[Any] | pl.Series) -> pl.DataFrame:
    """Edges of the active deals as known at each of ``times``: ``as_known_at`` plus the columns of
    ``ledger.api.flows``, sorted by (as_known_at, deal_id, payer, payee). Pure over the events."""
    rows, known_from = deal_versions(events)
    edges: list[dict[str, Any]] = []
    edge_from: list[int] = []
    edge_until: list[int] = []
    until = _intervals(pl.DataFrame({"deal_id": [r["deal_id"] for r in rows]}, schema={"deal_id": pl.String}),
                       known_from)["_until"].to_list()
    for row, start, end in zip(rows, known_from, until, strict=True):
        if row["status"] != "active":
            continue
        for e in project.flow_rows([row]):
            edges.append(e)
            edge_from.append(start)
            edge_until.append(end)
    frame = project.rows_frame(edges, project.FLOW_COLUMNS).with_columns(
        pl.Series("_from", edge_from, dtype=pl.Int64), pl.Series("_until", edge_until, dtype=pl.Int64))
    out = _at_times(frame, times).cast(pl.Schema({"as_known_at": _UTC, **project.FLOW_COLUMNS}))
    return out.sort("as_known_at", "deal_id", "payer", "payee", maintain_order=True)
