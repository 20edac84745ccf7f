"""``carousel sql`` limits (time, rows, memory), a query starting with a comment, PIVOT, and
``refresh --wait`` waiting for the database lock held by a long reader."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from carousel_runs import carousel

from carousel.queries import DEFAULT_MAX_ROWS, query

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("sql") / "c.duckdb"
    for args in (["ledger", "import", str(REPO / "data" / "events" / "deals.csv")], ["market", "load-snapshot"]):
        res = carousel(*args, "--db", str(db))
        assert res.returncode == 0, res.stderr
    return db


def test_a_query_may_start_with_a_comment(priced: Path) -> None:
    for sql in ("-- note\nSELECT 42 AS a", "--note\nSELECT 42 AS a", "/* note */ SELECT 42 AS a"):
        res = carousel("sql", sql, "--format", "csv", "--db", str(priced))
        assert res.returncode == 0, (sql, res.stderr)
        assert res.stdout == "a\n42\n"
    # options after the query still work, and a real unknown option is still an error
    res = carousel("sql", "--bogus", "--db", str(priced))
    assert res.returncode == 2 and "No such option" in res.stderr


def test_pivot_works_and_agrees_with_a_group_by(priced: Path) -> None:
    res = carousel("sql", "PIVOT (SELECT ticker, year(date) AS y FROM prices WHERE ticker IN ('AMD', 'SPY')) "
                   "ON y USING count(*) ORDER BY ticker", "--format", "csv", "--db", str(priced))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    with duckdb.connect(str(priced), read_only=True) as con:
        want = con.execute("SELECT ticker, year(date)::VARCHAR, count(*) FROM prices WHERE ticker IN ('AMD', 'SPY') "
                           "GROUP BY ALL").fetchall()
    assert len(want) > 10
    got = {(r["ticker"], y): int(n) for r in rows for y, n in r.items() if y != "ticker" and n}
    assert got == {(t, y): n for t, y, n in want}
    # a write hidden behind a PIVOT is still refused
    res = carousel("sql", "PIVOT prices ON ticker USING count(*); DROP TABLE ledger_log", "--db", str(priced))
    assert res.returncode == 2 and "DROP statements are refused" in res.stderr


def test_row_limit_is_enforced_without_reading_the_whole_result(priced: Path) -> None:
    res = carousel("sql", "SELECT * FROM range(1000000000)", "--format", "csv", "--db", str(priced))
    assert res.returncode == 2 and res.stdout == ""
    assert f"the query returns more than {DEFAULT_MAX_ROWS:,} rows" in res.stderr
    assert query("SELECT * FROM range(500)", priced, max_rows=500).height == 500
    res = carousel("sql", "SELECT * FROM range(501)", "--max-rows", "500", "--db", str(priced))
    assert res.returncode == 2 and "more than 500 rows" in res.stderr


def test_time_limit_stops_a_runaway_query(priced: Path) -> None:
    t0 = time.perf_counter()
    res = carousel("sql", "SELECT count(*) FROM range(1000000000000)", "--timeout", "1", "--db", str(priced))
    assert res.returncode == 2 and "ran longer than 1 s and was stopped" in res.stderr, res.stderr
    assert time.perf_counter() - t0 < 60


def test_memory_limit_is_a_clean_error_and_nothing_spills_to_disk(priced: Path) -> None:
    before = sorted(p.name for p in priced.parent.iterdir())
    res = carousel("sql", "SELECT list(range) FROM range(300000000)", "--memory-limit", "100MB", "--db", str(priced))
    assert res.returncode == 2 and "needs more than 100MB of memory" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in priced.parent.iterdir()) == before  # no .tmp spill folder
    res = carousel("sql", "SELECT 1", "--memory-limit", "lots", "--db", str(priced))
    assert res.returncode == 2 and "is not a size" in res.stderr


def test_refresh_wait_waits_for_the_database_lock(priced: Path) -> None:
    # The holder keeps the file open read-write until told to let go (a line on its stdin).
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,sys; c=duckdb.connect({str(priced)!r}); print('ok', flush=True); "
                               "sys.stdin.readline(); c.close(); print('released', flush=True)"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ok"
        res = carousel("refresh", "--source", "snapshot", "--tickers", "AMD", "--db", str(priced))
        assert res.returncode == 3, res.stderr  # without --wait: exit 3 at once
        env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
        waiter = subprocess.Popen([sys.executable, "-m", "carousel", "refresh", "--source", "snapshot", "--tickers",
                                   "AMD", "--wait", "--db", str(priced)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert waiter.stderr is not None
        line = waiter.stderr.readline()  # it announces the wait, then keeps polling
        assert line.startswith("waiting: database") and "in use by another carousel process" in line, line
        assert waiter.poll() is None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        out, err = waiter.communicate(timeout=300)
        assert waiter.returncode == 0, err
        assert "refresh ok" in out
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
