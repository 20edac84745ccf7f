"""What counts as a revision: NULL dividends/splits equal 0.0, snapshot rounding is not a change, a
re-adjustment of 1e-4 is. Checked on both revision checks (store SQL and the refresh overlap in Polars)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, yahoo_history

from carousel.db import connect
from market.refresh import overlap_changed, refresh
from market.snapshot import load_snapshot
from market.sources import YahooSource, read_snapshot_file
from market.store import append_batch, conform

DATA = Path(__file__).resolve().parents[2] / "data" / "prices"
DAY = date(2018, 1, 2)


def _nvda_day() -> pl.DataFrame:
    """NVDA 2018-01-02 from the snapshot: 6 decimals, no dividends/splits columns (NULL)."""
    return read_snapshot_file(DATA / "NVDA.csv").filter(pl.col("date") == DAY)


def _yahoo_of(snap: pl.DataFrame) -> pl.DataFrame:
    """The same day as Yahoo serves it: float32 prices, dividends and splits 0.0."""
    h = yahoo_history(snap)[DAY]
    return conform(pl.DataFrame({
        "ticker": ["NVDA"], "date": [DAY], "open": [h["Open"]], "high": [h["High"]], "low": [h["Low"]],
        "close": [h["Close"]], "adj_close": [h["Adj Close"]], "volume": [int(h["Volume"])],
        "dividends": [0.0], "splits": [0.0],
    }))


def test_yahoo_float_of_snapshot_price_differs_beyond_old_tolerance() -> None:
    # Measured, not assumed: the snapshot's 6-decimal 4.8945 is 4.894499778747559 at Yahoo.
    snap, yahoo = _nvda_day(), _yahoo_of(_nvda_day())
    rel = max(abs(yahoo[c][0] - snap[c][0]) / snap[c][0] for c in ("open", "high", "low", "close", "adj_close"))
    assert rel == pytest.approx(4.52e-8, rel=1e-2)  # open; above the former REL_TOL of 1e-9


def test_store_rounding_and_null_zero_are_not_revisions(tmp_path: Path) -> None:
    con = connect(tmp_path / "c.duckdb")
    snap = _nvda_day()
    append_batch(con, snap, source="snapshot", tickers=["NVDA"], start=DAY, end=DAY)
    rep = append_batch(con, _yahoo_of(snap), source="yahoo", tickers=["NVDA"], start=DAY, end=DAY)
    assert (rep.appended_rows, rep.revisions) == (0, [])
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(1,)]


@pytest.mark.parametrize(("change", "fields"), [
    # A dividend re-adjusts adj_close by 1e-4 or more; NVDA's $0.01 quarterly dividend is ~4.6e-5 at $217.
    ({"adj_close": pl.col("adj_close") * (1 - 1e-4)}, ("adj_close",)),
    ({"adj_close": pl.col("adj_close") * (1 - 4.6e-5)}, ("adj_close",)),
    # A real dividend or split where the snapshot has none (NULL) is a change, not NULL-vs-0 noise.
    ({"dividends": pl.lit(0.01)}, ("dividends",)),
    ({"splits": pl.lit(4.0)}, ("splits",)),
])
def test_store_real_change_is_a_revision(tmp_path: Path, change: dict, fields: tuple[str, ...]) -> None:
    con = connect(tmp_path / "c.duckdb")
    snap = _nvda_day()
    append_batch(con, snap, source="snapshot", tickers=["NVDA"], start=DAY, end=DAY)
    moved = _yahoo_of(snap).with_columns(**change)
    rep = append_batch(con, moved, source="yahoo", tickers=["NVDA"], start=DAY, end=DAY)
    assert rep.appended_rows == 1 and [(r.rows, r.fields) for r in rep.revisions] == [(1, fields)]


def test_overlap_check_same_rule() -> None:
    snap = _nvda_day()
    assert overlap_changed(_yahoo_of(snap), snap) == []
    moved = _yahoo_of(snap).with_columns(adj_close=pl.col("adj_close") * (1 - 1e-4))
    assert overlap_changed(moved, snap) == ["NVDA"]
    split = _yahoo_of(snap).with_columns(splits=pl.lit(4.0))
    assert overlap_changed(split, snap) == ["NVDA"]


def test_first_yahoo_refresh_after_snapshot_is_not_a_revision(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    for name in ("SPY.csv", "NVDA.csv"):
        shutil.copy(DATA / name, d / name)
    con: duckdb.DuckDBPyConnection = connect(tmp_path / "c.duckdb")
    load_snapshot(con, d)
    hist = {t: yahoo_history(read_snapshot_file(d / f"{t}.csv")) for t in ("SPY", "NVDA")}
    for t in hist:  # two sessions after the snapshot's end
        last = hist[t][date(2026, 8, 20)]
        hist[t][date(2026, 8, 21)] = dict(last)
        hist[t][date(2026, 8, 24)] = dict(last)
    fake = FakeYahoo(hist)
    monkeypatch.setattr(yfinance, "download", fake)
    rep = refresh(con, YahooSource(), ["NVDA", "SPY"], end=date(2026, 8, 24), sleep=lambda s: None)
    assert rep.refetched == [] and [c["start"] for c in fake.calls] == ["2026-08-13"]
    assert rep.batch is not None and rep.batch.revisions == []
    assert (rep.batch.appended_rows, rep.batch.new_rows) == (4, 4)
    assert con.execute("SELECT count(*) FROM price_rows").fetchall() == [(2 * 2170 + 4,)]
