"""DuckDB connections for every part of carousel.

Why this module exists: DuckDB allows one read-write process *or* many read-only processes per file,
and it has sharp edges around transactions (an error inside ``BEGIN`` makes a later ``COMMIT`` a silent
no-op). All connections are opened here so that lock conflicts, missing files and corrupt files become
:class:`~core.errors.CarouselError` subclasses with clear messages, and all writes go through
:func:`transaction`, which always rolls back and re-raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from core.errors import DatabaseError, DatabaseLockedError
from core.paths import resolve_db

#: Creates the tables and views a read-write connection needs (idempotent DDL). The shell composes it from
#: every package's schema; the ground floor only calls it, so it imports nothing above itself.
SchemaHook = Callable[[duckdb.DuckDBPyConnection], None]

_PID_RE = re.compile(r"PID (\d+)")


def connect(
    path: str | Path | None = None, *, read_only: bool = False, schema: SchemaHook | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the database, translating DuckDB's errors into carousel errors.

    Read-only opens require the file to exist (DuckDB would otherwise fail with a less clear message).
    A read-write open creates the file and runs ``schema`` on it (DDL runs here, never inside a write
    transaction).
    """
    db = resolve_db(path)
    if read_only and not db.exists():
        raise DatabaseError(
            f"database {db} does not exist; create it with `carousel ledger import` or `carousel run`"
        )
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        msg = str(exc)
        # DuckDB's wording; a bare "lock" would also match "block" in a damaged file's read error.
        if "could not set lock" in msg.lower():
            m = _PID_RE.search(msg)
            holder = f" (pid {m.group(1)})" if m else ""
            raise DatabaseLockedError(
                f"database {db} is in use by another carousel process{holder}; "
                "wait for it to finish or use another --db"
            ) from None
        raise DatabaseError(f"cannot open database {db}: {_first_line(msg)}") from None
    except (duckdb.SerializationException, duckdb.InvalidInputException, duckdb.InternalException) as exc:
        raise DatabaseError(
            f"database {db} is corrupt or not a DuckDB file: {_first_line(str(exc))}"
        ) from None
    except duckdb.Error as exc:
        raise DatabaseError(f"cannot open database {db}: {_first_line(str(exc))}") from None
    global last_opened
    last_opened = db
    try:
        _check_not_truncated(con, db)
    except BaseException:
        con.close()
        raise
    if not read_only and schema is not None:
        try:
            schema(con)
        except BaseException:
            con.close()
            raise
    return con


#: The database most recently opened by :func:`connect`, so that a storage error surfacing later (in a
#: query) can still name the file.
last_opened: Path | None = None

#: DuckDB's file starts with three 4 KiB headers (main header and two alternating database headers).
_HEADER_BYTES = 3 * 4096


def _check_not_truncated(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """DatabaseError if the file is shorter than the blocks the database uses.

    Why: DuckDB reads blocks lazily, so a truncated file (a copy cut short, a full disk) opens fine and
    fails only at the first query that touches a missing block, possibly after a command has already
    reported progress. Skipped while a WAL file exists: replaying it allocates blocks in memory that are
    not on disk yet.

    The bound is the larger of two sound lower bounds, never the header's ``total_blocks``: DuckDB trims
    trailing free blocks off the file at checkpoint while the header still counts them, so that total
    refused healthy files. (1) ``used_blocks``: every used block has its own slot in the file. (2) the
    highest block id any table's data sits in (``pragma_storage_info``; block id n lives at byte
    header + n * block_size): free blocks in the *middle* of the file (after a drop or a rewrite) make
    (1) alone miss a cut that removes used blocks behind the hole. Catalog and free-list blocks are not
    in (2), only in (1). About 20 ms for carousel's nine tables.
    """
    if Path(f"{db}.wal").exists() or not db.is_file():
        return
    try:
        size = con.execute(
            "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = "
            "current_database()"
        ).fetchall()  # fetchall: DuckDB 2 refuses new work while a result is unfinished
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = current_schema()"
        ).fetchall()]
        highest = -1
        for table in tables:
            top = con.execute("SELECT max(block_id) FROM pragma_storage_info(?)", [table]).fetchall()[0][0]
            if top is not None:
                highest = max(highest, int(top))
    except duckdb.Error as exc:
        raise DatabaseError(f"database {db} is corrupt: {_first_line(str(exc))}") from None
    if not size:
        return
    block_size, used = int(size[0][0]), int(size[0][1])
    need = _HEADER_BYTES + block_size * max(used, highest + 1)
    have = db.stat().st_size
    if have < need:
        raise DatabaseError(
            f"database {db} is truncated: {have:,} bytes on disk, its blocks need at least {need:,}; "
            "restore it from a backup or rebuild it with `carousel run`"
        )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` ... ``COMMIT``; on any error ``ROLLBACK`` and re-raise.

    DuckDB quirk: after an error inside ``BEGIN`` a later ``COMMIT`` returns OK but writes nothing, so
    silently continuing would lose data. A concurrent duplicate key only fails at ``COMMIT``
    (TransactionException); that too propagates after the rollback.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        # The transaction may already have been aborted by DuckDB itself.
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def is_storage_error(exc: BaseException) -> bool:
    """True if a DuckDB error is the database file's fault (a damaged block, a disk error), not the query's.

    DuckDB raises short reads as IOException, broken invariants as InternalException or
    FatalException, a damaged header or catalog as SerializationException, and a block checksum
    mismatch as a plain ``duckdb.Error`` whose message *starts* with "Corrupt database file". Only the
    start is tested: "corrupt" anywhere in the text misfired on user input quoted back in an ordinary
    error (``SELECT 'corrupt'::INT`` is a Conversion Error, whose message starts with that name).
    """
    if isinstance(exc, (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException,
                        duckdb.FatalException)):
        return True
    return str(exc).lstrip().startswith("Corrupt database file")


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else msg
