"""Read API of the ledger: Polars frames with the columns documented in DEVELOPERS.md.

Current state comes from the materialised projection tables (one query each); as-of questions fold the
log in DuckDB SQL (:mod:`ledger.asof`), because a past state is by definition not what the projection
tables hold now. A log holding an event version the SQL fold does not read is replayed in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import polars as pl

from ledger import asof, log, project


def _state(con: duckdb.DuckDBPyConnection, as_known_at: dt.datetime | None, in_effect_on: dt.date | None) -> project.LedgerState:
    """The Python replay (the reference the SQL fold is tested against, and its fallback)."""
    return project.fold(log.read(con, as_known_at=as_known_at), in_effect_on=in_effect_on)


def _as_of_deals(con: duckdb.DuckDBPyConnection, as_known_at: dt.datetime | None,
                 in_effect_on: dt.date | None) -> pl.DataFrame:
    if as_known_at is not None and as_known_at.tzinfo is None:
        raise ValueError("as_known_at must be timezone-aware")
    if not asof.sql_readable(con):
        return project.deals_frame(_state(con, as_known_at, in_effect_on))
    cut = None if as_known_at is None else asof.epoch_us(as_known_at)
    return asof.deals_at(con, cut, in_effect_on)


def _frame(con: duckdb.DuckDBPyConnection, sql: str, schema: dict[str, object]) -> pl.DataFrame:
    return con.sql(sql).pl().cast(schema)


def companies(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return _frame(con, "SELECT * FROM ledger_companies ORDER BY company_id", project.COMPANY_COLUMNS)


def deals(
    con: duckdb.DuckDBPyConnection,
    *,
    as_known_at: dt.datetime | None = None,
    in_effect_on: dt.date | None = None,
) -> pl.DataFrame:
    """Every deal (active and retracted), sorted by deal_id."""
    if as_known_at is None and in_effect_on is None:
        # Columns named, not *: a database of an older carousel opened read-only lacks the newer ones.
        select = ", ".join(log.stored_columns(con, "ledger_deals", project.DEAL_COLUMNS))
        return _frame(con, f"SELECT {select} FROM ledger_deals ORDER BY deal_id", project.DEAL_COLUMNS)  # noqa: S608
    return _as_of_deals(con, as_known_at, in_effect_on)


def timing_dates(con: duckdb.DuckDBPyConnection, *, as_known_at: dt.datetime | None = None) -> pl.DataFrame:
    """DataFrame[deal_id, timing_for_date]: the announcement date the deal's timing evidence in effect (its
    latest DealTimingEvidenced, as the fold applies them) was recorded for.

    Why: the deal's ``timing_*`` columns are a time of day without a date. After a correction or amendment
    of ``announced_date`` they describe the old date; :func:`analysis.date_basis.apply_date_basis` reads
    them only where this date is the deal's own (one query over the log's evidence events).
    """
    if as_known_at is not None and as_known_at.tzinfo is None:
        raise ValueError("as_known_at must be timezone-aware")
    cut = "" if as_known_at is None else "AND recorded_at <= ?"
    rows = con.execute(
        "SELECT payload->>'deal_id', arg_max(payload->>'announced_date', position) FROM ledger_log "  # noqa: S608
        f"WHERE event_type = 'DealTimingEvidenced' {cut} GROUP BY 1 ORDER BY 1",
        [] if as_known_at is None else [as_known_at],
    ).fetchall()
    return pl.DataFrame(rows, schema={"deal_id": pl.Utf8, "timing_for_date": pl.Utf8}, orient="row").with_columns(
        pl.col("timing_for_date").str.to_date(strict=False))


def deals_with_timing_dates(con: duckdb.DuckDBPyConnection, *,
                            as_known_at: dt.datetime | None = None) -> pl.DataFrame:
    """:func:`deals` with ``timing_for_date`` (:func:`timing_dates`) joined: what a study's t0 is built from
    (the study's inputs and the common shock read deals through here, so both apply one timing rule)."""
    return deals(con, as_known_at=as_known_at).join(
        timing_dates(con, as_known_at=as_known_at), on="deal_id", how="left")


def flows(
    con: duckdb.DuckDBPyConnection,
    *,
    as_known_at: dt.datetime | None = None,
    in_effect_on: dt.date | None = None,
) -> pl.DataFrame:
    """Payer -> payee edges of active deals; ``amount_usd`` is None when undisclosed (never 0)."""
    if as_known_at is None and in_effect_on is None:
        select = ", ".join(log.stored_columns(con, "ledger_flows", project.FLOW_COLUMNS, alias="f"))
        sql = (f"SELECT {select} FROM ledger_flows f JOIN ledger_deals d USING (deal_id) "  # noqa: S608
               "WHERE d.status = 'active' ORDER BY f.deal_id, f.payer, f.payee")
        return _frame(con, sql, project.FLOW_COLUMNS)
    return asof.flows_of(_as_of_deals(con, as_known_at, in_effect_on))


def deals_as_known_at_many(con: duckdb.DuckDBPyConnection, times: Sequence[dt.datetime] | pl.Series) -> pl.DataFrame:
    """Every deal as known at each of ``times`` (tz-aware) in one pass: one frame, ``as_known_at`` first,
    then the columns of :func:`deals` (active and retracted deals; a deal not yet recorded at a time has
    no row for it), sorted by (as_known_at, deal_id). Equals ``deals(con, as_known_at=t)`` for every t.
    Every version of every deal from one SQL pass over the log, then an interval join (:mod:`ledger.asof`)."""
    return _many_deals(con, times)


def flows_as_known_at_many(con: duckdb.DuckDBPyConnection, times: Sequence[dt.datetime] | pl.Series) -> pl.DataFrame:
    """Edges of the active deals as known at each of ``times``: ``as_known_at`` then the columns of
    :func:`flows`; equals ``flows(con, as_known_at=t)`` for every t."""
    return asof.flows_of(_many_deals(con, times), ("as_known_at",))


def deals_in_effect_many(con: duckdb.DuckDBPyConnection, days: Sequence[dt.date], *,
                         as_known_at: dt.datetime | None = None) -> pl.DataFrame:
    """Every deal in effect on each of ``days`` as known at ``as_known_at`` (None: all records), in one
    pass: the columns of :func:`deals` then ``known_on``, sorted by (known_on, deal_id); equals
    ``deals(con, as_known_at=as_known_at, in_effect_on=d)`` for every d (the bitemporal view of the
    ledger on many valid dates at one transaction time, e.g. each announcement day as recorded by T)."""
    if as_known_at is not None and as_known_at.tzinfo is None:
        raise ValueError("as_known_at must be timezone-aware")
    if asof.sql_readable(con):
        return asof.deals_in_effect_many(con, days, None if as_known_at is None else asof.epoch_us(as_known_at))
    parts = [project.deals_frame(_state(con, as_known_at, d)).with_columns(pl.lit(d, dtype=pl.Date).alias("known_on"))
             for d in sorted(set(days))]
    schema = pl.Schema({**project.DEAL_COLUMNS, "known_on": pl.Date})
    return pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)


def flows_in_effect_many(con: duckdb.DuckDBPyConnection, days: Sequence[dt.date], *,
                         as_known_at: dt.datetime | None = None) -> pl.DataFrame:
    """Edges of the active deals of :func:`deals_in_effect_many`: the columns of :func:`flows` then
    ``known_on``, sorted by (known_on, deal_id, payer, payee)."""
    return edges_by_day(deals_in_effect_many(con, days, as_known_at=as_known_at))


def edges_by_day(deals: pl.DataFrame) -> pl.DataFrame:
    """The flows of a frame of :func:`deals_in_effect_many` (``known_on`` last, as there)."""
    f = asof.flows_of(deals, ("known_on",))
    return f.select(*project.FLOW_COLUMNS, "known_on")


def _many_deals(con: duckdb.DuckDBPyConnection, times: Sequence[dt.datetime] | pl.Series) -> pl.DataFrame:
    if asof.sql_readable(con):
        return asof.deals_many(con, times)
    t = asof._times_frame(times)  # the Python replay, one fold per instant (validates the times too)
    parts = [project.deals_frame(_state(con, at, None)).select(pl.lit(at).alias("as_known_at"), pl.all())
             for at in t["as_known_at"].to_list()]
    schema = pl.Schema({"as_known_at": pl.Datetime("us", "UTC"), **project.DEAL_COLUMNS})
    return pl.concat(parts).cast(schema).sort("as_known_at", "deal_id") if parts else pl.DataFrame(schema=schema)


def history(con: duckdb.DuckDBPyConnection, deal_id: str) -> list[dict[str, object]]:
    """The event trail of one deal, oldest first."""
    from ledger.model import deal_stream

    return [
        {"position": e.position, "version": e.stream_version, "type": e.event_type,
         "recorded_at_us": e.recorded_at_us, "payload": e.payload}
        for e in log.read(con, streams=[deal_stream(deal_id)])
    ]
