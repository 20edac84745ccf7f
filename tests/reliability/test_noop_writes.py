"""Commands with nothing to write leave the database file alone (issue 17), even on a full disk.

A read-write open runs the schema DDL only when the schema marker's fingerprint (of the composed catalog)
is not today's or the catalog itself differs: a no-op import or load-snapshot then writes no byte, so
the file's bytes and modification time stay as they were and a full disk does not fail it.
"""

from __future__ import annotations

import hashlib
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from carousel_runs import carousel

from carousel.db import connect, ensure_schema
from core import db as core_db

REPO = Path(__file__).resolve().parents[2]
DEALS = REPO / "data" / "events" / "deals.csv"


def state(path: Path) -> tuple[str, int]:
    """(SHA-256 of the bytes, modification time in ns): unchanged means nothing was written."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def full_disk(nbytes: int = 4096) -> Callable[[], None]:
    """A file-size limit far below the database (RLIMIT_FSIZE, SIGXFSZ ignored): any write that grows a
    file fails with EFBIG, as on a full disk (tests/reliability/test_foreign_files.py)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def test_a_no_op_import_leaves_the_file_untouched_even_on_a_full_disk(ledger_db: Path) -> None:
    before = state(ledger_db)
    res = carousel("ledger", "import", str(DEALS), "--db", str(ledger_db))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"nothing to import: {DEALS}: ") and "0 events appended" in res.stdout
    assert state(ledger_db) == before
    res = carousel("ledger", "import", str(DEALS), "--db", str(ledger_db), preexec=full_disk())
    assert res.returncode == 0 and "nothing to import" in res.stdout and res.stderr == "", res.stderr
    assert state(ledger_db) == before


def test_a_failing_import_leaves_the_file_untouched(ledger_db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "deals.csv"
    bad.write_text(DEALS.read_text(encoding="utf-8").replace(",unknown,", ",sometime,", 1), encoding="utf-8")
    before = state(ledger_db)
    res = carousel("ledger", "import", str(bad), "--db", str(ledger_db), preexec=full_disk())
    assert res.returncode == 2 and "field 'session'" in res.stderr and "Traceback" not in res.stderr
    assert state(ledger_db) == before


def test_a_no_op_load_snapshot_leaves_the_file_untouched_even_on_a_full_disk(ledger_db: Path) -> None:
    assert carousel("market", "load-snapshot", "--db", str(ledger_db)).returncode == 0
    before = state(ledger_db)
    res = carousel("market", "load-snapshot", "--db", str(ledger_db))
    assert res.returncode == 0 and "snapshot unchanged" in res.stdout, res.stderr
    assert state(ledger_db) == before
    res = carousel("market", "load-snapshot", "--db", str(ledger_db), preexec=full_disk())
    assert res.returncode == 0, res.stderr
    assert "snapshot unchanged" in res.stdout and "share counts unchanged" in res.stdout
    assert state(ledger_db) == before


def test_a_read_write_open_of_a_current_database_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    connect(db).close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert core_db.stored_fingerprint(con) == core_db.reference_fingerprint(ensure_schema)
        assert core_db.catalog_fingerprint(con) == core_db.reference_fingerprint(ensure_schema)
    before = state(db)
    with connect(db) as con:
        assert core_db.schema_is_current(con, ensure_schema)
    assert state(db) == before


def _with_extra_table(con: duckdb.DuckDBPyConnection) -> None:
    """The composed schema after another package added a table (what a newer carousel would compose)."""
    ensure_schema(con)
    con.execute("CREATE TABLE IF NOT EXISTS timeline_cache (month DATE PRIMARY KEY, edges INTEGER NOT NULL)")


def _with_extra_column(con: duckdb.DuckDBPyConnection) -> None:
    ensure_schema(con)
    con.execute("ALTER TABLE ledger_head ADD COLUMN IF NOT EXISTS checked_at TIMESTAMPTZ")


@pytest.mark.parametrize(("hook", "added"), [(_with_extra_table, "timeline_cache.edges"),
                                             (_with_extra_column, "ledger_head.checked_at")])
def test_any_change_of_the_composed_schema_is_applied_at_the_next_open(
    tmp_path: Path, hook: core_db.SchemaHook, added: str
) -> None:
    """No number to bump: the fingerprint of the catalog the hook builds changes with the DDL."""
    db = tmp_path / "c.duckdb"
    connect(db).close()
    assert core_db.reference_fingerprint(hook) != core_db.reference_fingerprint(ensure_schema)
    with core_db.connect(db, schema=hook) as con:
        assert core_db.schema_is_current(con, hook)
        assert core_db.stored_fingerprint(con) == core_db.reference_fingerprint(hook)
        names = {r[0] for r in con.execute("SELECT table_name || '.' || column_name FROM duckdb_columns()").fetchall()}
    assert added in names
    before = state(db)
    core_db.connect(db, schema=hook).close()
    assert state(db) == before


def test_a_table_dropped_by_hand_is_recreated_although_the_marker_is_current(ledger_db: Path) -> None:
    with duckdb.connect(str(ledger_db)) as con:
        con.execute("DROP TABLE study_car")
    with connect(ledger_db) as con:
        assert con.execute("SELECT count(*) FROM study_car").fetchall() == [(0,)]
        assert core_db.schema_is_current(con, ensure_schema)


def test_a_marker_from_before_fingerprints_gets_one(ledger_db: Path) -> None:
    with duckdb.connect(str(ledger_db)) as con:
        con.execute("ALTER TABLE carousel_schema DROP COLUMN fingerprint")
    with connect(ledger_db) as con:
        assert core_db.stored_fingerprint(con) == core_db.reference_fingerprint(ensure_schema)
        assert con.execute("SELECT how FROM carousel_schema").fetchall() == [("created",)]
    before = state(ledger_db)
    connect(ledger_db).close()
    assert state(ledger_db) == before


def test_a_hook_that_fails_half_way_is_run_again_at_the_next_open(tmp_path: Path) -> None:
    """The marker is written after the hook: DDL that committed before a failure does not count as done."""
    db = tmp_path / "c.duckdb"
    connect(db).close()
    calls: list[int] = []

    def failing(con: duckdb.DuckDBPyConnection) -> None:
        _with_extra_table(con)
        in_file = con.execute("SELECT current_database()").fetchall()[0][0] != "memory"
        if in_file and not calls:
            calls.append(1)
            raise duckdb.ConstraintException("data step failed")

    with pytest.raises(duckdb.ConstraintException):
        core_db.connect(db, schema=failing)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM timeline_cache").fetchall() == [(0,)]  # the DDL did commit
        assert core_db.stored_fingerprint(con) == core_db.reference_fingerprint(ensure_schema)
    with core_db.connect(db, schema=failing) as con:
        assert core_db.stored_fingerprint(con) == core_db.reference_fingerprint(failing)
    assert calls == [1]
