"""Append one fetch as one batch, atomically, and detect revisions of already-stored values.

Only rows that are new or differ from the current latest value are appended: re-fetching an unchanged
overlap adds nothing, while a revised value (e.g. Yahoo re-adjusting ``adj_close`` after a dividend) is
appended next to the old one. Both versions stay in ``price_rows``; the ``prices`` view shows the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import polars as pl

from core.db import transaction
from core.errors import InputError
from market.chain import link_new_batch

#: Canonical long frame of price rows (the Source -> store hand-off).
PRICE_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.Utf8(),
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "adj_close": pl.Float64(),
    "volume": pl.Int64(),
    "dividends": pl.Float64(),
    "splits": pl.Float64(),
}
VALUE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume", "dividends", "splits"]

#: Source name of the offline snapshot batches (``load_snapshot`` and ``SnapshotSource``).
SNAPSHOT = "snapshot"

#: Relative tolerance below which two prices are "the same value". Not 1e-9: the snapshot's files carry
#: 6 decimals (data/prices/PROVENANCE.md) while Yahoo serves float32 values printed as doubles, so the
#: same price differs by up to ~6e-8 relative (measured over the 20 files; NVDA's 4.8945 of 2018-01-02
#: is 4.894499778747559 at Yahoo, 4.5e-8), and 1e-9 reported every such day as a revision. 1e-6 also
#: absorbs 6-decimal rounding (at most 5e-7 absolute, so 1e-6 relative for any price >= $0.50; the
#: lowest 6-decimal price shipped is NVDA's $3.11) and still catches a real re-adjustment: a dividend
#: rescales adj_close by 1e-4 or more, and even NVDA's $0.01 dividend at ~$217 rescales it by 4.6e-5,
#: 46x the tolerance. It does not absorb the 2-decimal files (INTC, TSM, GOOG, ^GSPC, ^IXIC, up to ~1e-4):
#: they have no adj_close, so Yahoo's first refresh revises them anyway (NULL -> value).
REL_TOL = 1e-6

#: The snapshot has no dividends/splits columns (NULL) where Yahoo says 0.0: for these, NULL means 0.
ZERO_IF_NULL = ("dividends", "splits")


@dataclass(frozen=True)
class Revision:
    """Stored values of one ticker that a later fetch changed."""

    ticker: str
    rows: int
    first_date: date
    last_date: date
    fields: tuple[str, ...]


@dataclass
class BatchReport:
    batch_id: int | None
    source: str
    status: str
    fetched_rows: int
    appended_rows: int
    new_rows: int
    revisions: list[Revision] = field(default_factory=list)
    skipped: bool = False
    message: str | None = None
    #: Snapshot loads only: tickers left out because they already have fetched (non-snapshot) rows.
    kept_fetched: list[str] = field(default_factory=list)

    @property
    def revised_tickers(self) -> list[str]:
        return sorted(r.ticker for r in self.revisions)


def conform(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast/complete a frame to PRICE_SCHEMA (missing optional columns become NULL), sorted."""
    cols = []
    for name, dtype in PRICE_SCHEMA.items():
        if name in rows.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return rows.select(cols).sort("ticker", "date")


def _differs(col: str) -> str:
    """SQL: does staged ``n.col`` differ from stored ``o.col``? Same rule as :func:`differs`."""
    if col == "volume":  # an integer: any change is a change
        return "(n.volume IS DISTINCT FROM o.volume)"
    new, old = f"n.{col}", f"o.{col}"
    if col in ZERO_IF_NULL:
        new, old = f"coalesce({new}, 0)", f"coalesce({old}, 0)"
    return (
        f"(({new} IS NULL) <> ({old} IS NULL) OR "
        f"abs({new} - {old}) > {REL_TOL} * greatest(abs({old}), 1e-12))"
    )


def differs(col: str, new: pl.Expr, old: pl.Expr) -> pl.Expr:
    """Polars: does ``new`` differ from ``old`` in column ``col`` (NULL-aware, REL_TOL for floats)?"""
    if col == "volume":
        return new.ne_missing(old)
    new, old = new.cast(pl.Float64), old.cast(pl.Float64)
    if col in ZERO_IF_NULL:
        new, old = new.fill_null(0.0), old.fill_null(0.0)
    return (new.is_null() != old.is_null()) | (
        ((new - old).abs() > REL_TOL * pl.max_horizontal(old.abs(), pl.lit(1e-12))).fill_null(False)
    )


_DIFF_SQL = " OR ".join(_differs(c) for c in VALUE_COLUMNS)
_FIELD_FLAGS = ", ".join(f"bool_or({_differs(c)}) AS {c}" for c in VALUE_COLUMNS)


def append_batch(
    con: duckdb.DuckDBPyConnection,
    rows: pl.DataFrame,
    *,
    source: str,
    tickers: list[str],
    start: date | None,
    end: date | None,
    status: str = "ok",
    message: str | None = None,
    content_hash: str | None = None,
    fetched_at: datetime | None = None,
) -> BatchReport:
    """Record one batch and its new/changed rows in a single transaction (all or nothing)."""
    staged = conform(rows)
    dup = staged.filter(pl.struct("ticker", "date").is_duplicated())
    if dup.height:
        raise InputError(f"batch has {dup.height} rows sharing a (ticker, date), first "
                         f"{dup['ticker'][0]} {dup['date'][0]}", field="date")
    fetched_at = fetched_at or datetime.now(UTC)
    con.register("_staged_prices", staged.to_arrow())
    try:
        with transaction(con):
            # fetchall, not fetchone: DuckDB 2 keeps a half-read result open and refuses further work.
            batch_id = int(con.execute(
                "SELECT coalesce(max(batch_id), 0) + 1 FROM price_batches").fetchall()[0][0])
            # One query for all revisions: staged rows whose (ticker, date) already has a different value.
            rev = con.execute(
                f"""
                SELECT n.ticker, count(*) AS n, min(n.date), max(n.date), {_FIELD_FLAGS}
                FROM _staged_prices n JOIN prices o USING (ticker, date)
                WHERE {_DIFF_SQL}
                GROUP BY n.ticker ORDER BY n.ticker
                """  # noqa: S608 - only constant column names are interpolated
            ).fetchall()
            # No temp table (DDL stays out of the write path): insert the diff, then count it.
            con.execute(
                f"""
                INSERT INTO price_rows
                SELECT ?, n.ticker, n.date, n.open, n.high, n.low, n.close, n.adj_close, n.volume,
                       n.dividends, n.splits
                FROM _staged_prices n LEFT JOIN prices o USING (ticker, date)
                WHERE o.ticker IS NULL OR {_DIFF_SQL}
                """,  # noqa: S608 - only constant column names are interpolated
                [batch_id],
            )
            appended = int(con.execute(
                "SELECT count(*) FROM price_rows WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
            con.execute(
                "INSERT INTO price_batches (batch_id, source, fetched_at, tickers, start, \"end\", status, "
                "row_count, message, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, source, fetched_at, sorted(tickers), start, end, status, appended,
                 message, content_hash],
            )
            link_new_batch(con, batch_id)  # rows hash and chain link, in the same transaction
    finally:
        con.unregister("_staged_prices")
    revisions = [
        Revision(
            ticker=r[0], rows=int(r[1]), first_date=r[2], last_date=r[3],
            fields=tuple(c for c, flag in zip(VALUE_COLUMNS, r[4:], strict=True) if flag),
        )
        for r in rev
    ]
    revised_rows = sum(r.rows for r in revisions)
    return BatchReport(
        batch_id=batch_id, source=source, status=status, fetched_rows=staged.height,
        appended_rows=appended, new_rows=appended - revised_rows, revisions=revisions,
        message=message,
    )


def last_dates(con: duckdb.DuckDBPyConnection) -> dict[str, date]:
    """Last stored date per ticker (one query)."""
    return dict(con.execute("SELECT ticker, max(date) FROM prices GROUP BY ticker").fetchall())


def stored_rows(con: duckdb.DuckDBPyConnection, tickers: list[str]) -> pl.DataFrame:
    """Latest stored rows of the given tickers in PRICE_SCHEMA."""
    cols = ", ".join(PRICE_SCHEMA)
    df = con.sql(
        f"SELECT {cols} FROM prices WHERE list_contains(?, ticker) ORDER BY ticker, date",  # noqa: S608
        params=[tickers],
    ).pl()
    return conform(df)


def fetched_tickers(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Tickers with at least one stored row from a non-snapshot source (Yahoo), in one query.

    Snapshot rows must never be appended over these: the snapshot is older and on another adjustment
    basis, and as the latest batch it would hide the fetched values of every day the two share.
    """
    rows = con.execute(
        "SELECT DISTINCT r.ticker FROM price_rows r JOIN price_batches b USING (batch_id) "
        "WHERE b.source <> ?", [SNAPSHOT]).fetchall()
    return {r[0] for r in rows}
