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
from market.schema import ensure_schema as market_schema


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every package's tables and views if missing (idempotent DDL, outside write paths)."""
    ledger_schema(con)
    market_schema(con)
    study_schema(con)


def connect(path: str | Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open carousel's database (see :func:`core.db.connect`); a read-write open ensures the schema."""
    return _core_db.connect(path, read_only=read_only, schema=ensure_schema)


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
