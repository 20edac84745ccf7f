"""The database the verify tests tamper with: built once per session by the main job, as a user would."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from carousel_runs import carousel


@pytest.fixture(scope="session")
def verified_run(main_job_run: tuple[Path, Path], shared: Callable[[str, Callable[[Path], None]], Path]) -> Path:
    """`carousel run`, then a second price batch (one revised AMD close) and a second share batch (two
    Yahoo counts of ORCL), so that a batch in the middle of each chain exists, then `carousel report`,
    which stores the study over all of them. Built once per test run for both xdist workers (a report
    takes a core for some seconds) and read-only: tests copy it (:func:`db`)."""
    def build(base: Path) -> None:
        db = base / "c.duckdb"
        # `carousel run` on a fresh database (tests/conftest.py's main_job_run, shared read-only): copied here
        shutil.copy(main_job_run[0], db)
        shutil.copytree(main_job_run[1], base / "out")
        from carousel.db import connect
        from market.shares_store import append_share_batch
        from market.store import append_batch

        with connect(db) as con:
            append_batch(con, pl.DataFrame({"ticker": ["AMD"], "date": [date(2025, 6, 11)], "close": [121.5]}),
                         source="yahoo", tickers=["AMD"], start=date(2025, 6, 11), end=date(2025, 6, 11),
                         fetched_at=datetime(2025, 6, 12, 1, tzinfo=UTC))
            append_share_batch(con, pl.DataFrame({
                "ticker": ["ORCL", "ORCL"], "as_of_date": [date(2025, 8, 31), date(2025, 9, 5)],
                "shares": [2_845_000_000, 2_846_000_000], "shares_split_adjusted": [2_845_000_000, 2_846_000_000]}),
                source="yahoo", tickers=["ORCL"], fetched_at=datetime(2025, 9, 6, 1, tzinfo=UTC))
        res = carousel("report", "--out", str(base / "out"), "--db", str(db))
        assert res.returncode == 0, res.stderr

    return shared("verified-run", build) / "c.duckdb"


@pytest.fixture
def db(verified_run: Path, tmp_path: Path) -> Path:
    """A private copy of the verified run's database, for one test to tamper with."""
    path = tmp_path / "c.duckdb"
    shutil.copy(verified_run, path)
    return path
