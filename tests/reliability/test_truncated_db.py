"""A database file cut short (a partial copy, a full disk) is refused by every command with exit 4.

DuckDB reads blocks lazily, so such a file opens fine and used to fail only at the first query that
touched a missing block: with a traceback, or worse, `refresh` reported success after writing into it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEALS = ROOT / "data" / "events" / "deals.csv"


def carousel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
    return subprocess.run([sys.executable, "-m", "carousel", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
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
