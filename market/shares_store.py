"""Append share-count batches, load the shipped CSV idempotently, fetch from Yahoo, read the counts.

Entry points: :func:`load_shares_snapshot` (offline CSV, one transaction, a second load appends
nothing), :func:`refresh_shares` (any source, e.g. ``YahooSharesSource``) and :func:`share_counts`
(the latest value per ticker and as_of_date, for ``market.mcap.market_caps``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

import duckdb
import polars as pl

from core.db import transaction
from core.errors import InputError
from market.chain import SHARE_CHAIN, link_new_batch
from market.shares_sources import (
    SHARE_SCHEMA,
    SHARES_CSV,
    SharesResult,
    conform_shares,
    read_shares_csv,
)

#: Source name of batches loaded from the shipped CSV.
SHARES_SNAPSHOT = "shares_csv"
_VALUE_COLUMNS = ["shares", "shares_split_adjusted", "class_detail", "count_basis", "source_ref",
                  "filing_date", "verification"]
_DIFF_SQL = " OR ".join(f"n.{c} IS DISTINCT FROM o.{c}" for c in _VALUE_COLUMNS)


class SharesSource(Protocol):
    name: str

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, SharesResult]:
        ...


@dataclass
class SharesBatchReport:
    batch_id: int | None
    source: str
    fetched_rows: int
    appended_rows: int
    revised_rows: int
    skipped: bool = False
    message: str | None = None
    failed: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)


def append_share_batch(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, *, source: str,
                       tickers: list[str], status: str = "ok", message: str | None = None,
                       content_hash: str | None = None, fetched_at: datetime | None = None,
                       withdraw_missing: bool = False) -> SharesBatchReport:
    """Record one batch and its new or changed rows in one transaction (all or nothing).

    ``withdraw_missing`` (a complete file of ``source``, the shipped CSV): a count in force from an
    earlier batch of that source that this batch no longer holds gets a withdrawal row (its values
    again, ``withdrawn`` true), so reloading an earlier file restores exactly that file's counts.
    """
    staged = conform_shares(rows)
    dup = staged.filter(pl.struct("ticker", "as_of_date").is_duplicated())
    if dup.height:
        raise InputError(f"batch has {dup.height} rows sharing a (ticker, as_of_date), first "
                         f"{dup['ticker'][0]} {dup['as_of_date'][0]}", field="as_of_date")
    fetched_at = fetched_at or datetime.now(UTC)
    cols = ", ".join(f"n.{c}" for c in SHARE_SCHEMA)
    con.register("_staged_shares", staged.to_arrow())
    try:
        with transaction(con):
            batch_id = int(con.execute(
                "SELECT coalesce(max(batch_id), 0) + 1 FROM share_batches").fetchall()[0][0])
            revised = int(con.execute(
                f"SELECT count(*) FROM _staged_shares n JOIN shares_outstanding o "  # noqa: S608
                f"USING (ticker, as_of_date) WHERE {_DIFF_SQL}").fetchall()[0][0])
            con.execute(
                f"""
                INSERT INTO share_rows (batch_id, {", ".join(SHARE_SCHEMA)})
                SELECT ?, {cols}
                FROM _staged_shares n LEFT JOIN shares_outstanding o USING (ticker, as_of_date)
                WHERE o.ticker IS NULL OR {_DIFF_SQL}
                """,  # noqa: S608 - only constant column names are interpolated
                [batch_id],
            )
            if withdraw_missing:
                con.execute(
                    f"""
                    INSERT INTO share_rows (batch_id, {", ".join(SHARE_SCHEMA)}, withdrawn)
                    SELECT ?, {", ".join(f"o.{c}" for c in SHARE_SCHEMA)}, true
                    FROM shares_outstanding o JOIN share_batches b USING (batch_id)
                    WHERE b.source = ? AND NOT EXISTS (
                        SELECT 1 FROM _staged_shares n WHERE n.ticker = o.ticker AND n.as_of_date = o.as_of_date)
                    """,  # noqa: S608 - only constant column names are interpolated
                    [batch_id, source],
                )
            appended = int(con.execute(
                "SELECT count(*) FROM share_rows WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
            con.execute("INSERT INTO share_batches (batch_id, source, fetched_at, tickers, status, row_count, "
                        "message, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [batch_id, source, fetched_at, sorted(tickers), status, appended, message,
                         content_hash])
            link_new_batch(con, batch_id, SHARE_CHAIN)  # rows hash and chain link, in the same transaction
    finally:
        con.unregister("_staged_shares")
    return SharesBatchReport(batch_id=batch_id, source=source, fetched_rows=staged.height,
                             appended_rows=appended, revised_rows=revised, message=message)


def load_shares_snapshot(con: duckdb.DuckDBPyConnection, path: Path = SHARES_CSV) -> SharesBatchReport:
    """Validate the whole CSV, then append it as one batch; skipped if it is the file loaded last.

    Skipped only when the bytes equal the most recent batch of the shipped-file source: reloading an
    earlier file after another one (shipped, then an edited copy, then shipped again) is a change.
    A changed file appends only the rows that are new or differ from the stored latest value, and a
    withdrawal for each count of an earlier file that it no longer holds, so after any load the counts
    of that source are exactly the file's, and a re-load never duplicates a count.
    """
    path = Path(path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    last = con.execute("SELECT batch_id, content_hash FROM share_batches WHERE source = ? "
                       "ORDER BY batch_id DESC LIMIT 1", [SHARES_SNAPSHOT]).fetchall()
    hit = [last[0]] if last and last[0][1] == digest else []
    if hit:
        return SharesBatchReport(batch_id=int(hit[0][0]), source=SHARES_SNAPSHOT, fetched_rows=0,
                                 appended_rows=0, revised_rows=0, skipped=True,
                                 message="identical share-count file already loaded")
    rows = read_shares_csv(path)
    return append_share_batch(con, rows, source=SHARES_SNAPSHOT,
                              tickers=sorted(set(rows["ticker"].to_list())),
                              message=f"{rows.height} rows from {path.name}", content_hash=digest,
                              withdraw_missing=True)


def refresh_shares(con: duckdb.DuckDBPyConnection, source: SharesSource, tickers: list[str],
                   start: date, end: date | None = None) -> SharesBatchReport:
    """Fetch counts from ``source`` and append the tickers that succeeded as one batch.

    Failed tickers are reported in ``failed`` (nothing stored for them); what the Yahoo cleaning rule
    dropped is reported per ticker in ``dropped`` and summarised in the batch message.
    """
    results = source.fetch(tickers, start, end)
    ok = {t: r for t, r in results.items() if r.ok and r.rows is not None}
    failed = {t: r.error or "failed" for t, r in results.items() if not r.ok}
    dropped = {t: r.dropped for t, r in results.items() if r.dropped}
    if not ok:
        return SharesBatchReport(batch_id=None, source=source.name, fetched_rows=0, appended_rows=0,
                                 revised_rows=0, skipped=True, message="no ticker succeeded",
                                 failed=failed, dropped=dropped)
    rows = pl.concat([r.rows for r in ok.values() if r.rows is not None])
    notes = [f"{t}: {len(d)} dropped" for t, d in sorted(dropped.items())]
    rep = append_share_batch(con, rows, source=source.name, tickers=sorted(ok),
                             status="ok" if not failed else "partial",
                             message="; ".join(notes) or None)
    rep.failed, rep.dropped = failed, dropped
    return rep


def share_counts(con: duckdb.DuckDBPyConnection, tickers: list[str] | None = None, *,
                 sources: list[str] | None = None, prefer: list[str] | None = None) -> pl.DataFrame:
    """Latest count per (ticker, as_of_date) as Polars, sorted; ``tickers=None`` means all.

    ``sources`` (e.g. ``["shares_csv"]``) keeps only batches of those sources, the latest among them:
    Yahoo's daily counts and the hand-verified filings otherwise mix, the newer batch winning per date.
    ``prefer`` (e.g. ``["shares_csv"]``, what the dollar path passes) keeps every source but, on a date
    that a preferred source gives, takes its latest row whatever a newer batch of another source says:
    the filings are hand-verified and carry a filing date, Yahoo's counts fill the other dates.
    A count withdrawn by a later load of the shipped file is left out.
    A database opened read-only that predates the share tables gives an empty frame (every market cap
    then says ``count_missing``); load the counts with :func:`load_shares_snapshot`.
    """
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                         "'share_rows' AND table_schema = current_schema()").fetchall()[0][0]
    schema = {**SHARE_SCHEMA, "batch_id": pl.Int64()}
    if not exists:
        return pl.DataFrame(schema=schema)
    cols = ", ".join(f"r.{c}" for c in [*SHARE_SCHEMA, "batch_id"])
    df = con.sql(
        f"""
        SELECT {cols} FROM share_rows r JOIN share_batches b USING (batch_id)
        WHERE (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], r.ticker))
          AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], b.source))
        QUALIFY row_number() OVER (
            PARTITION BY r.ticker, r.as_of_date
            ORDER BY coalesce(list_contains(?::VARCHAR[], b.source) AND NOT coalesce(r.withdrawn, false),
                              false) DESC, r.batch_id DESC) = 1
            AND NOT coalesce(r.withdrawn, false)
        ORDER BY r.ticker, r.as_of_date
        """,  # noqa: S608 - only constant column names are interpolated
        params=[tickers, tickers, sources, sources, prefer],
    ).pl()
    return df.with_columns(pl.col("as_of_date").cast(pl.Date), pl.col("filing_date").cast(pl.Date))
