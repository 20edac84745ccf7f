"""carousel's database: a DuckDB file holding the ledger, the prices and the last study's results.

Why in the shell: the ground floor (:mod:`core.db`) opens a file and knows nothing of the packages; this
module is where the application composes every package's schema into one database, so a read-write open
by any command creates the same tables and views.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb

from analysis.store import ensure_schema as study_schema
from core import db as _core_db
from core.errors import DatabaseLockedError
from ledger.schema import ensure_schema as ledger_schema
from ledger.schema import refuse_dropped
from market.schema import ensure_schema as market_schema


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every package's tables and views if missing (idempotent DDL, outside write paths).

    A ledger table dropped by hand is refused, not recreated (:func:`ledger.schema.refuse_dropped`): with
    ``derived`` when the marker records today's composed schema, which also creates the ledger's derived
    tables (a marker of an older schema may predate them).
    """
    stored = _core_db.stored_fingerprint(con)
    if stored is not None and stored == _core_db.reference_fingerprint(ensure_schema):
        refuse_dropped(con, derived=True)
    ledger_schema(con)
    market_schema(con)
    study_schema(con)


def repair_schema(con: duckdb.DuckDBPyConnection) -> None:
    """:func:`ensure_schema` that recreates dropped ledger tables and rebuilds the projections from the log
    (``carousel ledger repair``) instead of refusing. Builds the same catalog, so the same fingerprint."""
    ledger_schema(con, repair=True)
    market_schema(con)
    study_schema(con)


def connect(path: str | Path | None = None, *, read_only: bool = False,
            repair: bool = False) -> duckdb.DuckDBPyConnection:
    """Open carousel's database (see :func:`core.db.connect`); a read-write open ensures the schema
    (``repair``: :func:`repair_schema`, for ``carousel ledger repair`` only)."""
    return _core_db.connect(path, read_only=read_only, schema=repair_schema if repair else ensure_schema)


def connect_waiting(path: str | Path | None = None, *, wait: bool, poll_s: float = 0.5) -> duckdb.DuckDBPyConnection:
    """A read-write :func:`connect` that, with ``wait``, waits for another process's database lock.

    Why: ``refresh --wait`` waited only for the refresh lock, so a long ``carousel sql`` reader (or any
    writer) made it exit 3 at once. DuckDB has no lock queue, so the open is retried every ``poll_s``
    seconds; the wait is announced once on stderr.
    """
    announced = False
    while True:
        try:
            return connect(path)
        except DatabaseLockedError as exc:
            if not wait:
                raise
            if not announced:
                print(f"waiting: {exc}", file=sys.stderr, flush=True)
                announced = True
            time.sleep(poll_s)
