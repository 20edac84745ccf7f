"""carousel's database: a DuckDB file holding the ledger, the prices and the last study's results.

Why in the shell: the ground floor (:mod:`core.db`) opens a file and knows nothing of the packages; this
module is where the application composes every package's schema into one database, so a read-write open
by any command creates the same tables and views.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis.store import ensure_schema as study_schema
from core import db as _core_db
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
