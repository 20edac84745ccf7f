"""Snapshot rows never replace fetched (Yahoo) prices; a stale full re-fetch never lands under newer rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, bar, yahoo_history

from carousel.db import connect
from market.api import prices, returns
from market.refresh import refresh
from market.snapshot import load_snapshot
from market.sources import SnapshotSource, YahooSource, read_snapshot_file
from market.store import append_batch

DATA = Path(__file__).resolve().parents[2] / "data" / "prices"
SNAPSHOT_ROWS = 38_381  # all 20 files (PROVENANCE.md)
AMD_ROWS = 2170


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "c.duckdb")


def _spy_ret(con: duckdb.DuckDBPyConnection, day: date) -> float:
    return float(returns(con, ["SPY"]).filter(pl.col("date") == day)["ret"][0])


def test_snapshot_refresh_keeps_fetched_prices(monkeypatch: pytest.MonkeyPatch,
                                               con: duckdb.DuckDBPyConnection) -> None:
    # The reviewer's case: Yahoo's SPY is on another adjustment basis (adj_close x 0.98) and reaches
    # 2026-08-21, a flat day. A snapshot refresh used to see the overlap 2026-08-14..20 differ, re-fetch
    # SPY's whole history from the snapshot and make it the latest batch up to 2026-08-20: the seam put
    # a -2.00% return on 2026-08-21.
    spy = read_snapshot_file(DATA / "SPY.csv")
    hist = yahoo_history(spy, adj_factor=0.98)
    last = hist[date(2026, 8, 20)]
    hist[date(2026, 8, 21)] = dict(last)
    monkeypatch.setattr(yfinance, "download", FakeYahoo({"SPY": hist}))
    first = refresh(con, YahooSource(), ["SPY"], end=date(2026, 8, 21), sleep=lambda s: None)
    assert first.exit_code == 0 and first.batch is not None and first.batch.appended_rows == 2171
    assert _spy_ret(con, date(2026, 8, 21)) == 0.0

    rep = refresh(con, SnapshotSource(DATA), ["AMD", "SPY"], sleep=lambda s: None)
    assert _spy_ret(con, date(2026, 8, 21)) == 0.0
    assert prices(con, ["SPY"])["batch_id"].unique().to_list() == [1]
    assert con.execute("SELECT count(*) FROM price_rows WHERE ticker = 'SPY'").fetchall() == [(2171,)]
    # Tickers without fetched rows load as before.
    amd = prices(con, ["AMD"])
    assert amd.height == AMD_ROWS and amd["batch_id"].unique().to_list() == [2]
    assert rep.kept_fetched == ["SPY"] and rep.ok == ["AMD"] and rep.refetched == []
    assert rep.exit_code == 0 and rep.batch is not None and rep.batch.appended_rows == AMD_ROWS
    msg = con.execute("SELECT tickers, message FROM price_batches WHERE batch_id = 2").fetchall()[0]
    assert msg == (["AMD"], "kept fetched prices for SPY")


def _fake_amd_batch(con: duckdb.DuckDBPyConnection) -> float:
    """A Yahoo batch for AMD only, on another basis than the snapshot (adj_close x 0.99)."""
    amd = read_snapshot_file(DATA / "AMD.csv").with_columns(
        adj_close=pl.col("adj_close") * 0.99, dividends=pl.lit(0.0), splits=pl.lit(0.0))
    append_batch(con, amd, source="yahoo", tickers=["AMD"], start=amd["date"].min(),  # type: ignore[arg-type]
                 end=amd["date"].max())  # type: ignore[arg-type]
    return float(amd.filter(pl.col("date") == date(2025, 10, 6))["adj_close"][0])


def test_load_snapshot_skips_tickers_with_fetched_rows(con: duckdb.DuckDBPyConnection) -> None:
    yahoo_adj = _fake_amd_batch(con)
    rep = load_snapshot(con, DATA)
    # AMD keeps Yahoo's values: no snapshot row of AMD was appended over them.
    amd = prices(con, ["AMD"])
    assert amd["batch_id"].unique().to_list() == [1]
    assert amd.filter(pl.col("date") == date(2025, 10, 6))["adj_close"][0] == yahoo_adj
    assert con.execute("SELECT count(*) FROM price_rows WHERE ticker = 'AMD'").fetchall() == [(AMD_ROWS,)]
    # The other 19 tickers are loaded in full.
    assert rep.appended_rows == rep.new_rows == SNAPSHOT_ROWS - AMD_ROWS and rep.revisions == []
    per = dict(con.execute("SELECT ticker, count(*) FROM prices WHERE batch_id = 2 GROUP BY 1").fetchall())
    assert len(per) == 19 and "AMD" not in per and sum(per.values()) == SNAPSHOT_ROWS - AMD_ROWS
    assert rep.kept_fetched == ["AMD"] and not rep.skipped
    assert "kept fetched prices for AMD" in (rep.message or "")
    # The content-hash rule still holds: the identical snapshot is skipped without reading it again.
    again = load_snapshot(con, DATA)
    assert again.skipped and again.batch_id == 2 and again.appended_rows == 0
    assert con.execute("SELECT count(*) FROM price_batches").fetchall() == [(2,)]


def test_load_snapshot_with_every_ticker_fetched_writes_nothing(tmp_path: Path,
                                                                 con: duckdb.DuckDBPyConnection) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "AMD.csv").write_bytes((DATA / "AMD.csv").read_bytes())
    _fake_amd_batch(con)
    rep = load_snapshot(con, d)
    assert (rep.appended_rows, rep.kept_fetched, rep.skipped) == (0, ["AMD"], True)
    assert con.execute("SELECT count(*) FROM price_batches").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(AMD_ROWS,)]


def test_load_snapshot_cli_reports_kept(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with connect(db) as c:
        _fake_amd_batch(c)
    code, out, _ = run_cli(["market", "load-snapshot", "--db", str(db)], capsys)
    assert code == 0, out
    assert f"batch 2: {SNAPSHOT_ROWS - AMD_ROWS} rows appended" in out
    assert "kept fetched prices for AMD" in out


def test_run_loads_the_snapshot_for_tickers_not_fetched(tmp_path: Path) -> None:
    # carousel run used to skip the snapshot entirely once any ticker had a fetched batch, leaving the
    # other 19 tickers without prices; the per-ticker rule of load_snapshot replaces that.
    from carousel.mainjob import run

    db = tmp_path / "c.duckdb"
    with connect(db) as c:
        yahoo_adj = _fake_amd_batch(c)
    summary = run(db, tmp_path / "out", online=False, progress=False)
    assert summary.price_rows_appended == SNAPSHOT_ROWS - AMD_ROWS
    with connect(db, read_only=True) as c:
        assert c.execute("SELECT count(DISTINCT ticker), count(*) FROM prices").fetchall() == [
            (20, SNAPSHOT_ROWS)]
        got = c.execute("SELECT batch_id, adj_close FROM prices WHERE ticker = 'AMD' "
                        "AND date = DATE '2025-10-06'").fetchall()
    assert got == [(1, yahoo_adj)]


def test_stale_full_refetch_is_refused(monkeypatch: pytest.MonkeyPatch,
                                       con: duckdb.DuckDBPyConnection) -> None:
    from market.calendars import sessions

    days = sessions("XNYS", date(2025, 9, 1), date(2025, 10, 6)).to_list()
    hist = {t: {d: bar(round(c * 1.001**i, 6)) for i, d in enumerate(days)}
            for t, c in {"AMD": 10.0, "SPY": 260.0}.items()}
    fake = FakeYahoo(hist)
    monkeypatch.setattr(yfinance, "download", fake)
    refresh(con, YahooSource(), ["AMD", "SPY"], end=date(2025, 10, 6), sleep=lambda s: None)
    # Yahoo now serves a re-adjusted SPY history that stops at 2025-10-01 (stale): the overlap differs,
    # the full re-fetch ends before the stored 2025-10-06 and must not be appended under those rows.
    fake.history["SPY"] = {d: dict(b, **{"Adj Close": round(b["Close"] * 0.99, 6)})
                           for d, b in hist["SPY"].items() if d <= date(2025, 10, 1)}
    rep = refresh(con, YahooSource(), ["AMD", "SPY"], end=date(2025, 10, 6), sleep=lambda s: None)
    assert prices(con, ["SPY"])["batch_id"].unique().to_list() == [1]
    assert con.execute("SELECT count(*) FROM price_rows WHERE ticker = 'SPY'").fetchall() == [(25,)]
    assert rep.ok == ["AMD"] and rep.exit_code == 1 and rep.refetched == ["SPY"]
    assert "ends 2025-10-01" in rep.failed["SPY"] and "2025-10-06" in rep.failed["SPY"]



def test_snapshot_refresh_cli_reports_kept(run_cli: Callable, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with connect(db) as c:
        _fake_amd_batch(c)
    code, out, err = run_cli(["refresh", "--db", str(db), "--source", "snapshot", "--tickers", "AMD,CRWV"],
                             capsys)
    assert code == 0, err
    assert "1/2 tickers ok, 351 rows appended" in out and "kept fetched prices for AMD" in out
