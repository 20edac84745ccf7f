"""Snapshot load, the append-only store, views and validation, against the shipped real prices."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from carousel.db import connect
from core.errors import InputError
from market.api import prices, returns
from market.returns import compute_returns
from market.snapshot import load_snapshot
from market.sources import read_snapshot_file
from market.store import append_batch
from market.validate import check_rows, missing_sessions

DATA = Path(__file__).resolve().parents[2] / "data" / "prices"

# Row counts from data/prices/PROVENANCE.md.
ROWS = {"NVDA": 2170, "AMD": 2170, "ORCL": 2170, "MSFT": 2170, "GOOGL": 2170, "META": 2170,
        "AVGO": 2170, "AMZN": 2170, "SPY": 2170, "QQQ": 2170, "INTC": 2170, "TSM": 2170,
        "GOOG": 2170, "^GSPC": 2170, "^IXIC": 2170, "SOXX": 2170, "SMH": 500, "CRWV": 351,
        "ARM": 736, "9984.T": 2074}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    con = connect(tmp_path_factory.mktemp("snap") / "c.duckdb")
    load_snapshot(con, DATA)
    return con


def test_row_counts_match_provenance(loaded: duckdb.DuckDBPyConnection) -> None:
    got = dict(loaded.execute("SELECT ticker, count(*) FROM prices GROUP BY 1").fetchall())
    assert got == ROWS
    assert loaded.execute("SELECT count(*) FROM price_rows").fetchall()[0] == (sum(ROWS.values()),)
    first_last = loaded.execute(
        "SELECT min(date), max(date) FROM prices WHERE ticker = '9984.T'").fetchall()[0]
    assert first_last == (date(2018, 1, 4), date(2026, 7, 6))
    crwv = loaded.execute("SELECT min(date) FROM prices WHERE ticker = 'CRWV'").fetchall()[0]
    assert crwv == (date(2025, 3, 28),)


def test_known_event_day_values(loaded: duckdb.DuckDBPyConnection) -> None:
    amd = prices(loaded, ["AMD"]).filter(pl.col("date").is_in([date(2025, 10, 3), date(2025, 10, 6)]))
    assert amd["close"].to_list() == [164.669998, 203.710007]
    r = returns(loaded, ["AMD", "ORCL", "INTC"])
    amd_r = r.filter((pl.col("ticker") == "AMD") & (pl.col("date") == date(2025, 10, 6))).row(0, named=True)
    assert amd_r["ret"] == pytest.approx(203.710007 / 164.669998 - 1, rel=1e-12)
    assert round(amd_r["ret"] * 100, 2) == 23.71
    orcl = r.filter((pl.col("ticker") == "ORCL") & (pl.col("date") == date(2025, 9, 10))).row(0, named=True)
    assert orcl["basis"] == "adj_close" and round(orcl["ret"] * 100, 1) == 35.9
    intc = r.filter((pl.col("ticker") == "INTC") & (pl.col("date") == date(2025, 9, 18))).row(0, named=True)
    # INTC has no adj_close in the snapshot: fallback to close, flagged.
    assert intc["basis"] == "close" and intc["ret"] == pytest.approx(30.57 / 24.90 - 1, rel=1e-12)


def test_view_and_polars_returns_agree(loaded: duckdb.DuckDBPyConnection) -> None:
    view = returns(loaded)
    pure = compute_returns(prices(loaded))
    assert view.height == pure.height == sum(ROWS.values()) - len(ROWS)
    assert view.select("ticker", "date", "basis").equals(pure.select("ticker", "date", "basis"))
    assert (view["ret"] - pure["ret"]).abs().max() < 1e-15  # type: ignore[operator]
    assert (view["log_ret"] - pure["log_ret"]).abs().max() < 1e-15  # type: ignore[operator]
    basis = dict(view.group_by("basis").len().iter_rows())
    # adj_close-less files: INTC, TSM, GOOG, SOXX, ^GSPC, ^IXIC = 6 x 2169 returns.
    assert basis["close"] == 6 * 2169
    # The two adj_close basis breaks PROVENANCE.md documents, and no other day.
    assert basis["close_adj_break"] == 2


def test_adj_close_basis_breaks_use_the_close_return(loaded: duckdb.DuckDBPyConnection) -> None:
    """MSFT rows from 2026-08-10 were adjusted for the 2026-08-20 dividend, earlier rows never rescaled;
    QQQ rows before 2026-06-02 sit 0.11% high. Their adj_close ratio is not a return (-0.19%, -0.11% off)."""
    r = returns(loaded)
    breaks = r.filter(pl.col("basis") == "close_adj_break").select("ticker", "date").rows()
    assert breaks == [("MSFT", date(2026, 8, 10)), ("QQQ", date(2026, 6, 2))]
    p = prices(loaded, ["MSFT", "QQQ"])
    for ticker, day, prev_day, bias in (("MSFT", date(2026, 8, 10), date(2026, 8, 7), -0.001879),
                                        ("QQQ", date(2026, 6, 2), date(2026, 6, 1), -0.001098)):
        now = p.filter((pl.col("ticker") == ticker) & (pl.col("date") == day)).row(0, named=True)
        before = p.filter((pl.col("ticker") == ticker) & (pl.col("date") == prev_day)).row(0, named=True)
        got = r.filter((pl.col("ticker") == ticker) & (pl.col("date") == day))["ret"].item()
        assert got == pytest.approx(now["close"] / before["close"] - 1, rel=1e-12)
        adj_ret = now["adj_close"] / before["adj_close"] - 1
        assert (1 + adj_ret) / (1 + got) - 1 == pytest.approx(bias, abs=1e-6)  # what the old rule reported
    # The ex-dividend day after the MSFT break keeps the adjusted return, which includes the dividend.
    ex = r.filter((pl.col("ticker") == "MSFT") & (pl.col("date") == date(2026, 8, 20))).row(0, named=True)
    assert ex["basis"] == "adj_close"


def test_basis_break_rule_falls_only() -> None:
    """A ratio rise (an ex-date) keeps adj_close; a fall beyond the tolerance switches to close."""
    day = [date(2025, 1, d) for d in (2, 3, 6, 7, 8)]
    df = pl.DataFrame({
        "ticker": ["A"] * 5,
        "date": day,
        "close": [100.0, 99.0, 101.0, 102.0, 103.0],
        # ratio: 0.98, 1.0 (ex-date: rises), 0.99 (falls 1%: break), 0.99 * (1 - 9e-6) (within tol)
        "adj_close": [98.0, 99.0, 99.99, 102.0 * 0.99 * (1 - 9e-6), 103.0 * 0.99 * (1 - 9e-6)],
    })
    out = compute_returns(df)
    assert out["basis"].to_list() == ["adj_close", "close_adj_break", "adj_close", "adj_close"]
    assert out["ret"].to_list() == pytest.approx([99 / 98 - 1, 101 / 99 - 1, 102 * 0.99 * (1 - 9e-6) / 99.99 - 1,
                                                  103 / 102 - 1], rel=1e-12)


def test_compute_returns_basis_fallback_row_level() -> None:
    df = pl.DataFrame({
        "ticker": ["A", "A", "A", "B", "B"],
        "date": [date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 6), date(2025, 1, 2), date(2025, 1, 3)],
        "close": [100.0, 110.0, 99.0, 50.0, 25.0],
        "adj_close": [90.0, 99.0, None, None, None],
    })
    out = compute_returns(df)
    assert out["basis"].to_list() == ["adj_close", "close", "close"]
    assert out["ret"].to_list() == pytest.approx([0.1, -0.1, -0.5])
    assert out["log_ret"].to_list() == pytest.approx([0.0953101798, -0.1053605157, -0.6931471806])


def test_second_load_is_skipped(loaded: duckdb.DuckDBPyConnection) -> None:
    before = loaded.execute("SELECT count(*) FROM price_rows").fetchall()[0]
    rep = load_snapshot(loaded, DATA)
    assert rep.skipped and rep.batch_id == 1 and rep.appended_rows == 0
    assert loaded.execute("SELECT count(*) FROM price_rows").fetchall()[0] == before
    assert loaded.execute("SELECT count(*) FROM price_batches").fetchall()[0] == (1,)


def test_changed_snapshot_appends_only_changes_and_reports_revision(tmp_path: Path) -> None:
    d = tmp_path / "prices"
    d.mkdir()
    for t in ("AMD.csv", "MSFT.csv"):
        shutil.copy(DATA / t, d / t)
    con = connect(tmp_path / "c.duckdb")
    first = load_snapshot(con, d)
    assert first.appended_rows == 4340 and first.new_rows == 4340
    # A re-adjusted adj_close for one old day (as after a dividend re-basing).
    text = (d / "MSFT.csv").read_text().replace("85.949997,78.699898,", "85.949997,78.5,")
    assert text != (d / "MSFT.csv").read_text()
    old_adj = con.execute(
        "SELECT adj_close FROM prices WHERE ticker='MSFT' AND date='2018-01-02'").fetchall()[0]
    (d / "MSFT.csv").write_text(text)
    second = load_snapshot(con, d)
    assert not second.skipped and second.appended_rows == 1 and second.new_rows == 0
    assert [(r.ticker, r.rows, r.fields) for r in second.revisions] == [("MSFT", 1, ("adj_close",))]
    both = con.execute("SELECT batch_id, adj_close FROM price_rows WHERE ticker='MSFT' "
                       "AND date='2018-01-02' ORDER BY batch_id").fetchall()
    assert [b for b, _ in both] == [1, 2] and both[0][1] == old_adj[0]
    latest = prices(con, ["MSFT"]).row(0, named=True)
    assert old_adj == (78.699898,)
    assert latest["batch_id"] == 2 and latest["adj_close"] == 78.5


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("2025-10-06,226.449997", "2025-10-06,-226.449997", 1952, "open"),
        ("2025-10-06,226.449997,226.710007,203.009995,203.710007", "2025-10-06,226.449997,226.710007,203.009995,NaN", 1952, "close"),
        ("2025-10-06,226.449997,226.710007,203.009995,203.710007", "2025-10-06,226.449997,226.710007,203.009995,", 1952, "close"),
        ("2025-10-06,", "2025-10-03,", 1952, "date"),
        ("2025-10-06,226.449997", "2025-10-06,abc", 1952, "open"),
    ],
)
def test_bad_rows_rejected_nothing_written(tmp_path: Path, old: str, new: str, line: int, field: str) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    shutil.copy(DATA / "NVDA.csv", d / "NVDA.csv")
    amd = (DATA / "AMD.csv").read_text()
    assert old in amd
    (d / "AMD.csv").write_text(amd.replace(old, new, 1))
    con = connect(tmp_path / "c.duckdb")
    with pytest.raises(InputError) as ei:
        load_snapshot(con, d)
    err = ei.value
    assert (Path(err.file or "").name, err.line, err.field) == ("AMD.csv", line, field)
    assert f"AMD.csv:{line}" in str(err)
    assert con.execute("SELECT count(*) FROM price_rows").fetchall()[0] == (0,)
    assert con.execute("SELECT count(*) FROM price_batches").fetchall()[0] == (0,)


def test_line_numbers_point_at_the_file_line() -> None:
    lines = (DATA / "AMD.csv").read_text().splitlines()
    assert lines[1951].startswith("2025-10-06,")  # line 1952 in 1-based numbering


def test_missing_sessions_against_calendar() -> None:
    for name in ("NVDA.csv", "9984.T.csv", "CRWV.csv"):
        rows = read_snapshot_file(DATA / name)
        m = missing_sessions(rows, rows["ticker"][0])
        assert (m.missing, m.extra) == ([], []), name
    rows = read_snapshot_file(DATA / "9984.T.csv")
    assert missing_sessions(rows, "9984.T").calendar == "XTKS"
    gap = rows.filter(pl.col("date") != date(2025, 10, 6))
    m = missing_sessions(gap, "9984.T")
    assert m.missing == [date(2025, 10, 6)]
    # 2025-10-13 (Sports Day) is a Tokyo holiday: a row there is reported as a non-session row.
    extra = pl.concat([rows, rows.tail(1).with_columns(date=pl.lit(date(2025, 10, 13)))]).sort("date")
    assert missing_sessions(extra, "9984.T").extra == [date(2025, 10, 13)]


def test_check_rows_accepts_blank_ohlc_of_9984() -> None:
    rows = read_snapshot_file(DATA / "9984.T.csv")
    assert rows["open"].null_count() == 2074
    check_rows(rows, file="9984.T.csv")


def test_failed_append_leaves_nothing(tmp_path: Path) -> None:
    con = connect(tmp_path / "c.duckdb")
    rows = pl.DataFrame({"ticker": ["AMD", "AMD"], "date": [date(2025, 1, 2), None],
                         "close": [1.0, 2.0]})
    with pytest.raises(duckdb.Error):
        append_batch(con, rows, source="test", tickers=["AMD"], start=None, end=None)
    assert con.execute("SELECT count(*) FROM price_batches").fetchall()[0] == (0,)
    assert con.execute("SELECT count(*) FROM price_rows").fetchall()[0] == (0,)
