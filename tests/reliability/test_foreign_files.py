"""Only carousel's own database files are written to; extensions are never installed or loaded.

Each foreign file (SQLite, a DuckDB file of someone else's, one with its own ``ledger_log``) is given as
``--db`` to a writing and a reading command: exit 4, a message naming the file, and the file's bytes
unchanged. HOME points at an empty folder so that an extension download would show as ``~/.duckdb``.
"""

from __future__ import annotations

import hashlib
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import carousel_runs
import duckdb
import pytest

from core import db as core_db

sys.path.insert(0, str(Path(__file__).parent))
from dbstate import content_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEALS = REPO / "data" / "events" / "deals.csv"


def carousel(*args: str, home: Path, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, env={"HOME": str(home)}, preexec=preexec)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (x TEXT)")
    con.execute("INSERT INTO notes VALUES ('mine')")
    con.commit()
    con.close()


def _duckdb(path: Path, *stmts: str) -> None:
    with duckdb.connect(str(path)) as con:
        for st in stmts:
            con.execute(st)


FOREIGN = {
    "sqlite": (_sqlite, "is an SQLite file, not a carousel database"),
    "duckdb": (lambda p: _duckdb(p, "CREATE TABLE t (x INT)", "INSERT INTO t VALUES (1)"),
               "table t is not one of carousel's"),
    "own ledger_log": (lambda p: _duckdb(p, "CREATE TABLE ledger_log (position INT, note VARCHAR)"),
                       "table ledger_log has column note VARCHAR, which carousel's does not"),
    "empty duckdb": (lambda p: _duckdb(p, "SELECT 1"), "it holds no tables"),
    "text file": (lambda p: p.write_text("hello, world\n" * 10), "is corrupt or not a DuckDB file"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("args", [["ledger", "import", str(DEALS)], ["market", "load-snapshot"],
                                  ["sql", "SELECT 1"], ["ledger", "verify"]])
def test_a_foreign_file_is_refused_and_left_byte_identical(tmp_path: Path, kind: str, args: list[str]) -> None:
    make, message = FOREIGN[kind]
    path = tmp_path / "theirs.db"
    make(path)
    before = sha(path)
    home = tmp_path / "home"
    home.mkdir()
    res = carousel(*args, "--db", str(path), home=home)
    assert res.returncode == 4, (kind, args, res.stderr)
    assert "Traceback" not in res.stderr
    assert str(path) in res.stderr and message in res.stderr, res.stderr
    assert sha(path) == before
    assert list(home.iterdir()) == []  # no ~/.duckdb: nothing downloaded or installed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "theirs.db"]  # no .wal, no temp file


def test_every_connection_disables_extension_autoloading(tmp_path: Path) -> None:
    from carousel.db import connect

    for read_only in (False, True):
        with connect(tmp_path / "c.duckdb", read_only=read_only) as con:
            got = con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('autoinstall_known_extensions', 'autoload_known_extensions', 'allow_community_extensions') "
                "ORDER BY name").fetchall()
            assert got == [("allow_community_extensions", "false"), ("autoinstall_known_extensions", "false"),
                           ("autoload_known_extensions", "false")]


def test_a_new_database_carries_the_marker_from_its_first_byte(tmp_path: Path) -> None:
    from carousel.db import connect

    path = tmp_path / "new.duckdb"
    connect(path).close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT app, schema_version, how FROM carousel_schema").fetchall() == [
            ("carousel", core_db.SCHEMA_VERSION, "created")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.duckdb"]


def _pre_marker(path: Path) -> None:
    """A carousel database as versions before the marker left it: every table, no marker."""
    from carousel.db import connect

    res = subprocess.run([sys.executable, "-m", "carousel", "ledger", "import", str(DEALS), "--db", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE carousel_schema")
        # older still: a column added later is missing too (it must not make the file foreign)
        con.execute("ALTER TABLE study_car DROP COLUMN bhar")
    with pytest.raises(duckdb.Error):
        connect(path, read_only=True).execute("SELECT * FROM carousel_schema")


def test_a_pre_marker_carousel_database_is_read_as_it_is_and_marked_at_its_first_write_open(tmp_path: Path) -> None:
    from carousel.db import connect

    path = tmp_path / "old.duckdb"
    _pre_marker(path)
    before = sha(path)
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deals").fetchall() == [(44,)]
    assert sha(path) == before  # a reader writes nothing
    with connect(path) as con:
        assert con.execute("SELECT how FROM carousel_schema").fetchall() == [("adopted",)]
        assert con.execute("SELECT count(*) FROM deals").fetchall() == [(44,)]


def test_a_pre_marker_file_with_a_table_of_its_own_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _pre_marker(path)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE my_notes (x INT)")
    before = sha(path)
    res = carousel("ledger", "import", str(DEALS), "--db", str(path), home=tmp_path)
    assert res.returncode == 4 and "table my_notes is not one of carousel's" in res.stderr, res.stderr
    assert sha(path) == before


def test_db_below_a_regular_file_is_a_clean_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x")
    res = carousel("ledger", "import", str(DEALS), "--db", str(blocker / "sub" / "c.duckdb"), home=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{blocker} is not a folder" in res.stderr and "field '--db'" in res.stderr
    assert blocker.read_text() == "x"


def _file_limit(nbytes: int) -> Callable[[], None]:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): writes past it fail with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def test_a_full_disk_is_one_message_and_exit_4_with_the_database_intact(ledger_db: Path, tmp_path: Path) -> None:
    before = content_hash(ledger_db)
    res = carousel("market", "load-snapshot", "--db", str(ledger_db), home=tmp_path, preexec=_file_limit(300_000))
    assert res.returncode == 4, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert f"database {ledger_db} could not be written: the disk is full" in res.stderr
    assert content_hash(ledger_db) == before
    fresh = tmp_path / "fresh.duckdb"
    res = carousel("ledger", "import", str(DEALS), "--db", str(fresh), home=tmp_path, preexec=_file_limit(100_000))
    assert res.returncode == 4 and "Traceback" not in res.stderr, res.stderr
    assert f"cannot create database {fresh}" in res.stderr
    assert not fresh.exists() and not any(p.name.endswith(".creating") for p in tmp_path.iterdir())
