"""Read-only queries over the documented views, from SQL or Python (Polars).

Views: ``deals``, ``flows``, ``companies``, ``ledger_events`` (ledger), ``prices``, ``returns`` (market),
``abnormal_returns`` and ``car`` (the last ``carousel run`` study). :func:`query` accepts only
read statements: every statement is classified by DuckDB's own parser (no regex guessing), external
file access is switched off and the configuration locked, and the connection is read-only, so a
query can never change the database or write a file. A time limit, a row limit and a memory limit
(with no spilling to disk) keep a runaway query from taking the machine or blocking writers for ever.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from carousel.db import connect
from carousel.sql_limits import DEFAULT_MAX_ROWS, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT_S
from core.db import is_storage_error
from core.errors import InputError

_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
#: Leading whitespace and SQL comments, skipped to find a statement's first keyword.
_LEADING = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)

#: A memory limit as DuckDB spells it (the defaults live in carousel.sql_limits).
_MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.I)


def _is_pivot(st: duckdb.Statement) -> bool:
    """DuckDB parses a PIVOT without an explicit IN list as MULTI (it first queries the distinct values,
    then pivots); that is still a read. Only a statement whose first keyword is PIVOT is let through."""
    text = _LEADING.sub("", st.query, count=1)
    return text[:5].upper() == "PIVOT" and (len(text) == 5 or not (text[5].isalnum() or text[5] == "_"))


def check_read_only(sql: str) -> list[duckdb.Statement]:
    """Parse ``sql`` and refuse anything but SELECT/EXPLAIN/PIVOT, naming the offending statement type."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL does not parse: {str(exc).splitlines()[0]}", field="sql") from None
    if not statements:
        raise InputError("no SQL statement given", field="sql")
    for st in statements:
        if st.type not in _READ_TYPES and not (st.type == duckdb.StatementType.MULTI and _is_pivot(st)):
            raise InputError(
                f"carousel sql is read-only: {st.type.name} statements are refused (only SELECT)", field="sql"
            )
    return statements


def query(sql: str, db: str | Path | None = None, *, timeout: float | None = DEFAULT_TIMEOUT_S,
          max_rows: int | None = DEFAULT_MAX_ROWS, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> pl.DataFrame:
    """Run one read-only query and return a Polars frame.

    Limits: ``timeout`` seconds (the query is interrupted), ``max_rows`` rows (more is an InputError,
    read as a stream so a huge result is never materialised), ``memory_limit`` for DuckDB with spilling
    to disk switched off (carousel writes no temporary files next to the database). None = no limit.
    """
    if timeout is not None and not timeout > 0:
        raise InputError(f"must be a positive number of seconds, got {timeout}", field="--timeout")
    if max_rows is not None and max_rows < 1:
        raise InputError(f"must be at least 1, got {max_rows}", field="--max-rows")
    if not _MEMORY_RE.match(memory_limit.strip()):
        raise InputError(f"{memory_limit!r} is not a size such as 500MB or 2GB", field="--memory-limit")
    statements = check_read_only(sql)
    if len(statements) != 1:
        raise InputError("give exactly one SELECT statement", field="sql")
    con = connect(db, read_only=True)
    timer = threading.Timer(timeout, con.interrupt) if timeout is not None else None
    try:
        # Memory and spilling first: external access off also locks the temp directory setting.
        con.execute("SET memory_limit = ?", [memory_limit.strip()])
        con.execute("SET temp_directory = ''")
        con.execute("SET enable_progress_bar = false")
        # No file access from user SQL (COPY TO, read_csv('/etc/...'), ATTACH), and no way to undo it.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        if timer is not None:
            timer.start()
        try:
            reader = con.sql(sql).to_arrow_reader(10_000)
            batches, n = [], 0
            for batch in reader:
                batches.append(batch)
                n += batch.num_rows
                if max_rows is not None and n > max_rows:
                    raise InputError(f"the query returns more than {max_rows:,} rows; add a LIMIT or raise "
                                     "--max-rows", field="--max-rows")
            table = pa.Table.from_batches(batches, schema=reader.schema)
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            return frame
        except duckdb.InterruptException:
            raise InputError(f"the query ran longer than {timeout:g} s and was stopped; narrow it or raise "
                             "--timeout", field="--timeout") from None
        except duckdb.OutOfMemoryException:
            raise InputError(f"the query needs more than {memory_limit} of memory; narrow it or raise "
                             "--memory-limit", field="--memory-limit") from None
        except duckdb.Error as exc:
            if is_storage_error(exc):
                raise  # the file's fault, not the query's: the CLI reports it with exit 4
            raise InputError(f"query failed: {str(exc).splitlines()[0]}", field="sql") from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()


def deals(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM deals ORDER BY deal_id", db, timeout=None, max_rows=None)


def flows(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM flows ORDER BY deal_id, payer, payee", db, timeout=None, max_rows=None)


def prices(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM prices ORDER BY ticker, date", db, timeout=None, max_rows=None)


def returns(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM returns ORDER BY ticker, date", db, timeout=None, max_rows=None)


def abnormal_returns(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM abnormal_returns ORDER BY event_id, rel_day", db, timeout=None, max_rows=None)


def car(db: str | Path | None = None) -> pl.DataFrame:
    return query("SELECT * FROM car ORDER BY event_id, \"window\"", db, timeout=None, max_rows=None)
