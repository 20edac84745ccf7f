"""Shared fixtures: every test gets its own database file; nothing touches data/carousel.duckdb."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
# Helpers of the analysis tests (estudy2_reference, test_engine's synthetic panels) import by module
# name from any test folder, as tests/market does for market_fakes.
sys.path.insert(0, str(Path(__file__).resolve().parent / "analysis"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported out of the garbage collector's full passes.

    statsmodels' ``multipletests`` (Holm) calls ``gc.collect()`` on every call; with polars, duckdb,
    statsmodels and hypothesis loaded a full pass took 0.3-0.7 s, so a 200-example property test against it
    ran a minute. Objects alive after collection (modules, classes, constants) live for the whole session
    anyway; frozen, a full pass walks only what the tests allocate.
    """
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The calendar session cache goes to a per-run folder, so the suite writes nothing under ~/.cache.

    Set in os.environ (not monkeypatch) so CLI subprocesses inherit it; each xdist worker builds its own
    entries once, which costs a second or two and keeps a user's real cache out of the tests' reach.
    """
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database path; $CAROUSEL_DB points at it so CLI calls without --db use it too."""
    path = tmp_path / "carousel.duckdb"
    monkeypatch.setenv("CAROUSEL_DB", str(path))
    return path


@pytest.fixture(scope="session")
def seeded_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the shipped deals imported through the real CLI, built once per session."""
    db = tmp_path_factory.mktemp("seed") / "seed.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
    res = subprocess.run([sys.executable, "-m", "carousel", "ledger", "import", str(DATA / "events" / "deals.csv"),
                          "--db", str(db)], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    return db


@pytest.fixture(scope="session")
def shipped_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped deals, prices and share counts loaded once per session (tests that write copy it)."""
    from carousel.db import connect
    from ledger.load import import_file
    from market.shares_store import load_shares_snapshot
    from market.snapshot import load_snapshot

    path = tmp_path_factory.mktemp("shipped") / "c.duckdb"
    with connect(path) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
        load_shares_snapshot(con)
    return path


@pytest.fixture
def ledger_db(seeded_ledger: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`seeded_ledger` (tests may write to it or break it)."""
    path = tmp_path / "c.duckdb"
    shutil.copy(seeded_ledger, path)
    return path
