"""A large import (more than one batch) is written to a staged copy and swapped in: all or none.

``carousel ledger import`` commits a multi-batch file batch by batch into a copy of the database
(``core.db.staged_copy``), so memory stays bounded; the database itself changes only by the final
rename. Killed at any point, or failing in a late batch, it leaves the database exactly as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from ledger import log

sys.path.insert(0, str(Path(__file__).parent))
from dbstate import content_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from bench_import import write_deals  # noqa: E402

ROWS = 25_000  # three batches of 10,000


def _cmd(deals: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "carousel", "ledger", "import", str(deals), "--db", str(db)]


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}, "PYTHONPATH": str(REPO)}


def _events(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        assert log.verify(con).ok
        return int(con.execute("SELECT count(*) FROM ledger_log").fetchall()[0][0])


def test_a_killed_staged_import_leaves_the_database_as_it_was(ledger_db: Path, tmp_path: Path) -> None:
    deals = write_deals(tmp_path / "big", ROWS)
    before, n_before = content_hash(ledger_db), _events(ledger_db)
    proc = subprocess.Popen(_cmd(deals, ledger_db), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = ledger_db.parent / f".{ledger_db.name}.{proc.pid}.staging"
    deadline = time.monotonic() + 600
    # Kill once the copy has taken at least one committed batch (it grows past the original's size).
    while time.monotonic() < deadline and proc.poll() is None:
        if staging.exists() and staging.stat().st_size > ledger_db.stat().st_size + 2_000_000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the import finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert content_hash(ledger_db) == before and _events(ledger_db) == n_before
    assert staging.exists()  # left by the kill; the next staged import removes it
    res = subprocess.run(_cmd(deals, ledger_db), env=_env(), capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr
    assert f"{ROWS} deals, {ROWS} events appended" in res.stdout
    assert _events(ledger_db) == n_before + ROWS
    assert not [p for p in ledger_db.parent.iterdir() if ".staging" in p.name]


def test_a_conflict_in_a_late_batch_leaves_the_database_as_it_was(ledger_db: Path, tmp_path: Path) -> None:
    deals = write_deals(tmp_path / "big", ROWS)
    lines = deals.read_text(encoding="utf-8").splitlines(keepends=True)
    # The last rows are imported first; then the whole file with one of them changed: the conflict is
    # met in the third batch, after two batches were committed to the staged copy.
    deals.write_text("".join(lines[:1] + lines[-100:]), encoding="utf-8")
    assert subprocess.run(_cmd(deals, ledger_db), env=_env(), capture_output=True, timeout=600).returncode == 0
    before, n_before = content_hash(ledger_db), _events(ledger_db)
    lines[-50] = lines[-50].replace(",verified", ",partial", 1)
    deals.write_text("".join(lines), encoding="utf-8")
    res = subprocess.run(_cmd(deals, ledger_db), env=_env(), capture_output=True, text=True, timeout=1200)
    assert res.returncode == 5 and "changed since it was imported (confidence)" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert content_hash(ledger_db) == before and _events(ledger_db) == n_before
    assert not [p for p in ledger_db.parent.iterdir() if ".staging" in p.name]



DEALS_CSV = REPO / "data" / "events" / "deals.csv"


def _staged_import(db: Path) -> None:
    """The CLI's staged route (``_import_staged``) for the shipped deals through ``db``, batches of 10 rows."""
    from carousel.cli.ledger import _import_staged
    from carousel.db import connect
    from core.paths import resolve_db

    with connect(db) as con:
        _import_staged(con, resolve_db(db), DEALS_CSV, record_changes=False, scan=None, chunk_rows=10)


def _plain_import_events(tmp: Path) -> int:
    """Events of the same file imported in one transaction into a fresh database (the independent route)."""
    from carousel.db import connect
    from ledger.load import import_file

    with connect(tmp / "plain.duckdb") as con:
        import_file(con, DEALS_CSV)
    return _events(tmp / "plain.duckdb")


def test_a_staged_import_through_a_symlink_writes_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    """Review finding 5: the copy was staged beside the link and renamed over it, so the link became a
    plain file holding the import while the file it pointed to stayed unchanged."""
    from carousel.db import connect

    real = tmp_path / "real" / "target.duckdb"
    real.parent.mkdir()
    connect(real).close()  # an empty ledger
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    _staged_import(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert _events(real) == _plain_import_events(tmp_path) > 0
    assert not [p for d in (tmp_path, real.parent) for p in d.iterdir() if ".staging" in p.name]


def test_a_staged_import_keeps_the_database_file_mode(tmp_path: Path) -> None:
    """copyfile creates the staged copy with the umask's mode: a 640 database came back 644."""
    from carousel.db import connect

    db = tmp_path / "c.duckdb"
    connect(db).close()
    db.chmod(0o640)
    _staged_import(db)
    assert (db.stat().st_mode & 0o777, _events(db)) == (0o640, _plain_import_events(tmp_path))
