"""Faults, concurrency, bad input and security, driven through the real CLI.

Each bad-input case asserts the message (file, line, field where applicable), the exit code, that no
traceback reaches the user, and that the database is byte-for-byte unchanged in content (a hash over
every table's rows, taken before and after).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import carousel_runs
import duckdb
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from crash import DEALS, N_IMPORT_EVENTS, REPO, campaign, check  # noqa: E402
from dbstate import content_hash  # noqa: E402

CLI = [sys.executable, "-m", "carousel"]
EVENTS = REPO / "data" / "events"


def carousel(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return carousel_runs.carousel(*args, env=env, timeout=timeout, keep_db_env=True)


@pytest.fixture
def db(ledger_db: Path) -> Path:
    return ledger_db


def _deals_with(tmp_path: Path, text_edit: tuple[str, str] | None = None, raw: str | None = None) -> Path:
    for name in ("companies.csv", "contracts.csv"):
        shutil.copy(EVENTS / name, tmp_path / name)
    out = tmp_path / "deals.csv"
    if raw is not None:
        out.write_text(raw, encoding="utf-8")
        return out
    text = DEALS.read_text(encoding="utf-8")
    if text_edit:
        assert text_edit[0] in text
        text = text.replace(text_edit[0], text_edit[1], 1)
    out.write_text(text, encoding="utf-8")
    return out


HEADER = DEALS.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("name", "make", "message", "code"),
    [
        ("unknown company", lambda p: _deals_with(p, (",Meta,Scale AI,", ",Meta,Scale Intelligence,")),
         "deals.csv:11, field 'payee': unknown company 'Scale Intelligence'", 2),
        ("negative amount", lambda p: _deals_with(p, (",14.3,", ",-14.3,")), "field 'amount_usd_bn': '-14.3' must be a non-negative", 2),
        ("non-numeric amount", lambda p: _deals_with(p, (",14.3,", ",14.3bn,")),
         "deals.csv:11, field 'amount_usd_bn': '14.3bn' is not a number", 2),
        ("shifted columns", lambda p: _deals_with(p, (",14.3,", ",14,3,")), "deals.csv:11: 1 value(s) more than the header has", 2),
        ("impossible date", lambda p: _deals_with(p, ("meta-scale-2025-06-12,2025-06-12,", "meta-scale-2025-06-12,2025-06-31,")),
         "deals.csv:11, field 'announced_date': '2025-06-31' is not a real calendar date", 2),
        ("future date", lambda p: _deals_with(p, ("meta-scale-2025-06-12,2025-06-12,", "meta-scale-2025-06-12,2099-06-12,")),
         "field 'announced_date': 2099-06-12 is in the future", 2),
        ("naive timestamp", lambda p: _deals_with(p, (",09:48,", ",2025-06-10T09:48,")),
         "field 'announced_time_et': '2025-06-10T09:48': give the US/Eastern time of day as HH:MM", 2),
        ("unknown ticker", lambda p: _deals_with(p, (",META,", ",METAX,")),
         "unknown ticker 'METAX'", 2),
        ("missing column", lambda p: _deals_with(p, raw=HEADER.replace(",session", "") + "\n"), "missing column(s): session", 2),
        ("extra column", lambda p: _deals_with(p, raw=HEADER + "\nx,2025-01-02,,unknown,A,B,1,,chip_purchase,,,,,,https://x,verified,EXTRA\n"),
         "deals.csv:2", 2),
        ("malformed csv", lambda p: _deals_with(p, raw=HEADER + '\n"unterminated,2025-01-02\n'), "", 2),
        ("malformed yaml", lambda p: (p / "d.yaml").write_text("deals: [\n  - id: x\n") and p / "d.yaml", "malformed YAML", 2),
        ("very long field", lambda p: _deals_with(p, (",Meta,Scale AI,", ",Meta,Scale AI" + "x" * 5000 + ",")), "limit 4000", 2),
        ("unicode name", lambda p: _deals_with(p, (",Meta,Scale AI,", ",Meta,Scalé AI™,")), "unknown company 'Scalé AI™'", 2),
        ("empty file", lambda p: _deals_with(p, raw=""), "missing column(s)", 2),
        ("missing file", lambda p: p / "nope.csv", "file not found", 2),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(db: Path, tmp_path: Path, name: str, make, message: str, code: int) -> None:
    before = content_hash(db)
    path = make(tmp_path)
    res = carousel("ledger", "import", str(path), "--db", str(db))
    assert res.returncode == code, (name, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert message in res.stderr, (name, res.stderr)
    assert str(path) in res.stderr
    assert content_hash(db) == before


def test_duplicate_id_with_different_content_is_a_conflict(db: Path, tmp_path: Path) -> None:
    before = content_hash(db)
    path = _deals_with(tmp_path, (",14.3,", ",14.4,"))
    res = carousel("ledger", "import", str(path), "--db", str(db))
    assert res.returncode == 5 and "changed since it was imported (amount_usd)" in res.stderr, res.stderr
    assert content_hash(db) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ledger", "log", "--limit", "0"], "Invalid value for '--limit'"),
        (["study", "--window", "5,1"], "ends before it starts"),
        (["study", "--min-obs", "abc"], "Invalid value"),
        (["ledger", "asof", "--known-at", "2026-01-01T00:00"], "has no time zone"),
        (["sql", "SELECT 1", "--format", "xml"], "unknown format"),
    ],
)
def test_cli_arguments_out_of_range(db: Path, args: list[str], message: str) -> None:
    res = carousel(*args, "--db", str(db))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


def test_missing_empty_corrupt_and_truncated_databases(tmp_path: Path, db: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    res = carousel("ledger", "verify", "--db", str(missing))
    assert res.returncode == 4 and "does not exist" in res.stderr and not missing.exists()
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(os.urandom(8192))
    truncated = tmp_path / "truncated.duckdb"
    truncated.write_bytes(db.read_bytes()[:12288])
    for bad in (empty, garbage, truncated):
        for args in (["ledger", "verify"], ["ledger", "import", str(DEALS)], ["sql", "SELECT 1"]):
            res = carousel(*args, "--db", str(bad))
            assert res.returncode == 4, (bad.name, args, res.stderr)
            assert "Traceback" not in res.stderr
            assert str(bad) in res.stderr


def test_locked_database_gives_a_clear_message(db: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        before = db.stat().st_mtime_ns
        res = carousel("ledger", "import", str(DEALS), "--db", str(db))
        assert res.returncode == 3
        assert f"database {db} is in use by another carousel process (pid {holder.pid})" in res.stderr
        assert db.stat().st_mtime_ns == before
    finally:
        holder.kill()
        holder.wait()


def test_concurrent_imports_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    db = tmp_path / "conc.duckdb"
    procs = [subprocess.Popen([*CLI, "ledger", "import", str(DEALS), "--db", str(db)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(c for c, _ in results)
    assert set(codes) <= {0, 3}, results
    assert 0 in codes
    for c, err in results:
        if c == 3:
            assert "is in use by another carousel process" in err
    events, _, problems = check(db)
    assert problems == [] and events == N_IMPORT_EVENTS
    # Retrying the losers now adds nothing: no duplicates.
    res = carousel("ledger", "import", str(DEALS), "--db", str(db))
    assert res.returncode == 0 and "0 events appended" in res.stdout


def test_concurrent_refresh_is_refused_with_pid(tmp_path: Path) -> None:
    from market.refresh import refresh_lock

    db = tmp_path / "r.duckdb"
    with refresh_lock(db):
        res = carousel("refresh", "--source", "snapshot", "--db", str(db))
    assert res.returncode == 6
    assert f"refresh already running (pid {os.getpid()})" in res.stderr


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    outcomes = campaign(tmp_path, runs=6, max_delay=3.0)  # two each of import, snapshot, refresh
    assert [o.problems for o in outcomes] == [()] * 6
    assert any(o.killed for o in outcomes)


def test_yfinance_garbage_fails_only_that_ticker(monkeypatch: pytest.MonkeyPatch) -> None:
    import yfinance as yf

    from market.sources import YahooSource

    idx = pd.DatetimeIndex(["2025-10-06", "2025-10-07"], tz="America/New_York", name="Date")
    cols = pd.MultiIndex.from_product([["Close", "Adj Close", "Open", "High", "Low", "Volume"], ["AMD", "NVDA"]],
                                      names=["Price", "Ticker"])
    frame = pd.DataFrame(1.0, index=idx, columns=cols)
    frame[("Close", "NVDA")] = ["abc", None]
    frame[("Close", "AMD")] = [203.71, -1.0]
    monkeypatch.setattr(yf, "download", lambda *a, **k: frame)
    res = YahooSource().fetch(["AMD", "NVDA"], pd.Timestamp("2025-10-06").date(), pd.Timestamp("2025-10-08").date())
    assert res["NVDA"].error == "non-numeric values in 'Close' from Yahoo"
    assert res["AMD"].error is None and res["AMD"].rows is not None
    # The negative close then fails validation before anything is stored.
    from core.errors import InputError
    from market.validate import check_rows

    with pytest.raises(InputError, match="close"):
        check_rows(res["AMD"].rows, file="yahoo:AMD")


def test_ticker_names_cannot_traverse_paths(tmp_path: Path) -> None:
    from ledger.load import _TICKER_RE

    for evil in ("../../etc/passwd", "..", "AMD/../../x", "AMD;rm -rf", "a" * 30):
        assert not _TICKER_RE.match(evil)
    res = carousel("refresh", "--source", "snapshot", "--tickers", "../../etc/passwd", "--db", str(tmp_path / "t.duckdb"))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr


def test_no_sql_is_built_from_strings() -> None:
    """ruff's S608 (string-built SQL) finds nothing outside the reviewed, commented exceptions."""
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "S608", "carousel", "ledger", "market", "analysis"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stdout


def test_sql_never_writes(db: Path) -> None:
    before = content_hash(db)
    for stmt in ("DELETE FROM ledger_log", "SELECT 1; DROP TABLE ledger_log", "ATTACH 'x.duckdb' AS x",
                 "COPY (SELECT 1) TO 'leak.csv'", "CREATE TABLE t AS SELECT 1", "SET enable_external_access = true"):
        res = carousel("sql", stmt, "--db", str(db))
        assert res.returncode == 2, (stmt, res.stderr)
        assert "read-only" in res.stderr or "exactly one" in res.stderr
    assert content_hash(db) == before
    assert not Path("leak.csv").exists()


def test_tamper_detected_through_the_cli(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE ledger_log SET recorded_at = recorded_at - INTERVAL 1 SECOND WHERE position = 20")
    res = carousel("ledger", "verify", "--db", str(db))
    assert res.returncode == 5
    assert "position 20" in res.stderr
