"""A database file cut short (a partial copy, a full disk) is refused by every command with exit 4.

DuckDB reads blocks lazily, so such a file opens fine and used to fail only at the first query that
touched a missing block: with a traceback, or worse, `refresh` reported success after writing into it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import carousel_runs
import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEALS = ROOT / "data" / "events" / "deals.csv"


def carousel(*args: str) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, cwd=ROOT)


# session scope: conftest.py starts the slowest tests first, so this module's tests need not run together
@pytest.fixture(scope="session")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("full") / "full.duckdb"
    for args in (["ledger", "import", str(DEALS)], ["market", "load-snapshot"]):
        res = carousel(*args, "--db", str(db))
        assert res.returncode == 0, res.stderr
    return db


@pytest.mark.parametrize("keep", [0.07, 0.9])
def test_every_command_refuses_a_truncated_database(full: Path, tmp_path: Path, keep: float) -> None:
    data = full.read_bytes()
    bad = tmp_path / "cut.duckdb"
    bad.write_bytes(data[: int(len(data) * keep)])
    before = hashlib.sha256(bad.read_bytes()).hexdigest()
    out = tmp_path / "out"
    for args in (
        ["ledger", "verify"],
        ["ledger", "log"],
        ["ledger", "import", str(DEALS)],
        ["market", "load-snapshot"],
        ["refresh", "--source", "snapshot"],
        ["study"],
        ["sql", "SELECT count(*) FROM deals"],
        ["report", "--out", str(out)],
    ):
        res = carousel(*args, "--db", str(bad))
        assert res.returncode == 4, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr, args
        assert f"database {bad} is truncated" in res.stderr, (args, res.stderr)
        # nothing was written into it
        assert hashlib.sha256(bad.read_bytes()).hexdigest() == before, args
    assert not (out / "report.html").exists()


def test_an_intact_copy_still_opens(full: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(full, copy)
    res = carousel("ledger", "verify", "--db", str(copy))
    assert res.returncode == 0 and "ledger OK: 62 events" in res.stdout


def _in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``carousel args`` run through the console entry point in this process.

    Why in process: the sweep below runs about 45 commands; a fresh interpreter per command (imports of
    polars, duckdb, statsmodels) made it the slowest test of the suite. Any exception other than
    SystemExit escaping ``main`` is what a user would see as a traceback, so it fails the test here.
    """
    from carousel.cli import main

    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_a_corrupt_block_is_a_clear_error_never_a_traceback(
    full: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flip one byte in each storage block in turn: whichever command reads a damaged block must say so
    # with exit 4 (DuckDB's checksum catches it); commands that never read it may succeed.
    monkeypatch.delenv("CAROUSEL_DB", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    data = full.read_bytes()
    block = 262144
    seen_4 = set()
    sql_refused: Path | None = None
    for b in range((len(data) - 12288) // block):
        bad = bytearray(data)
        bad[12288 + b * block + 100] ^= 0xFF
        path = tmp_path / f"b{b}.duckdb"
        path.write_bytes(bytes(bad))
        for args in (["ledger", "verify"], ["study"], ["sql", "SELECT count(*), sum(adj_close) FROM prices"]):
            code, err = _in_process([*args, "--db", str(path)], capsys)
            assert code in (0, 4), (b, args, err)
            if code == 4:
                assert str(path) in err, (b, args, err)
                seen_4.add(args[0])
                sql_refused = path if args[0] == "sql" else sql_refused
    assert seen_4 == {"ledger", "study", "sql"}  # every command met a damaged block at least once
    # And once through a real process: exit 4, one line, no traceback.
    assert sql_refused is not None
    res = carousel("sql", "SELECT count(*), sum(adj_close) FROM prices", "--db", str(sql_refused))
    assert res.returncode == 4 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: ") and str(sql_refused) in res.stderr


def _checkpointed(db: Path, *statements: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB file built by ``statements``, each followed by a CHECKPOINT (so blocks land on disk and
    drops free them), with the connection still open. It carries carousel's marker, so carousel opens
    it as its own (a file without it is refused before any size check)."""
    from core.db import MARKER_DDL, MARKER_TABLE, SCHEMA_VERSION

    con = duckdb.connect(str(db))
    con.execute(MARKER_DDL)
    con.execute(f"INSERT INTO {MARKER_TABLE} (app, schema_version, marked_at, how) VALUES ('carousel', ?, now(), 'created')", [SCHEMA_VERSION])
    for stmt in statements:
        con.execute(stmt)
        con.execute("CHECKPOINT")
    return con


def test_a_file_duckdb_trimmed_itself_is_not_called_truncated(tmp_path: Path) -> None:
    """DuckDB cuts trailing free blocks off the file at checkpoint but its header still counts them.

    Regression: the check compared the file with ``total_blocks`` and refused healthy databases after
    an amend freed blocks (83 declared, 2 on disk here)."""

    from carousel.db import connect

    db = tmp_path / "trimmed.duckdb"
    _checkpointed(db, "CREATE TABLE keep AS SELECT range AS i FROM range(100000)",
                  "CREATE TABLE big AS SELECT range AS i, random() AS r FROM range(3000000)", "DROP TABLE big").close()
    reopened = duckdb.connect(str(db), read_only=True)
    total, used = reopened.execute("SELECT total_blocks, used_blocks FROM pragma_database_size()").fetchone()
    reopened.close()
    assert total > used and db.stat().st_size < 12288 + total * 262144  # the trap is really set
    ok = connect(db, read_only=True)
    assert ok.execute("SELECT count(*) FROM keep").fetchone() == (100000,)
    ok.close()


@pytest.mark.parametrize("sql", ["SELECT 'corrupt'::INT", "SELECT * FROM nosuchtable_corrupt"])
def test_a_query_error_quoting_corrupt_is_not_a_damaged_file(full: Path, sql: str) -> None:
    """Storage damage is decided by exception class: a word in user input quoted back by an ordinary
    error used to make a healthy database 'cannot be read' (exit 4)."""
    res = carousel("sql", sql, "--db", str(full))
    assert res.returncode == 2, res.stderr
    assert "query failed" in res.stderr and "cannot be read" not in res.stderr


def test_a_cut_behind_free_blocks_in_the_middle_is_caught_at_open(tmp_path: Path) -> None:
    """Free blocks in the middle of the file (a dropped table) let a cut remove used blocks behind the
    hole while the file still holds as many bytes as there are used blocks: used_blocks alone missed it,
    and the damage surfaced only at the first query."""

    from carousel.db import connect
    from core.errors import DatabaseError

    db = tmp_path / "holey.duckdb"
    con = _checkpointed(db, "CREATE TABLE scratch AS SELECT range AS i, random() AS r FROM range(3000000)",
                        "CREATE TABLE keep AS SELECT range AS i, random() AS r FROM range(1000000)",
                        "DROP TABLE scratch")
    block, used, total = con.execute(
        "SELECT block_size, used_blocks, total_blocks FROM pragma_database_size()").fetchone()
    top = con.execute("SELECT max(block_id) FROM pragma_storage_info('keep')").fetchone()[0]
    con.close()
    assert top + 1 > used + 10  # the trap is set: keep's data sits far behind the hole
    # One block short: DuckDB itself opens this (the catalog sits before keep's last block), and the
    # file holds far more bytes than used_blocks needs.
    cut = 12288 + block * top
    assert used < top < total and cut < db.stat().st_size
    data = db.read_bytes()
    db.write_bytes(data[:cut])
    duckdb.connect(str(db), read_only=True).close()  # DuckDB does not notice
    with pytest.raises(DatabaseError, match=r"is truncated: .* its blocks need at least "
                                            f"{12288 + block * (top + 1):,}"):
        connect(db, read_only=True)
    # A deeper cut into the catalog fails inside DuckDB's own open: a clear error too, and never the
    # "in use by another process" message ("block" contains "lock").
    db.write_bytes(data[: 12288 + block * used])
    with pytest.raises(DatabaseError) as err:
        connect(db, read_only=True)
    assert "in use by another" not in str(err.value) and str(db) in str(err.value)
