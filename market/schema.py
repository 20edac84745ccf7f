"""DDL for the append-only price store.

``price_rows`` is never updated or deleted: every fetch is a batch, and the ``prices`` view picks, per
(ticker, date), the row of the highest ``batch_id``. Older versions stay queryable (revisions).
Batch ids are assigned as ``max + 1`` inside the writing transaction (a single writer holds the refresh
lock and DuckDB's file lock), so they are gap-free and commit in order, unlike a sequence.
"""

from __future__ import annotations

import duckdb

from market.chain import backfill
from market.returns import ADJ_BASIS_BREAK_TOL
from market.shares_schema import ensure_shares_schema

_DDL = [
    """
    CREATE TABLE IF NOT EXISTS price_batches (
        batch_id     BIGINT PRIMARY KEY,
        source       VARCHAR NOT NULL,
        fetched_at   TIMESTAMPTZ NOT NULL,
        tickers      VARCHAR[] NOT NULL,
        start        DATE,
        "end"        DATE,
        status       VARCHAR NOT NULL,
        row_count    BIGINT NOT NULL,
        message      VARCHAR,
        content_hash VARCHAR
    )
    """,
    # The batch's rows hash and chain link (market.chain); older databases get the columns here and the
    # chain once, in ensure_schema.
    "ALTER TABLE price_batches ADD COLUMN IF NOT EXISTS rows_hash VARCHAR",
    "ALTER TABLE price_batches ADD COLUMN IF NOT EXISTS chain_hash VARCHAR",
    """
    CREATE TABLE IF NOT EXISTS price_rows (
        batch_id  BIGINT NOT NULL,
        ticker    VARCHAR NOT NULL,
        date      DATE NOT NULL,
        open      DOUBLE,
        high      DOUBLE,
        low       DOUBLE,
        close     DOUBLE NOT NULL,
        adj_close DOUBLE,
        volume    BIGINT,
        dividends DOUBLE,
        splits    DOUBLE
    )
    """,
    # Latest batch per (ticker, date). Measured in bench/bench_market.py against arg_max over a STRUCT
    # (a hash aggregate that also keeps NULL fields): the window + QUALIFY form is faster in DuckDB 2
    # (about 2.7x on a full aggregate over 150k rows) and a ticker filter is pushed into the partition.
    """
    CREATE OR REPLACE VIEW prices AS
    SELECT ticker, date, open, high, low, close, adj_close, volume, dividends, splits, batch_id
    FROM price_rows
    QUALIFY row_number() OVER (PARTITION BY ticker, date ORDER BY batch_id DESC) = 1
    """,
    # Same rule as market.returns.compute_returns: adj_close when both days have it and the
    # adj_close/close ratio does not fall (a fall is a basis break, see ADJ_BASIS_BREAK_TOL), else close.
    f"""
    CREATE OR REPLACE VIEW returns AS
    SELECT ticker, date, ret, ln(1 + ret) AS log_ret, basis
    FROM (
        SELECT ticker, date,
               CASE WHEN use_adj THEN adj_close / prev_adj - 1 ELSE close / prev_close - 1 END AS ret,
               CASE WHEN use_adj THEN 'adj_close' WHEN both_adj THEN 'close_adj_break' ELSE 'close' END AS basis,
               prev_close
        FROM (
            SELECT *, both_adj AND adj_close * prev_close >= prev_adj * close * (1 - {ADJ_BASIS_BREAK_TOL!r})
                      AS use_adj
            FROM (
                SELECT ticker, date, close, adj_close, prev_close, prev_adj,
                       adj_close IS NOT NULL AND prev_adj IS NOT NULL AS both_adj
                FROM (
                    SELECT ticker, date, close, adj_close,
                           lag(close) OVER w AS prev_close,
                           lag(adj_close) OVER w AS prev_adj
                    FROM prices
                    WINDOW w AS (PARTITION BY ticker ORDER BY date)
                )
            )
        )
    )
    WHERE prev_close IS NOT NULL
    """,  # noqa: S608 - the one interpolated value is the module constant ADJ_BASIS_BREAK_TOL (a float)
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the market tables and (re)create the views. Idempotent; run outside write transactions."""
    for stmt in _DDL:
        con.execute(stmt)
    ensure_shares_schema(con)  # shares outstanding live beside prices (market.shares_schema)
    backfill(con)  # a database from before the price chain: chained once (a no-op afterwards)
