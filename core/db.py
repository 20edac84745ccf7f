"""DuckDB connections for every part of carousel.

Why this module exists: DuckDB allows one read-write process *or* many read-only processes per file,
and it has sharp edges around transactions (an error inside ``BEGIN`` makes a later ``COMMIT`` a silent
no-op). All connections are opened here so that lock conflicts, missing files and corrupt files become
:class:`~core.errors.CarouselError` subclasses with clear messages, and all writes go through
:func:`transaction`, which always rolls back and re-raises.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

import duckdb

from core.errors import DatabaseError, DatabaseLockedError, InputError
from core.paths import resolve_db

#: Creates the tables and views a read-write connection needs (idempotent DDL). The shell composes it from
#: every package's schema; the ground floor only calls it, so it imports nothing above itself.
SchemaHook = Callable[[duckdb.DuckDBPyConnection], None]

_PID_RE = re.compile(r"PID (\d+)")


#: Settings of every connection. No extension is ever installed or loaded behind the user's back: DuckDB
#: would otherwise fetch ``sqlite_scanner`` from the internet (and create ``~/.duckdb/``) to open an
#: SQLite file given as ``--db``, and load native code from it.
CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}

#: carousel's marker: a one-row table written when carousel creates a database (or adopts one it created
#: before the marker existed). A file without it is not carousel's and is never written to.
MARKER_TABLE = "carousel_schema"
MARKER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (app VARCHAR NOT NULL, schema_version INTEGER NOT NULL, "
    "marked_at TIMESTAMPTZ NOT NULL, how VARCHAR NOT NULL, fingerprint VARCHAR)"
)
#: Markers written before the ``fingerprint`` column existed gain it when the schema is next applied.
_MARKER_FINGERPRINT_DDL = f"ALTER TABLE {MARKER_TABLE} ADD COLUMN IF NOT EXISTS fingerprint VARCHAR"
_MARKER_COLUMNS = "(app, schema_version, marked_at, how)"
#: Bumped when a change to the stored format needs a newer carousel to read it (2: ``study_car.p_holm``/
#: ``p_bh``; 3: share batches carry a hash chain and the study stamp the share head; an older carousel
#: would append unchained share batches, which verify reports as tampering). Whether an existing database
#: needs the schema DDL is decided by the catalog fingerprint (:func:`schema_is_current`), not by this
#: number.
SCHEMA_VERSION = 3
_APP = "carousel"
#: Bytes 8..12 of every DuckDB file (after the 8-byte checksum of the main header).
_DUCKDB_MAGIC = b"DUCK"


def connect(
    path: str | Path | None = None, *, read_only: bool = False, schema: SchemaHook | None = None
) -> duckdb.DuckDBPyConnection:
    """Open carousel's database, translating DuckDB's errors into carousel errors.

    Read-only opens require the file to exist (DuckDB would otherwise fail with a less clear message).
    A read-write open of a missing file creates it with the marker and ``schema`` (see
    :func:`_create`); a read-write open runs ``schema`` (DDL runs here, never inside a write
    transaction) unless the schema is current (:func:`schema_is_current`): then the open writes nothing,
    so a command that turns out to have nothing to write (a no-op load) leaves the file's bytes and
    modification time alone, and works on a full disk. Any existing file must be carousel's (:func:`_check_marker`) before anything is
    written to it: a non-DuckDB file is refused from its first bytes, before DuckDB sees it.
    """
    db = resolve_db(path)
    if str(db) == ":memory:":
        con = duckdb.connect(":memory:", config=CONNECT_CONFIG)
        if schema is not None:
            con.execute(MARKER_DDL)
            schema(con)
        return con
    if read_only and not db.exists():
        raise DatabaseError(
            f"database {db} does not exist; create it with `carousel ledger import` or `carousel run`"
        )
    if db.exists():
        _check_file(db)
    elif not read_only:
        _create(db, schema)
    con = _open(db, read_only)
    global last_opened
    last_opened = db
    try:
        _check_not_truncated(con, db)
        _check_marker(con, db, read_only=read_only, schema=schema)
        if not read_only and schema is not None and not schema_is_current(con, schema):
            try:
                schema(con)
                _record_fingerprint(con, reference_fingerprint(schema))
            except duckdb.Error as exc:
                if is_storage_error(exc) or is_disk_full(exc):
                    raise DatabaseError(f"cannot update database {db}: {_first_line(str(exc))}") from None
                raise
    except BaseException:
        con.close()
        raise
    return con


def _open(db: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=read_only, config=CONNECT_CONFIG)
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


def _check_file(db: Path) -> None:
    """DatabaseError unless ``db`` is a regular file that starts like a DuckDB database.

    Why before DuckDB opens it: DuckDB recognises other formats (an SQLite file) and would try to load
    an extension for them; reading 16 bytes settles it without DuckDB.
    """
    if not db.is_file():
        raise DatabaseError(f"database {db} is not a regular file; give a carousel database file as --db")
    try:
        with db.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise DatabaseError(f"cannot read database {db}: {exc.strerror or exc}") from None
    if not head:
        raise DatabaseError(f"database {db} is empty, not a carousel database; delete it or choose another --db")
    if head[8:12] != _DUCKDB_MAGIC:
        kind = "is an SQLite file" if head.startswith(b"SQLite format 3") else "is corrupt or not a DuckDB file"
        raise DatabaseError(f"database {db} {kind}, not a carousel database; nothing was written to it")


def _create(db: Path, schema: SchemaHook | None) -> None:
    """Create a new database *with its marker* under a temporary name, then link it into place.

    Why: the file at ``db`` is never without the marker, so a crash during creation cannot leave an
    unmarked file that a later open would have to refuse. ``os.link`` fails if another process
    created ``db`` first; that file is then used as it is.
    """
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((a for a in db.parents if a.exists()), None)
        why = (f"{blocker} is not a folder" if blocker is not None and not blocker.is_dir()
               else str(exc.strerror or exc))
        raise InputError(f"cannot create database {db}: {why}", field="--db") from None
    tmp = db.parent / f".{db.name}.{os.getpid()}.creating"
    try:
        try:
            con = duckdb.connect(str(tmp), config=CONNECT_CONFIG)
            try:
                con.execute(MARKER_DDL)
                con.execute(f"INSERT INTO {MARKER_TABLE} {_MARKER_COLUMNS} VALUES (?, ?, now(), 'created')",  # noqa: S608
                            [_APP, SCHEMA_VERSION])
                if schema is not None:
                    schema(con)
                    _record_fingerprint(con, reference_fingerprint(schema))
                con.execute("CHECKPOINT")
            finally:
                con.close()
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot create database {db}: {_first_line(str(exc))}") from None
        try:
            os.link(tmp, db)
        except FileExistsError:
            pass  # another process created it meanwhile; its file is opened (and checked) instead
        except OSError as exc:
            raise DatabaseError(f"cannot create database {db}: {exc.strerror or exc}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with suppress(OSError):
                leftover.unlink()


def _catalog(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, dict[str, str]], set[str]]:
    """(table -> {column: type}, view names) of the open database, every schema."""
    cols = con.execute(
        "SELECT schema_name || '.' || table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall()
    views = {r[0] for r in con.execute(
        "SELECT schema_name || '.' || view_name FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall()}
    tables: dict[str, dict[str, str]] = {}
    for table, col, dtype in cols:
        if table not in views:
            tables.setdefault(table, {})[col] = dtype
    return tables, views


_T = TypeVar("_T")


def _in_reference(schema: SchemaHook, read: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
    """``read`` of the catalog ``schema`` builds (with the marker) in an empty in-memory database: what
    a current carousel database's catalog is."""
    ref = duckdb.connect(":memory:", config=CONNECT_CONFIG)
    try:
        ref.execute(MARKER_DDL)
        schema(ref)
        return read(ref)
    finally:
        ref.close()


def _reference_catalog(schema: SchemaHook) -> tuple[dict[str, dict[str, str]], set[str]]:
    """The catalog ``schema`` creates in an empty in-memory database (carousel's tables and views now)."""
    return _in_reference(schema, _catalog)


def unmarked_reason(
    con: duckdb.DuckDBPyConnection, schema: SchemaHook | None
) -> str | None:
    """None if an unmarked database is one carousel created before the marker existed, else why not.

    How that is decided safely: every table in the file must be one carousel creates (compared with the
    catalog ``schema`` builds in an empty in-memory database), each with a subset of carousel's columns
    of the same types (older databases lack columns added later, never have others), every view must
    be one of carousel's, and there must be at least one table. A foreign DuckDB file with a table of its
    own, or a ``ledger_log`` of another shape, fails this and is left untouched.
    """
    tables, views = _catalog(con)
    if not tables:
        return "it holds no tables"
    if schema is None:
        return "no schema to compare it with"
    ref_tables, ref_views = _reference_catalog(schema)
    for table in sorted(tables):
        name = table.removeprefix("main.")
        if table not in ref_tables:
            return f"table {name} is not one of carousel's"
        for col, dtype in sorted(tables[table].items()):
            if ref_tables[table].get(col) != dtype:
                return f"table {name} has column {col} {dtype}, which carousel's does not"
    for view in sorted(views - ref_views):
        return f"view {view.removeprefix('main.')} is not one of carousel's"
    return None


def _catalog_rows(con: duckdb.DuckDBPyConnection) -> list[list[tuple[object, ...]]]:
    """[table columns, views, indexes, sequences] of the open database, each sorted: what
    :func:`catalog_fingerprint` hashes and :func:`_catalog_objects` names (one set of catalog queries)."""
    db = "database_name = current_database() AND NOT internal"
    return [
        con.execute(f"SELECT schema_name, table_name, column_name, data_type, is_nullable, column_default "  # noqa: S608
                    f"FROM duckdb_columns() WHERE {db} AND table_name NOT IN (SELECT view_name FROM "
                    f"duckdb_views() WHERE {db}) ORDER BY ALL").fetchall(),
        con.execute(f"SELECT schema_name, view_name, sql FROM duckdb_views() WHERE {db} ORDER BY ALL").fetchall(),  # noqa: S608
        con.execute("SELECT schema_name, index_name, table_name, sql FROM duckdb_indexes() "
                    "WHERE database_name = current_database() ORDER BY ALL").fetchall(),
        con.execute("SELECT schema_name, sequence_name, start_value, increment_by, cycle FROM duckdb_sequences() "  # noqa: S608
                    "WHERE database_name = current_database() AND NOT temporary ORDER BY ALL").fetchall(),
    ]


def catalog_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """SHA-256 of the open database's schema: every table's columns (name, type, nullability, default),
    every view's and index's SQL, every sequence. (Not macros: carousel defines none, and listing them
    means scanning DuckDB's thousands of built-in functions, ~0.1 s.)

    Why a fingerprint of the catalog rather than a version number: several packages add tables and
    columns, and a hand-maintained number is easy to forget; this changes with any composed DDL. Columns
    are compared as a set per table, so a database that gained a column by ``ALTER TABLE`` equals one
    created with it. The DuckDB library version is part of it: the schema hooks also keep derived data
    that depends on DuckDB (the ledger's projection digest sums DuckDB's ``hash``), so the first
    read-write open under another DuckDB runs them again.
    """
    parts = _catalog_rows(con)
    return hashlib.sha256(repr([duckdb.__version__, parts]).encode("utf-8")).hexdigest()


@functools.cache
def reference_fingerprint(schema: SchemaHook) -> str:
    """:func:`catalog_fingerprint` of the catalog ``schema`` builds (with the marker) in an empty
    in-memory database: what a current database's catalog is. Once per process and hook (~ms)."""
    return _in_reference(schema, catalog_fingerprint)


#: One catalog object: (kind, schema-qualified name) -> what defines it (a table's columns, a view's SQL).
CatalogObjects = dict[tuple[str, str], object]


def _catalog_objects(con: duckdb.DuckDBPyConnection) -> CatalogObjects:
    """The objects :func:`catalog_fingerprint` hashes, one entry each, so that a difference can be named."""
    columns_rows, view_rows, index_rows, sequence_rows = _catalog_rows(con)
    out: CatalogObjects = {("view", f"{s}.{v}"): sql for s, v, sql in view_rows}
    columns: dict[str, dict[str, tuple[object, ...]]] = {}
    for schema, table, col, dtype, nullable, default in columns_rows:  # views' columns already left out
        columns.setdefault(f"{schema}.{table}", {})[str(col)] = (dtype, nullable, default)
    out.update({("table", t): cols for t, cols in columns.items()})
    for schema, name, table, sql in index_rows:
        out[("index", f"{schema}.{name}")] = (table, sql)
    for schema, name, *rest in sequence_rows:
        out[("sequence", f"{schema}.{name}")] = tuple(rest)
    return out


@functools.cache
def _reference_objects(schema: SchemaHook) -> CatalogObjects:
    return _in_reference(schema, _catalog_objects)


def catalog_differences(
    con: duckdb.DuckDBPyConnection, schema: SchemaHook, *, objects_of: SchemaHook | None = None
) -> list[str] | None:
    """What in the open database's catalog differs from the one ``schema`` builds, each object named; None
    when that cannot be told (the marker records another schema than ``schema``'s).

    Why: ``carousel sql``, ``report`` and the README's queries read the views (``flows``, ``deals``...),
    so a view replaced by hand (``amount_usd * 2``) changes published sums while every stored row still
    verifies; and a dropped table is how a projection edit hid from the ledger's verify. The marker's
    fingerprint (:func:`stored_fingerprint`) says which schema ran last: when it is today's, every
    difference was made outside carousel; when it is another (an older carousel, another DuckDB) or none,
    differences are expected until the next read-write open updates the schema, so none is claimed.
    Missing tables and views, missing or changed columns, changed view SQL, indexes and sequences are
    reported; objects carousel does not create, and columns it does not define, change no number
    carousel reports and are left out. ``objects_of`` limits the comparison to the objects that hook
    creates (the ledger's own, for ``carousel ledger verify``).
    """
    want_fp = reference_fingerprint(schema)
    if stored_fingerprint(con) != want_fp:
        return None
    if catalog_fingerprint(con) == want_fp:
        return []
    want = _reference_objects(schema)
    if objects_of is not None:
        mine = _reference_objects(objects_of)
        want = {k: v for k, v in want.items() if k in mine}
    have = _catalog_objects(con)
    out: list[str] = []
    for (kind, name), spec in sorted(want.items(), key=lambda kv: kv[0]):
        label = f"{kind} {name.removeprefix('main.')}"
        got = have.get((kind, name))
        if got is None:
            other = "table" if kind == "view" else "view"
            instead = f" (a {other} of that name stands in its place)" if (other, name) in have else ""
            out.append(f"{label} is missing{instead}")
        elif kind == "table":
            assert isinstance(spec, dict) and isinstance(got, dict)
            for col, col_spec in spec.items():
                if col not in got:
                    out.append(f"{label}: column {col} is missing")
                elif got[col] != col_spec:
                    out.append(f"{label}: column {col} is {_column_text(got[col])}, carousel's is "
                               f"{_column_text(col_spec)}")
        elif got != spec:
            out.append(f"{label} differs from carousel's definition: {got!r}")
    return out


def _column_text(spec: object) -> str:
    dtype, nullable, default = spec if isinstance(spec, tuple) else (spec, None, None)
    return f"{dtype}{'' if nullable else ' NOT NULL'}" + (f" DEFAULT {default}" if default is not None else "")


def stored_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint recorded when ``schema`` last ran to completion here (None: never, or before
    fingerprints were recorded)."""
    has_column = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ? AND column_name = 'fingerprint'", [MARKER_TABLE]).fetchall()[0][0]
    if not has_column:
        return None
    rows = con.execute(f"SELECT DISTINCT fingerprint FROM {MARKER_TABLE}").fetchall()  # noqa: S608
    return str(rows[0][0]) if len(rows) == 1 and rows[0][0] is not None else None


def schema_is_current(con: duckdb.DuckDBPyConnection, schema: SchemaHook) -> bool:
    """True if ``schema`` has nothing to do here: the marker records that it last ran to completion with
    today's composed schema, and the catalog still is that schema.

    Both, because each alone misleads: the catalog can equal today's while a data step of the hook (a
    projection rebuild after an ``ALTER``) failed half-way, which only the marker (written after the
    hook) tells; and the marker can be current while a table was dropped by hand, which only the catalog
    shows (the hook then recreates it, as every open used to).
    """
    want = reference_fingerprint(schema)
    return stored_fingerprint(con) == want and catalog_fingerprint(con) == want


def _record_fingerprint(con: duckdb.DuckDBPyConnection, fingerprint: str) -> None:
    """Record in the marker (its ``fingerprint`` column) that the schema with ``fingerprint`` is applied."""
    with transaction(con):
        con.execute(_MARKER_FINGERPRINT_DDL)
        con.execute(f"UPDATE {MARKER_TABLE} SET fingerprint = ?, schema_version = greatest(schema_version, ?)",  # noqa: S608
                    [fingerprint, SCHEMA_VERSION])


def _check_marker(con: duckdb.DuckDBPyConnection, db: Path, *, read_only: bool,
                  schema: SchemaHook | None) -> None:
    """DatabaseError unless the open file is carousel's; adopt a pre-marker carousel file when writing."""
    try:
        has_marker = bool(con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?", [MARKER_TABLE]).fetchall()[0][0])
        if has_marker:
            rows = con.execute(f"SELECT app, max(schema_version) FROM {MARKER_TABLE} GROUP BY app"  # noqa: S608
                               ).fetchall()
            if [r[0] for r in rows] != [_APP]:
                raise DatabaseError(f"database {db} has a damaged carousel marker ({MARKER_TABLE}); "
                                    "nothing was written to it")
            if int(rows[0][1]) > SCHEMA_VERSION:
                raise DatabaseError(f"database {db} was written by a newer carousel (schema version "
                                    f"{rows[0][1]}, this one reads {SCHEMA_VERSION}); upgrade carousel")
            return
        reason = unmarked_reason(con, schema)
    except duckdb.Error as exc:
        raise DatabaseError(f"database {db} is corrupt: {_first_line(str(exc))}") from None
    if reason is not None:
        raise DatabaseError(
            f"database {db} is not a carousel database ({reason}; no {MARKER_TABLE} marker); "
            "carousel writes only to its own files: choose another --db. Nothing was written to it"
        )
    if read_only:
        return  # a pre-marker carousel file: readable as it is, marked at its first read-write open
    try:
        with transaction(con):
            con.execute(MARKER_DDL)
            con.execute(f"INSERT INTO {MARKER_TABLE} {_MARKER_COLUMNS} VALUES (?, ?, now(), 'adopted')",  # noqa: S608
                        [_APP, SCHEMA_VERSION])
    except duckdb.Error as exc:
        raise DatabaseError(f"cannot mark database {db} as carousel's: {_first_line(str(exc))}") from None


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


@contextmanager
def staged_copy(con: duckdb.DuckDBPyConnection, db: Path) -> Iterator[Path]:
    """A private copy of ``db`` to write a large change to, put in place of ``db`` by one rename on success.

    Why: DuckDB holds a transaction's uncommitted rows in memory, beyond any ``memory_limit`` (about 1.5
    KB a ledger event: a million-event import in one transaction needs gigabytes), while committing
    batch by batch into the live file would leave a killed import's first batches visible. The copy is
    committed batch by batch (memory bounded by a batch) and nobody sees it until ``os.replace`` swaps it
    in: a kill before the swap leaves ``db`` as it was (and a ``.staging`` file beside it), a kill after
    leaves the whole change (the next staged write removes a left copy). ``con``, the caller's read-write connection to ``db``, keeps the database
    locked against other writers throughout; it is checkpointed first, so the file alone holds every
    committed change. The caller writes the yielded path through its own connection and closes it before
    the block ends. Needs free disk space for one more copy of the database.

    A symlinked ``db`` is resolved first: the copy is staged beside the file the link points to and
    renamed over that file, so the link stays a link (renaming over the link's own name would replace it
    with a plain file and leave its target behind, unchanged). The copy gets the file's permission bits
    before the swap (``copyfile`` creates it with the umask's, so a 640 database would become 644).
    """
    import shutil

    db = Path(os.path.realpath(db))
    con.execute("CHECKPOINT")
    # A copy left by a killed import: stale, since its process no longer holds the lock ``con`` holds.
    for stale in db.parent.glob(f".{glob.escape(db.name)}.*.staging*"):
        with suppress(OSError):
            if stale.is_dir():  # DuckDB's spill folder beside the copy (``<copy>.tmp``)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink()
    tmp = db.parent / f".{db.name}.{os.getpid()}.staging"
    try:
        try:
            shutil.copyfile(db, tmp)
            shutil.copymode(db, tmp)
        except OSError as exc:
            why = "the disk is full" if is_disk_full(exc) else str(exc.strerror or exc)
            raise DatabaseError(f"database {db} could not be written: {why} (copying it to stage the change); "
                                "nothing was changed") from None
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the copy's bytes are on disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, db)
        dfd = os.open(db.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # and the rename itself survives a power cut
        finally:
            os.close(dfd)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            with suppress(OSError):
                leftover.unlink()
        shutil.rmtree(f"{tmp}.tmp", ignore_errors=True)


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


def scan_storage(con: duckdb.DuckDBPyConnection) -> tuple[int, int, list[str]]:
    """Read every column of every table, so that DuckDB checks the checksum of every data block.

    Why: DuckDB reads blocks lazily and checks a block's checksum only when it reads it, so a file with
    flipped bytes opens and answers most queries, and the damage surfaced at the next import ("Corrupt
    database file"). Returns (tables, rows read, problems); a problem names the table whose blocks fail.
    The catalog and the headers were read (and checked) at open; a flipped byte in a free block is
    harmless and not reported.
    """
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name").fetchall()]
    rows, problems = 0, []
    for table in tables:
        ident = '"' + table.replace('"', '""') + '"'
        try:
            # count(col) and max(hash(col)) force every segment of every column to be read
            got = con.execute(f"SELECT count(*), max(hash(COLUMNS(*))) FROM {ident}").fetchall()  # noqa: S608
            rows += int(got[0][0])
        except duckdb.Error as exc:
            problems.append(f"table {table}: {_first_line(str(exc))}")
    return len(tables), rows, problems


def is_disk_full(exc: BaseException) -> bool:
    """True if an error (DuckDB's or the OS's) says the disk or the file-size limit is exhausted."""
    if isinstance(exc, OSError):
        import errno

        return exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    text = str(exc)
    return "No space left on device" in text or "File too large" in text or "quota exceeded" in text.lower()


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else msg
