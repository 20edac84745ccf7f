"""Read-only queries over the documented views, from SQL or Python (Polars).

Views: ``deals``, ``flows``, ``companies``, ``ledger_events`` (ledger), ``prices``, ``returns`` (market),
``abnormal_returns`` and ``car`` (the last ``carousel run`` study). :func:`query` accepts only
read statements: every statement is classified by DuckDB's own parser (no regex guessing), external
file access is switched off and the configuration locked, and the connection is read-only, so a
query can never change the database or write a file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from carousel.db import connect
from core.db import is_storage_error
from core.errors import InputError

_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}

def check_read_only(sql: str) -> list[duckdb.Statement]:
    """Parse ``sql`` and refuse anything but SELECT/EXPLAIN, naming the offending statement type."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL does not parse: {str(exc).splitlines()[0]}", field="sql") from None
    if not statements:
        raise InputError("no SQL statement given", field="sql")
    for st in statements:
        if st.type not in _READ_TYPES:
            raise InputError(
                f"carousel sql is read-only: {st.type.name} statements are refused (only SELECT)", field="sql"
            )
    return statements


def query(sql: str, db: str | Path | None = None) -> pl.DataFrame:
    """Run one read-only query and return a Polars frame."""
    statements = check_read_only(sql)
    if len(statements) != 1:
        raise InputError("give exactly one SELECT statement", field="sql")
    con = connect(db, read_only=True)
    try:
        # No file access from user SQL (COPY TO, read_csv('/etc/...'), ATTACH), and no way to undo it.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            return con.sql(sql).pl()
        except duckdb.Error as exc:
            if is_storage_error(exc):
                raise  # the file's fault, not the query's: the CLI reports it with exit 4
            raise InputError(f"query failed: {str(exc).splitlines()[0]}", field="sql") from None
    finally:
        con.close()


def deals(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM deals ORDER BY deal_id", db)


def flows(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM flows ORDER BY deal_id, payer, payee", db)


def prices(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM prices ORDER BY ticker, date", db)


def returns(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM returns ORDER BY ticker, date", db)


def abnormal_returns(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM abnormal_returns ORDER BY event_id, rel_day", db)


def car(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM car ORDER BY event_id, \"window\"", db)
