"""A full re-fetch never leaves a ticker's stored history on two adjustment bases (review finding 3).

The ``prices`` view shows the latest row per (ticker, date), so a re-fetch replaces exactly the stored dates
it contains. Every scenario below is a 2:1 split re-adjustment: the stored rows are on the old basis
(twice the price), Yahoo now serves the same days halved. The price grows 1% a session on either basis, so
the true return of every day is 0.01 (numpy, below); a row left on the old basis next to a re-fetched one
gives 1.01 / 2 - 1 = -0.495 (or 2 * 1.01 - 1 = +1.02) at the seam instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, bar
from yfinance.exceptions import YFRateLimitError

from carousel.db import connect
from market.calendars import sessions
from market.refresh import refetch_refusals, refresh, unverified
from market.sources import YahooSource
from market.store import append_batch, conform

#: XNYS sessions 2017-12-26 .. 2018-01-09: stored rows may predate DEFAULT_START (2018-01-01).
DAYS = sessions("XNYS", date(2017, 12, 26), date(2018, 1, 9)).to_list()
NEW = {d: 100.0 * 1.01**i for i, d in enumerate(DAYS)}  # Yahoo's new basis
CLOCK = datetime(2018, 1, 10, 12, tzinfo=UTC)
LAST_STORED = date(2018, 1, 5)


def _true_returns(days: list[date]) -> np.ndarray:
    x = np.array([NEW[d] for d in days])
    return np.diff(x) / x[:-1]


def _store_old_basis(con: duckdb.DuckDBPyConnection, first: date) -> list[date]:
    """NVDA on the old basis (2 x NEW) from ``first`` to 2018-01-05, and SPY on Yahoo's basis, as a
    user's snapshot batch."""
    days = [d for d in DAYS if first <= d <= LAST_STORED]
    rows = pl.concat([
        pl.DataFrame({"ticker": "NVDA", "date": days, "close": [2 * NEW[d] for d in days]}),
        pl.DataFrame({"ticker": "SPY", "date": days, "close": [NEW[d] for d in days]}),
    ]).with_columns(adj_close=pl.col("close"), open=pl.col("close") * 0.99, high=pl.col("close") * 1.01,
                    low=pl.col("close") * 0.98, volume=pl.lit(1_000_000), dividends=pl.lit(0.0),
                    splits=pl.lit(0.0))
    append_batch(con, rows, source="snapshot", tickers=["NVDA", "SPY"], start=days[0], end=days[-1])
    return days


def _yahoo(nvda_days: list[date]) -> FakeYahoo:
    """Yahoo after the split: NVDA on the new basis on ``nvda_days``, SPY unchanged on every day."""
    return FakeYahoo({"NVDA": {d: bar(NEW[d]) for d in nvda_days}, "SPY": {d: bar(NEW[d]) for d in DAYS}})


def _refresh(con: duckdb.DuckDBPyConnection, **kw: Any) -> Any:
    return refresh(con, YahooSource(), ["NVDA", "SPY"], clock=lambda: CLOCK, sleep=lambda s: None, **kw)


def _nvda(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql("SELECT date, close, ret, batch_id FROM prices LEFT JOIN returns USING (ticker, date) "
                   "WHERE ticker = 'NVDA' ORDER BY date").pl()


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return connect(tmp_path / "c.duckdb")


def _assert_untouched(con: duckdb.DuckDBPyConnection, stored: list[date]) -> None:
    got = _nvda(con)
    assert got["date"].to_list() == stored and got["batch_id"].unique().to_list() == [1]
    assert got["close"].to_list() == [2 * NEW[d] for d in stored]
    np.testing.assert_allclose(got["ret"].to_numpy()[1:], _true_returns(stored), rtol=0, atol=1e-12)
    assert con.execute("SELECT count(*) FROM price_rows WHERE ticker = 'NVDA'").fetchall() == [(len(stored),)]


def test_refetch_starts_at_the_first_stored_date(monkeypatch: pytest.MonkeyPatch,
                                                 con: duckdb.DuckDBPyConnection) -> None:
    # The reviewer's p6: stored rows from 2017-12-26, before DEFAULT_START. The re-fetch used to start at
    # 2018-01-01, leaving 2017 on the old basis: -49.5% on 2018-01-02 (-50% in p6's flat version).
    _store_old_basis(con, DAYS[0])
    fake = _yahoo(DAYS)
    monkeypatch.setattr(yfinance, "download", fake)
    rep = _refresh(con)
    assert rep.exit_code == 0 and rep.refetched == ["NVDA"] and rep.failed == {}
    nvda_starts = [c["start"] for c in fake.calls if c["tickers"] == ["NVDA"]]
    assert nvda_starts == ["2017-12-26"]  # after the incremental NVDA+SPY call from 2017-12-28
    got = _nvda(con)
    assert got["date"].to_list() == DAYS and got["close"].to_list() == [NEW[d] for d in DAYS]
    np.testing.assert_allclose(got["ret"].to_numpy()[1:], _true_returns(DAYS), rtol=0, atol=1e-12)
    assert rep.batch is not None
    [rev] = [r for r in rep.batch.revisions if r.ticker == "NVDA"]
    assert (rev.rows, rev.first_date, rev.last_date) == (8, date(2017, 12, 26), LAST_STORED)


def test_refetch_starting_after_the_first_stored_date_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                 con: duckdb.DuckDBPyConnection) -> None:
    stored = _store_old_basis(con, DAYS[0])
    monkeypatch.setattr(yfinance, "download", _yahoo([d for d in DAYS if d >= date(2018, 1, 2)]))
    rep = _refresh(con)
    assert rep.exit_code == 1 and rep.ok == ["SPY"] and rep.refetched == ["NVDA"]
    assert "starts 2018-01-02, after the first stored date 2017-12-26" in rep.failed["NVDA"]
    assert "stored prices kept" in rep.failed["NVDA"]
    _assert_untouched(con, stored)


def test_refetch_with_a_hole_is_refused(monkeypatch: pytest.MonkeyPatch,
                                        con: duckdb.DuckDBPyConnection) -> None:
    # Stored from 2018-01-02 (so the old rule's 2018-01-01 start is not the fault): Yahoo's history lacks
    # 2018-01-03. Stored, the old 01-03 would sit between re-fetched days: +102% on 01-03, -49.5% on 01-04.
    stored = _store_old_basis(con, date(2018, 1, 2))
    monkeypatch.setattr(yfinance, "download",
                        _yahoo([d for d in DAYS if d >= date(2018, 1, 2) and d != date(2018, 1, 3)]))
    rep = _refresh(con)
    assert rep.exit_code == 1 and rep.refetched == ["NVDA"]
    assert "lacks 1 stored date(s) inside its range (2018-01-03)" in rep.failed["NVDA"]
    _assert_untouched(con, stored)


def test_fetch_sharing_no_stored_date_is_verified_by_a_full_refetch(monkeypatch: pytest.MonkeyPatch,
                                                                   con: duckdb.DuckDBPyConnection) -> None:
    # Yahoo serves nothing for the stored days, only 2018-01-08 and 01-09 on the new basis. The overlap check
    # compared shared dates only, found none, and appended both: -49.5% on 2018-01-08.
    stored = _store_old_basis(con, DAYS[0])
    fake = _yahoo([date(2018, 1, 8), date(2018, 1, 9)])
    monkeypatch.setattr(yfinance, "download", fake)
    rep = _refresh(con)
    assert rep.refetched == ["NVDA"] and [c["start"] for c in fake.calls] == ["2017-12-28", "2017-12-26"]
    assert "(it shares no date with the stored rows) starts 2018-01-08, after the first stored date " \
           "2017-12-26" in rep.failed["NVDA"]
    _assert_untouched(con, stored)


@pytest.mark.parametrize("failure", ["rate_limit", "nan_close"])
def test_failed_refetch_keeps_old_prices(monkeypatch: pytest.MonkeyPatch, con: duckdb.DuckDBPyConnection,
                                         failure: str) -> None:
    stored = _store_old_basis(con, DAYS[0])
    fake = _yahoo(DAYS)
    if failure == "nan_close":  # outside the incremental window, so only the full re-fetch sees it
        fake.history["NVDA"][date(2017, 12, 27)]["Close"] = float("nan")

    def download(*args: Any, **kw: Any) -> Any:
        if failure == "rate_limit" and fake.calls:  # the incremental call succeeds, the re-fetch never
            fake.raise_queue.append(YFRateLimitError())
        return fake(*args, **kw)

    monkeypatch.setattr(yfinance, "download", download)
    rep = _refresh(con, max_attempts=3)
    assert rep.ok == ["SPY"] and rep.refetched == ["NVDA"] and rep.exit_code == 1
    expected = "gave up after 3 attempts" if failure == "rate_limit" else "field 'close'"
    assert expected in rep.failed["NVDA"]
    _assert_untouched(con, stored)
    # SPY's two new sessions were stored in the same batch.
    assert rep.batch is not None and rep.batch.appended_rows == 2 and rep.batch.revisions == []


# ------------------------------------------------------------------------------- the pure rules


def _rows(ticker: str, days: list[date], scale: float = 1.0) -> pl.DataFrame:
    return conform(pl.DataFrame({"ticker": ticker, "date": days, "close": [scale * NEW[d] for d in days]})
                   .with_columns(adj_close=pl.col("close")))


def test_refusal_rules() -> None:
    stored = _rows("NVDA", DAYS[:8], scale=2.0)
    # Covers every stored date: stored whatever its values (it replaces every stored day).
    assert refetch_refusals(_rows("NVDA", DAYS), stored) == {}
    # Lacks stored dates but agrees on every shared one (same basis): nothing is left on another basis.
    assert refetch_refusals(_rows("NVDA", DAYS[3:], scale=2.0), stored) == {}
    # Lacks stored dates and differs: refused, each lack named.
    why = refetch_refusals(_rows("NVDA", DAYS[2:6]), stored)["NVDA"]
    assert "starts 2017-12-28, after the first stored date 2017-12-26" in why
    assert "ends 2018-01-03, before the stored last date 2018-01-05" in why
    hole = refetch_refusals(_rows("NVDA", DAYS[:3] + DAYS[4:]), stored)["NVDA"]
    assert "lacks 1 stored date(s) inside its range (2017-12-29)" in hole and "starts" not in hole
    # Shares no date: nothing shows the bases agree.
    assert "shares no date" in refetch_refusals(_rows("NVDA", DAYS[8:], scale=2.0), stored)["NVDA"]
    # Per ticker: SPY covered, NVDA not.
    both = refetch_refusals(pl.concat([_rows("NVDA", DAYS[1:]), _rows("SPY", DAYS)]),
                            pl.concat([stored, _rows("SPY", DAYS[:8])]))
    assert list(both) == ["NVDA"]


def test_unverified_rule() -> None:
    stored = pl.concat([_rows("NVDA", DAYS[:8]), _rows("SPY", DAYS[:8])])
    fetched = pl.concat([_rows("NVDA", DAYS[8:]), _rows("SPY", DAYS[7:])])
    assert unverified(fetched, stored) == ["NVDA"]


def test_second_refresh_appends_nothing_and_rate_limits_keep_prices(
        monkeypatch: pytest.MonkeyPatch, con: duckdb.DuckDBPyConnection) -> None:
    # The reviewer's p5: NVDA and 9984.T (two download groups), twice, then a refresh that is rate
    # limited on every attempt: status failed, 0 rows, the 14 stored rows kept.
    days = sessions("XNYS", date(2025, 6, 2), date(2025, 6, 10)).to_list()
    hist = {"NVDA": {d: bar(100 + i) for i, d in enumerate(days)},
            "9984.T": {d: bar(9000 + i) for i, d in enumerate(days)}}
    fake = FakeYahoo(hist)
    monkeypatch.setattr(yfinance, "download", fake)
    clock = datetime(2025, 6, 11, 12, tzinfo=UTC)
    runs = [refresh(con, YahooSource(), ["NVDA", "9984.T"], start_default=date(2025, 6, 1),
                    clock=lambda: clock, sleep=lambda s: None) for _ in range(2)]
    assert [(r.status, r.batch.appended_rows if r.batch else None) for r in runs] == [("ok", 14), ("ok", 0)]
    fake.raise_queue = [YFRateLimitError()] * 10
    rep = refresh(con, YahooSource(), ["NVDA", "9984.T"], clock=lambda: clock, sleep=lambda s: None)
    assert rep.status == "failed" and rep.batch is not None and rep.batch.appended_rows == 0
    assert set(rep.failed) == {"NVDA", "9984.T"} and all("gave up after 5" in e for e in rep.failed.values())
    assert con.execute("SELECT batch_id, status, row_count FROM price_batches ORDER BY 1").fetchall() == [
        (1, "ok", 14), (2, "ok", 0), (3, "failed", 0)]
    got = con.execute("SELECT ticker, sum(close) FROM prices GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("9984.T", sum(9000.0 + i for i in range(7))), ("NVDA", sum(100.0 + i for i in range(7)))]


def test_snapshot_source_refetch_is_held_to_the_same_rule(tmp_path: Path,
                                                          con: duckdb.DuckDBPyConnection) -> None:
    # `carousel refresh --source snapshot` with another prices folder: its NVDA.csv is on the new basis
    # but starts 2018-01-02, after the stored 2017-12-26. Refused like Yahoo's re-fetch; a file that
    # covers every stored date replaces the whole history.
    from market.sources import SnapshotSource

    stored = _store_old_basis(con, DAYS[0])
    folder = tmp_path / "p"
    folder.mkdir()

    def write(days: list[date]) -> None:
        lines = ["date,open,high,low,close,adj_close,volume"] + [
            f"{d},{NEW[d]!r},{NEW[d]!r},{NEW[d]!r},{NEW[d]!r},{NEW[d]!r},1000" for d in days]
        (folder / "NVDA.csv").write_text("\n".join(lines) + "\n")

    write([d for d in DAYS if d >= date(2018, 1, 2)])
    src = SnapshotSource(folder)
    rep = refresh(con, src, ["NVDA"], clock=lambda: CLOCK, sleep=lambda s: None)
    assert rep.refetched == ["NVDA"] and rep.exit_code == 2
    assert "starts 2018-01-02, after the first stored date 2017-12-26" in rep.failed["NVDA"]
    _assert_untouched(con, stored)
    write(DAYS)
    rep = refresh(con, src, ["NVDA"], clock=lambda: CLOCK, sleep=lambda s: None)
    assert rep.exit_code == 0 and rep.refetched == ["NVDA"]
    got = _nvda(con)
    assert got["date"].to_list() == DAYS and got["close"].to_list() == [NEW[d] for d in DAYS]
    np.testing.assert_allclose(got["ret"].to_numpy()[1:], _true_returns(DAYS), rtol=0, atol=1e-12)


def test_load_snapshot_is_held_to_the_same_rule(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    # `carousel market load-snapshot` of a second folder whose NVDA.csv is on the new basis from 2018-01-04
    # only used to append it: the stored 2018-01-03 stayed at 200 next to 100 on 01-04 (-50%).
    from core.errors import InputError
    from market.snapshot import load_snapshot

    def folder(name: str, days: list[date], scale: float) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "NVDA.csv").write_text("date,open,high,low,close,adj_close,volume\n" + "".join(
            f"{x},{scale * NEW[x]!r},{scale * NEW[x]!r},{scale * NEW[x]!r},{scale * NEW[x]!r},"
            f"{scale * NEW[x]!r},1000\n" for x in days))
        return d

    stored = DAYS[4:8]  # 2018-01-02 .. 01-05
    load_snapshot(con, folder("old", stored, 2.0))
    with pytest.raises(InputError, match=r"NVDA\.csv: NVDA: snapshot file \(its values differ from the stored "
                                         r"ones\) starts 2018-01-04, after the first stored date 2018-01-02"):
        load_snapshot(con, folder("short", DAYS[6:], 1.0))
    assert con.execute("SELECT count(*) FROM price_batches").fetchall() == [(1,)]
    got = _nvda(con)
    assert got["close"].to_list() == [2 * NEW[d] for d in stored]
    np.testing.assert_allclose(got["ret"].to_numpy()[1:], _true_returns(stored), rtol=0, atol=1e-12)
    # Same basis, later days only: agrees on the shared days, so it loads (two new days).
    rep = load_snapshot(con, folder("later", DAYS[6:], 2.0))
    assert (rep.appended_rows, rep.revisions) == (2, [])
    # New basis over every stored date: replaces the whole history.
    rep = load_snapshot(con, folder("full", DAYS[4:], 1.0))
    got = _nvda(con)
    assert got["close"].to_list() == [NEW[d] for d in DAYS[4:]]
    np.testing.assert_allclose(got["ret"].to_numpy()[1:], _true_returns(DAYS[4:]), rtol=0, atol=1e-12)
