"""carousel refresh against a faked yfinance.download (frames shaped like the real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, bar
from yfinance.exceptions import YFRateLimitError

from carousel.db import connect
from carousel.universe import universe
from market.api import prices
from market.calendars import sessions
from market.refresh import RefreshRunning, refresh, refresh_lock
from market.sources import YahooSource

REPO = Path(__file__).resolve().parents[2]


def _history(ticker_closes: dict[str, float], start: date, end: date) -> dict:
    """Deterministic history on real XNYS sessions: close grows 0.1% per session."""
    days = sessions("XNYS", start, end).to_list()
    return {t: {d: bar(round(c * 1.001**i, 6)) for i, d in enumerate(days)}
            for t, c in ticker_closes.items()}


START, END = date(2018, 1, 1), date(2025, 10, 6)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeYahoo:
    f = FakeYahoo(_history({"AMD": 10.0, "SPY": 260.0}, date(2025, 9, 1), END))
    monkeypatch.setattr(yfinance, "download", f)
    return f


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "c.duckdb")


def test_rate_limit_then_success_with_backoff(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    fake.raise_queue += [YFRateLimitError(), TimeoutError("read timed out")]
    slept: list[float] = []
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, sleep=slept.append)
    assert slept == [2.0, 4.0] and rep.attempts == 3
    assert rep.exit_code == 0 and rep.ok == ["AMD", "SPY"] and rep.failed == {}
    assert rep.batch is not None and rep.batch.appended_rows == 2 * 25  # 25 sessions in Sep 1..Oct 6
    p = prices(con, ["AMD"])
    assert p.height == 25 and p["close"][-1] == round(10.0 * 1.001**24, 6)
    assert fake.calls[-1]["start"] == "2018-01-01"


def test_gives_up_after_max_attempts(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    fake.raise_queue += [YFRateLimitError()] * 3
    slept: list[float] = []
    rep = refresh(con, YahooSource(), ["AMD"], end=END, max_attempts=3, sleep=slept.append)
    assert slept == [2.0, 4.0]
    assert rep.exit_code == 2 and "gave up after 3 attempts" in rep.failed["AMD"]
    assert con.execute("SELECT status, row_count FROM price_batches").fetchall() == [("failed", 0)]
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(0,)]


def test_empty_frame_is_failed(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    rep = refresh(con, YahooSource(), ["NOPE"], end=END, sleep=lambda s: None)
    # yfinance's own message for a symbol without data (download() logs it; YahooSource reports it).
    assert rep.exit_code == 2
    assert rep.failed["NOPE"] == "possibly delisted; no price data found  (1d 2018-01-01 -> 2025-10-07)"
    assert len(fake.calls) == 1  # not retryable: no retries


def test_partial_tickers_commit_the_good_ones(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    rep = refresh(con, YahooSource(), ["AMD", "DELISTED"], end=END, sleep=lambda s: None)
    assert rep.exit_code == 1 and rep.status == "partial"
    assert rep.ok == ["AMD"] and "possibly delisted; no price data found" in rep.failed["DELISTED"]
    assert prices(con)["ticker"].unique().to_list() == ["AMD"]
    row = con.execute("SELECT status, row_count, message FROM price_batches").fetchall()[0]
    assert row[0] == "partial" and row[1] == 25 and "DELISTED" in row[2]


def test_per_ticker_rate_limit_retried_alone(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    fake.log_errors["SPY"] = "YFRateLimitError('Too Many Requests. Rate limited.')"
    calls = []

    def sleep(s: float) -> None:
        calls.append(s)
        fake.log_errors.clear()  # the limit lifts while we wait

    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, sleep=sleep)
    assert rep.exit_code == 0 and calls == [2.0]
    assert [c["tickers"] for c in fake.calls] == [["AMD", "SPY"], ["SPY"]]


def test_nan_close_row_fails_that_ticker(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    fake.history["AMD"][date(2025, 10, 3)]["Close"] = float("nan")
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, sleep=lambda s: None)
    assert rep.exit_code == 1 and rep.ok == ["SPY"]
    assert "yahoo:AMD" in rep.failed["AMD"] and "field 'close'" in rep.failed["AMD"]


def test_incremental_uses_overlap_and_appends_nothing_unchanged(
        fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    refresh(con, YahooSource(), ["AMD", "SPY"], end=date(2025, 9, 30), sleep=lambda s: None)
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, overlap=5, sleep=lambda s: None)
    # last stored 2025-09-30; 5 sessions back = 2025-09-23
    assert fake.calls[-1]["start"] == "2025-09-23" and fake.calls[-1]["tickers"] == ["AMD", "SPY"]
    assert rep.refetched == [] and rep.batch is not None
    assert rep.batch.appended_rows == 2 * 4 and rep.batch.revisions == []  # Oct 1, 2, 3, 6
    assert prices(con).height == 50


def test_revised_history_refetches_and_keeps_both(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    refresh(con, YahooSource(), ["AMD", "SPY"], end=date(2025, 9, 30), sleep=lambda s: None)
    # SPY goes ex-dividend on 2025-10-01: Yahoo rescales every earlier Adj Close by 0.99.
    for d, b in fake.history["SPY"].items():
        if d < date(2025, 10, 1):
            b["Adj Close"] = round(b["Close"] * 0.99, 6)
    fake.history["SPY"][date(2025, 10, 1)]["Dividends"] = 1.7
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, sleep=lambda s: None)
    assert rep.refetched == ["SPY"]
    assert fake.calls[-1]["tickers"] == ["SPY"] and fake.calls[-1]["start"] == "2018-01-01"
    assert rep.batch is not None
    [rev] = rep.batch.revisions
    assert (rev.ticker, rev.rows, rev.first_date, rev.last_date, rev.fields) == (
        "SPY", 21, date(2025, 9, 2), date(2025, 9, 30), ("adj_close",))
    both = con.execute("SELECT batch_id, adj_close, close FROM price_rows WHERE ticker = 'SPY' "
                       "AND date = DATE '2025-09-02' ORDER BY batch_id").fetchall()
    assert [b for b, _, _ in both] == [1, 2]
    assert both[0][1] == both[0][2] and both[1][1] == round(both[1][2] * 0.99, 6)
    latest = prices(con, ["SPY"]).filter(pl.col("date") == date(2025, 9, 2)).row(0, named=True)
    assert latest["batch_id"] == 2 and latest["adj_close"] == both[1][1]
    assert con.execute("SELECT count(*) FROM price_rows WHERE ticker = 'AMD'").fetchall() == [(25,)]


def test_universe_fallback_without_ledger(con: duckdb.DuckDBPyConnection) -> None:
    tickers, note = universe(con)
    assert tickers == ["QQQ", "SOXX", "SPY", "^GSPC"]
    assert note is not None and "stored tickers + benchmarks" in note


# ------------------------------------------------------------------------------------------ locking

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from market.refresh import refresh_lock
    with refresh_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(db: Path, seconds: float) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db), str(seconds)],
                         stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_second_refresh_reports_running_pid(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    holder = _hold(db, 30)
    try:
        expected = rf"refresh already running \(pid {holder.pid}\)"
        with pytest.raises(RefreshRunning, match=expected) as ei, refresh_lock(db):
            pass
        assert ei.value.exit_code == 6
        # the same through the CLI in a second process
        cli = subprocess.run(
            [sys.executable, "-c", _CLI, "refresh", "--db", str(db), "--source", "snapshot",
             "--tickers", "AMD"], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert cli.returncode == 6, cli.stderr
        assert f"refresh already running (pid {holder.pid})" in cli.stderr
        assert not db.exists()  # the loser never opened the database
    finally:
        holder.kill()
        holder.wait()


def test_wait_takes_the_lock_after_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    holder = _hold(db, 1.5)
    t = time.monotonic()
    cli = subprocess.run(
        [sys.executable, "-c", _CLI, "refresh", "--db", str(db), "--source", "snapshot",
         "--tickers", "AMD,CRWV", "--wait"], capture_output=True, text=True, cwd=REPO, timeout=120)
    waited = time.monotonic() - t
    holder.wait()
    assert cli.returncode == 0, cli.stderr
    assert waited > 0.5  # it really waited for the holder
    c = duckdb.connect(str(db), read_only=True)
    assert c.execute("SELECT ticker, count(*) FROM prices GROUP BY 1 ORDER BY 1").fetchall() == [
        ("AMD", 2170), ("CRWV", 351)]
    c.close()


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    holder = _hold(db, 60)
    os.kill(holder.pid, 9)
    holder.wait()
    with refresh_lock(db) as path:
        assert path.read_text().strip() == str(os.getpid())


# Runs the market commands the way carousel.cli.main does (exit codes from CarouselError / typer.Exit).
_CLI = textwrap.dedent("""
    import sys, typer
    from core.errors import CarouselError
    from carousel.cli.market import register
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    register(app)
    try:
        rv = app(args=sys.argv[1:], standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except CarouselError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
""")


def test_snapshot_refresh_is_incremental(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    args = [sys.executable, "-c", _CLI, "refresh", "--db", str(db), "--source", "snapshot",
            "--tickers", "AMD,9984.T,NOPE"]
    first = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert first.returncode == 1, first.stderr  # NOPE has no snapshot file -> partial
    assert "failed: NOPE" in first.stderr and "2/3 tickers ok, 4244 rows appended" in first.stdout
    second = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert second.returncode == 1 and "0 rows appended" in second.stdout


def test_volume_only_revision_no_full_refetch(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    refresh(con, YahooSource(), ["AMD"], end=date(2025, 9, 30), sleep=lambda s: None)
    fake.history["AMD"][date(2025, 9, 30)]["Volume"] = 1_234_567  # volume finalised after capture
    rep = refresh(con, YahooSource(), ["AMD"], end=END, sleep=lambda s: None)
    assert rep.refetched == [] and fake.calls[-1]["start"] == "2025-09-23"
    assert rep.batch is not None
    assert [(r.ticker, r.rows, r.fields) for r in rep.batch.revisions] == [("AMD", 1, ("volume",))]
    assert rep.batch.appended_rows == 1 + 4 and rep.batch.new_rows == 4
    v = prices(con, ["AMD"]).filter(pl.col("date") == date(2025, 9, 30))["volume"].to_list()
    assert v == [1_234_567]


def test_snapshot_then_yahoo_fills_missing_adj_close(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    # INTC ships without adj_close; Yahoo has it -> the overlap differs -> full re-fetch; the snapshot
    # rows stay in price_rows and returns switch to the adj_close basis.
    import shutil

    from market.snapshot import load_snapshot
    from market.sources import read_snapshot_file

    d = tmp_path / "p"
    d.mkdir()
    shutil.copy(REPO / "data" / "prices" / "INTC.csv", d / "INTC.csv")
    con = connect(tmp_path / "c.duckdb")
    load_snapshot(con, d)
    snap = read_snapshot_file(d / "INTC.csv")
    hist = {"INTC": {r["date"]: bar(r["close"], adj=round(r["close"] * 0.97, 6), volume=r["volume"])
                     for r in snap.iter_rows(named=True)}}
    monkeypatch.setattr(yfinance, "download", FakeYahoo(hist))
    rep = refresh(con, YahooSource(), ["INTC"], end=date(2026, 8, 20), sleep=lambda s: None)
    assert rep.refetched == ["INTC"] and rep.exit_code == 0
    assert rep.batch is not None and rep.batch.revisions[0].rows == 2170
    basis = con.execute("SELECT basis, count(*) FROM returns GROUP BY 1").fetchall()
    assert basis == [("adj_close", 2169)]
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(4340,)]


def test_missing_sessions_reported(fake: FakeYahoo, con: duckdb.DuckDBPyConnection) -> None:
    del fake.history["AMD"][date(2025, 9, 15)]
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=END, sleep=lambda s: None)
    assert rep.exit_code == 0 and rep.missing_sessions == {"AMD": [date(2025, 9, 15)]}


def test_unfinished_session_not_stored(monkeypatch: pytest.MonkeyPatch,
                                       con: duckdb.DuckDBPyConnection) -> None:
    from datetime import UTC, datetime

    hist = _history({"AMD": 10.0}, date(2025, 9, 1), END)
    tokyo = sessions("XTKS", date(2025, 9, 1), END).to_list()
    hist["9984.T"] = {d: bar(round(15000 * 1.001**i, 6)) for i, d in enumerate(tokyo)}
    monkeypatch.setattr(yfinance, "download", FakeYahoo(hist))
    # 2025-10-06 15:00 UTC = 11:00 in New York: the NYSE session is open (Yahoo serves a partial bar);
    # Tokyo's 2025-10-06 session closed at 06:30 UTC.
    rep = refresh(con, YahooSource(), ["9984.T", "AMD"], end=END, sleep=lambda s: None,
                  clock=lambda: datetime(2025, 10, 6, 15, 0, tzinfo=UTC))
    assert rep.exit_code == 0 and rep.not_closed == {"AMD": [END]}
    last = dict(con.execute("SELECT ticker, max(date) FROM prices GROUP BY 1").fetchall())
    assert last == {"AMD": date(2025, 10, 3), "9984.T": END}
    # At the close (16:00 EDT = 20:00 UTC) the session is final and stored.
    rep = refresh(con, YahooSource(), ["9984.T", "AMD"], end=END, sleep=lambda s: None,
                  clock=lambda: datetime(2025, 10, 6, 20, 0, tzinfo=UTC))
    assert rep.not_closed == {} and rep.batch is not None and rep.batch.appended_rows == 1
    assert prices(con, ["AMD"])["close"][-1] == round(10.0 * 1.001**24, 6)


def test_half_day_close_and_naive_clock(monkeypatch: pytest.MonkeyPatch,
                                        con: duckdb.DuckDBPyConnection) -> None:
    from datetime import UTC, datetime

    # 2025-11-28 (day after Thanksgiving) closes at 13:00 EST = 18:00 UTC.
    hist = _history({"SPY": 600.0}, date(2025, 11, 20), date(2025, 11, 28))
    monkeypatch.setattr(yfinance, "download", FakeYahoo(hist))
    rep = refresh(con, YahooSource(), ["SPY"], sleep=lambda s: None,
                  clock=lambda: datetime(2025, 11, 28, 17, 59, tzinfo=UTC))
    assert rep.not_closed == {"SPY": [date(2025, 11, 28)]} and prices(con)["date"][-1] == date(2025, 11, 26)
    rep = refresh(con, YahooSource(), ["SPY"], sleep=lambda s: None,
                  clock=lambda: datetime(2025, 11, 28, 18, 1, tzinfo=UTC))
    assert rep.not_closed == {} and prices(con)["date"][-1] == date(2025, 11, 28)
    with pytest.raises(ValueError, match="timezone-aware"):
        refresh(con, YahooSource(), ["SPY"], sleep=lambda s: None,
                clock=lambda: datetime(2025, 11, 28, 18, 1))  # noqa: DTZ001 - the point of the test
