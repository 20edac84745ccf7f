"""DDL for the ledger: the append-only event log and its materialised projections.

``ledger_log`` is the only source of truth. ``ledger_companies``, ``ledger_deals`` and ``ledger_flows``
are projections: derived state that :mod:`ledger.log` rewrites, per affected stream, inside the same
transaction as the append (so readers never see a log and a projection that disagree). The SQL views
``companies``, ``deals``, ``flows`` and ``ledger_events`` are the documented query surface.

``ledger_head`` is one row, (position, hash) of the last event, that the writer updates in the same
transaction as every append. The hash chain alone cannot notice that its *last* events were deleted (what
remains is a valid, shorter chain); ``verify`` compares the log's head with this row, so a deleted head
event is caught without an external anchor. It is a consistency check, not a security boundary: someone
who can rewrite the file can rewrite this row too, which is what published anchors are for.

``ledger_log_keys`` is a lookup aid of the writer, one row per event: its position and the 64-bit MD5 keys
of its event id and stream id (:func:`ledger.log.id_key`). Why: the append must find which of a batch's
ids and streams the log already holds; scanning the id and stream text columns (FSST-compressed strings)
cost 6-10 ms each per batch at 100,000 events and grew with the log, a scan of two integer columns is a
tenth of that. It is derived data (rebuilt from the log when its row count disagrees, ``ledger.log``) and
never trusted for a verdict: every hit is compared on the real strings, a stream whose versions come back
with a hole is looked up by the full scan, and the log's own UNIQUE constraints refuse a duplicate that a
wrong key hid.

``ledger_projection_digest`` is one row: the digest of the projection rows the log gives at the head,
sealed to the head's hash (:mod:`ledger.digest`). The writer advances it in the same transaction as every
append; ``verify`` recomputes it over the stored tables in SQL instead of replaying the log.
"""

from __future__ import annotations

import json

import duckdb

from core.db import stored_fingerprint
from core.errors import ConflictError
from ledger.log import (
    REQUIRED_TABLES,
    head_summary,
    rebuild_projections,
    record_log_digest,
    seed_head,
    sync_log_keys,
)

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
        version             BIGINT NOT NULL,
        payer_amount_usd    DECIMAL(38, 2)
    )
    """,
    # The writer's integer lookup keys of ledger_log (see the module doc); no index: a scan of two
    # BIGINT columns is cheaper than keeping an ART up to date in every append.
    """
    CREATE TABLE IF NOT EXISTS ledger_log_keys (
        position   BIGINT NOT NULL,
        event_key  UBIGINT NOT NULL,
        stream_key UBIGINT NOT NULL
    )
    """,
    # Databases created before the column existed (no event of theirs sets it, so NULL is their value).
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS payer_amount_usd DECIMAL(38, 2)",
    # Timing evidence (ledger.timing): older databases hold no such event, so NULL is their value.
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS first_report_date DATE",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS first_report_time_et VARCHAR",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS first_report_session VARCHAR",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS timing_time_et VARCHAR",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS timing_session VARCHAR",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS timing_evidence_kind VARCHAR",
    "ALTER TABLE ledger_deals ADD COLUMN IF NOT EXISTS timing_confidence VARCHAR",
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
        counts_toward_total BOOLEAN NOT NULL,
        duplicate_report    BOOLEAN
    )
    """,
    # Older databases: the column arrives empty and ensure_schema refills it by a projection rebuild.
    "ALTER TABLE ledger_flows ADD COLUMN IF NOT EXISTS duplicate_report BOOLEAN",
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


_HEAD_DDL = """
    CREATE TABLE IF NOT EXISTS ledger_head (
        position BIGINT NOT NULL,
        hash     VARCHAR NOT NULL
    )
"""


#: One row: the digest of the projection rows the log gives at the recorded head, sealed to it
#: (:mod:`ledger.digest`); the writer advances it with every append, verify recomputes it in SQL.
_DIGEST_DDL = """
    CREATE TABLE IF NOT EXISTS ledger_projection_digest (
        projections VARCHAR,
        seal        VARCHAR
    )
"""


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema() AND table_catalog = current_database()", [name]
    ).fetchall()[0][0])


def _digest_of_other_duckdb(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute("SELECT projections FROM ledger_projection_digest").fetchall()
    if len(rows) != 1 or rows[0][0] is None:
        return False
    try:
        return bool(json.loads(rows[0][0]).get("duckdb") != duckdb.__version__)
    except (ValueError, AttributeError):
        return False


#: Derived ledger tables newer than the schema marker's fingerprint: a database whose marker records an
#: older schema may lack them legitimately (they are then built from the log); one whose marker records
#: today's schema may not (:func:`refuse_dropped` with ``derived=True``).
DERIVED_TABLES = ("ledger_projection_digest", "ledger_log_keys")


def dropped_tables(con: duckdb.DuckDBPyConnection, *, derived: bool = False) -> list[str]:
    """The ledger tables missing from a database whose schema marker records that carousel's schema ran.

    Why the marker decides: every carousel that records a schema fingerprint (:func:`core.db.stored_fingerprint`)
    creates :data:`ledger.log.REQUIRED_TABLES`, so one of them missing there was dropped outside carousel,
    not "a database older than the table". ``derived`` adds :data:`DERIVED_TABLES`; the shell passes it
    when the recorded fingerprint is today's schema (which creates them). A database without a recorded
    fingerprint (made before fingerprints, or not carousel's schema yet) has nothing dropped.
    """
    if stored_fingerprint(con) is None:
        return []
    want = REQUIRED_TABLES + (DERIVED_TABLES if derived else ())
    return [t for t in want if not _has_table(con, t)]


def refuse_dropped(con: duckdb.DuckDBPyConnection, *, derived: bool = False) -> None:
    """ConflictError (exit 5) naming the dropped ledger tables (:func:`dropped_tables`), if any.

    Why refuse rather than recreate: the schema setup would recreate a dropped ``ledger_head`` and rebuild
    the projections from the log (what it does for a database older than the head), which also erases
    a projection edited before the drop, the evidence ``verify`` reports. Repair is explicit:
    ``carousel ledger repair``.
    """
    dropped = dropped_tables(con, derived=derived)
    if not dropped:
        return
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    where = f"database {path[0][0]}" if path and path[0][0] else "the database"
    raise ConflictError(
        f"{where}: ledger table(s) {', '.join(dropped)} missing although carousel's schema was applied to it "
        "(dropped outside carousel); nothing was written. `carousel ledger verify` shows what else differs "
        "from the log; `carousel ledger repair` rebuilds the ledger's tables from the log"
    )


def ensure_schema(con: duckdb.DuckDBPyConnection, *, repair: bool = False) -> None:
    """Create the ledger tables and views. Idempotent; runs at read-write open, never in a write.

    A ledger table dropped from a database whose marker records an applied schema is refused
    (:func:`refuse_dropped`) unless ``repair`` (``carousel ledger repair``): then the dropped tables are
    created again and the projections rebuilt from the log.

    A database written by a carousel older than ``ledger_head`` holds projections folded by the older
    rule (amendments in log order, corrections over them), which ``ledger.project`` no longer gives: they
    are rebuilt from the log once, before ``ledger_head`` is created (so a failed rebuild is retried at the
    next open). Otherwise ``ledger_deals`` would keep the old values until the deal's next event, and
    ``verify`` would report them as drift. The same rebuild fills ``ledger_flows.duplicate_report`` in a
    database older than that column.
    """
    if not repair:
        refuse_dropped(con)
    upgrading = repair or not _has_table(con, "ledger_head")
    new_digest = not _has_table(con, "ledger_projection_digest")
    for stmt in _DDL:
        con.execute(stmt)
    con.execute(_DIGEST_DDL)
    # Decided from the data, not from the column's presence: the ALTER above commits on its own, so a
    # rebuild that failed after it would otherwise never be retried. Every row the writer inserts has the
    # mark, so a NULL means "written by an older carousel, not yet rebuilt".
    upgrading = upgrading or bool(
        con.execute("SELECT count(*) FROM ledger_flows WHERE duplicate_report IS NULL").fetchall()[0][0]
    )
    if upgrading and head_summary(con)[0]:
        rebuild_projections(con)  # records the digest too
    elif new_digest or _digest_of_other_duckdb(con):
        # A database older than the digest, or one whose digest another DuckDB version computed: fold its
        # log once (its stored tables are left as they are, so an edit made before this open still shows
        # at the next verify).
        record_log_digest(con)
    # A database older than the lookup keys (or whose keys were edited away): one key row per event.
    sync_log_keys(con)
    con.execute(_HEAD_DDL)
    # Databases created before ledger_head existed (and new ones): record the current head once, so the
    # writer only ever UPDATEs the single row.
    seed_head(con)
