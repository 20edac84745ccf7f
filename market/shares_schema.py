"""DDL for the append-only store of shares outstanding, beside the price store.

Same design as ``market.schema``: every load or fetch is one batch in ``share_batches``; its new or
changed counts are appended to ``share_rows`` and never updated or deleted; the ``shares_outstanding``
view shows, per (ticker, as_of_date), the row of the highest ``batch_id`` unless that row is a
withdrawal (``withdrawn``: a later load of the shipped file no longer holds the count). Older values stay queryable,
so a count that a later source revised is still there to check.

Two counts per row because the count and the price must be on the same share basis:
``shares`` is on the basis in force on ``as_of_date`` (what the filing printed); ``shares_split_adjusted``
is on the basis of the split-adjusted prices (every later split applied), the one to multiply by a
``close`` from the ``prices`` view.
"""

from __future__ import annotations

import duckdb

from market.chain import SHARE_CHAIN, backfill

_DDL = [
    """
    CREATE TABLE IF NOT EXISTS share_batches (
        batch_id     BIGINT PRIMARY KEY,
        source       VARCHAR NOT NULL,
        fetched_at   TIMESTAMPTZ NOT NULL,
        tickers      VARCHAR[] NOT NULL,
        status       VARCHAR NOT NULL,
        row_count    BIGINT NOT NULL,
        message      VARCHAR,
        content_hash VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS share_rows (
        batch_id              BIGINT NOT NULL,
        ticker                VARCHAR NOT NULL,
        as_of_date            DATE NOT NULL,
        shares                BIGINT NOT NULL,
        shares_split_adjusted BIGINT NOT NULL,
        class_detail          VARCHAR,
        count_basis           VARCHAR,
        source_ref            VARCHAR,
        filing_date           DATE,
        verification          VARCHAR,
        withdrawn             BOOLEAN DEFAULT false
    )
    """,
    # Stores created before withdrawals (a later shipped file no longer holding a count): widen in place.
    "ALTER TABLE share_rows ADD COLUMN IF NOT EXISTS withdrawn BOOLEAN DEFAULT false",
    # The batch's rows hash and chain link (market.chain.SHARE_CHAIN); older databases get the columns
    # here and the chain once, in ensure_shares_schema.
    "ALTER TABLE share_batches ADD COLUMN IF NOT EXISTS rows_hash VARCHAR",
    "ALTER TABLE share_batches ADD COLUMN IF NOT EXISTS chain_hash VARCHAR",
    """
    CREATE OR REPLACE VIEW shares_outstanding AS
    SELECT ticker, as_of_date, shares, shares_split_adjusted, class_detail, count_basis, source_ref,
           filing_date, verification, batch_id
    FROM share_rows
    QUALIFY row_number() OVER (PARTITION BY ticker, as_of_date ORDER BY batch_id DESC) = 1
        AND NOT coalesce(withdrawn, false)
    """,
]


def ensure_shares_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the share tables and (re)create the view. Idempotent; run outside write transactions."""
    for stmt in _DDL:
        con.execute(stmt)
    backfill(con, SHARE_CHAIN)  # a database from before the share chain: chained once (a no-op afterwards)
