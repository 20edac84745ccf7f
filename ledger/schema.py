"""DDL for the ledger: the append-only event log and its materialised projections.

``ledger_log`` is the only source of truth. ``ledger_companies``, ``ledger_deals`` and ``ledger_flows``
are projections: derived state that :mod:`ledger.log` rewrites, per affected stream, inside the same
transaction as the append (so readers never see a log and a projection that disagree). The SQL views
``companies``, ``deals``, ``flows`` and ``ledger_events`` are the documented query surface.
"""

from __future__ import annotations

import duckdb

_DDL = [
    """
    CREATE TABLE IF NOT EXISTS ledger_log (
        position       BIGINT PRIMARY KEY,
        event_id       VARCHAR NOT NULL UNIQUE,
        stream_id      VARCHAR NOT NULL,
        stream_version BIGINT NOT NULL,
        event_type     VARCHAR NOT NULL,
        schema_version INTEGER NOT NULL,
        payload        VARCHAR NOT NULL,
        recorded_at    TIMESTAMPTZ NOT NULL,
        prev_hash      VARCHAR NOT NULL,
        hash           VARCHAR NOT NULL,
        UNIQUE (stream_id, stream_version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_companies (
        company_id VARCHAR PRIMARY KEY,
        name       VARCHAR NOT NULL,
        listed     BOOLEAN NOT NULL,
        tickers    VARCHAR[] NOT NULL,
        exchanges  VARCHAR[] NOT NULL,
        currencies VARCHAR[] NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_deals (
        deal_id             VARCHAR PRIMARY KEY,
        contract_id         VARCHAR NOT NULL,
        status              VARCHAR NOT NULL,
        announced_date      DATE,
        announced_time_et   VARCHAR,
        session             VARCHAR NOT NULL,
        payers              VARCHAR[] NOT NULL,
        payees              VARCHAR[] NOT NULL,
        amount_usd          DECIMAL(38, 2),
        amount_kind         VARCHAR NOT NULL,
        deal_type           VARCHAR NOT NULL,
        horizon             VARCHAR,
        tickers             VARCHAR[] NOT NULL,
        counts_toward_total BOOLEAN NOT NULL,
        title               VARCHAR,
        confidence          VARCHAR,
        version             BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_flows (
        deal_id             VARCHAR NOT NULL,
        contract_id         VARCHAR NOT NULL,
        payer               VARCHAR NOT NULL,
        payee               VARCHAR NOT NULL,
        amount_usd          DOUBLE,
        amount_kind         VARCHAR NOT NULL,
        deal_type           VARCHAR NOT NULL,
        announced_date      DATE,
        counts_toward_total BOOLEAN NOT NULL
    )
    """,
    """
    CREATE OR REPLACE VIEW ledger_events AS
    SELECT position, event_id, stream_id, stream_version, event_type, schema_version,
           recorded_at, payload, prev_hash, hash
    FROM ledger_log
    """,
    "CREATE OR REPLACE VIEW companies AS SELECT * FROM ledger_companies",
    "CREATE OR REPLACE VIEW deals AS SELECT * FROM ledger_deals WHERE status = 'active'",
    """
    CREATE OR REPLACE VIEW flows AS
    SELECT f.* FROM ledger_flows f JOIN ledger_deals d USING (deal_id) WHERE d.status = 'active'
    """,
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger tables and views. Idempotent; runs at read-write open, never in a write."""
    for stmt in _DDL:
        con.execute(stmt)
