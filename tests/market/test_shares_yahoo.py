"""yfinance share counts, tested at the yfinance boundary with faked responses shaped like the real ones.

``Ticker.get_shares_full`` (yfinance 1.x, read from its source): a pandas Series of share counts, built as
``pd.Series(shares_out, index=pd.to_datetime(timestamps, unit="s"))``, the index localised to the
exchange's zone and sorted; ``None`` when Yahoo has no series. Duplicate dates with very different
counts occur (yfinance issue #1954: MSFT 2024-05-31 7,432,309,760 and 7,698,290,176).
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from carousel.db import connect
from market.shares_sources import YahooSharesSource, parse_shares_full
from market.shares_store import refresh_shares, share_counts


def shares_full(points: list[tuple[str, int]], tz: str = "America/New_York") -> pd.Series:
    """A Series exactly as get_shares_full builds it (unix seconds -> naive -> tz_localize -> sort)."""
    stamps = [int(pd.Timestamp(d).timestamp()) for d, _ in points]
    s = pd.Series([v for _, v in points], index=pd.to_datetime(stamps, unit="s"))
    s.index = s.index.tz_localize(tz)
    return s.sort_index()


def splits_series(points: list[tuple[str, float]], tz: str = "America/New_York") -> pd.Series:
    """``Ticker.splits``: ratios indexed by tz-aware midnights."""
    idx = pd.DatetimeIndex([pd.Timestamp(d).tz_localize(tz) for d, _ in points], name="Date")
    return pd.Series([r for _, r in points], index=idx, name="Stock Splits")


MSFT = [
    ("2024-05-02", 7_432_000_000), ("2024-05-10", 7_432_100_000), ("2024-05-20", 7_432_200_000),
    ("2024-05-30", 7_432_309_760), ("2024-05-31", 7_432_309_760), ("2024-05-31", 7_698_290_176),
    ("2024-06-14", 7_432_400_000),
]


def test_duplicate_date_outlier_is_dropped_and_reported() -> None:
    res = parse_shares_full(shares_full(MSFT), "MSFT")
    assert res.ok and res.rows is not None
    got = dict(zip(res.rows["as_of_date"].to_list(), res.rows["shares"].to_list(), strict=True))
    assert got[dt.date(2024, 5, 31)] == 7_432_309_760
    assert len(got) == 6
    # Median of the counts on the other dates within 30 days (05-02 .. 06-14, 5 dates).
    median = statistics.median([7_432_000_000, 7_432_100_000, 7_432_200_000, 7_432_309_760,
                                7_432_400_000])
    assert res.dropped == [f"2024-05-31: outlier 7698290176 vs neighbours' median {median}"]
    # No split: both bases agree.
    assert res.rows["shares"].to_list() == res.rows["shares_split_adjusted"].to_list()


def test_several_counts_without_neighbour_are_dropped_not_averaged() -> None:
    res = parse_shares_full(shares_full([("2024-01-10", 100_000_000), ("2024-01-10", 105_000_000),
                                         ("2024-06-10", 101_000_000)]), "X")
    assert res.rows is not None
    assert res.rows["as_of_date"].to_list() == [dt.date(2024, 6, 10)]
    assert res.dropped == ["2024-01-10: several counts and no neighbour to choose by"]


def test_tokyo_index_keeps_the_local_date() -> None:
    res = parse_shares_full(shares_full([("2026-03-31", 5_698_923_701)], tz="Asia/Tokyo"), "9984.T")
    assert res.rows is not None
    assert res.rows.row(0, named=True)["as_of_date"] == dt.date(2026, 3, 31)


def test_split_basis_is_decided_by_the_counts() -> None:
    split = splits_series([("2024-06-10", 10.0)])
    raw = shares_full([("2024-04-01", 2_460_000_000), ("2024-05-24", 2_460_000_000),
                       ("2024-06-20", 24_530_000_000), ("2024-08-23", 24_530_000_000)])
    res = parse_shares_full(raw, "NVDA", split)
    assert res.rows is not None
    assert res.rows["shares"].to_list() == [2_460_000_000, 2_460_000_000, 24_530_000_000, 24_530_000_000]
    assert res.rows["shares_split_adjusted"].to_list() == [24_600_000_000, 24_600_000_000,
                                                           24_530_000_000, 24_530_000_000]
    assert any("raw basis, adjusted" in n for n in res.dropped)
    adjusted = shares_full([("2024-05-24", 24_600_000_000), ("2024-06-20", 24_530_000_000)])
    res2 = parse_shares_full(adjusted, "NVDA", split)
    assert res2.rows is not None
    assert res2.rows["shares_split_adjusted"].to_list() == [24_600_000_000, 24_530_000_000]
    assert any("already adjusted by Yahoo" in n for n in res2.dropped)


def test_empty_none_and_garbage_are_errors() -> None:
    assert parse_shares_full(None, "X").error == "no share counts returned"
    assert parse_shares_full(pd.Series([], dtype="int64"), "X").error == "no share counts returned"
    s = shares_full([("2024-01-10", 1)])
    s.iloc[0] = -5
    assert parse_shares_full(s, "X").error == "no valid share counts returned"
    text = pd.Series(["n/a"], index=s.index)
    assert parse_shares_full(text, "X").error == "non-numeric share counts from Yahoo"


class FakeTicker:
    responses: dict[str, Any] = {}
    calls: list[tuple[str, str, str | None]] = []

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def get_shares_full(self, start: str | None = None, end: str | None = None) -> pd.Series | None:
        FakeTicker.calls.append((self.symbol, start or "", end))
        r = self.responses[self.symbol]
        if isinstance(r, Exception):
            raise r
        return r

    @property
    def splits(self) -> pd.Series:
        return pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz="America/New_York"))


def test_yahoo_source_and_refresh_store_the_good_tickers(db_path: Path, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import yfinance as yf

    FakeTicker.responses = {
        "MSFT": shares_full(MSFT),
        "AMD": None,
        "ORCL": RuntimeError("Too Many Requests. Rate limited. Try after a while."),
    }
    FakeTicker.calls = []
    monkeypatch.setattr(yf, "Ticker", FakeTicker)
    con = connect(db_path)
    rep = refresh_shares(con, YahooSharesSource(), ["MSFT", "AMD", "ORCL"], dt.date(2024, 5, 1),
                         dt.date(2024, 6, 30))
    assert FakeTicker.calls[0] == ("MSFT", "2024-05-01", "2024-06-30")
    assert rep.appended_rows == 6
    assert set(rep.failed) == {"AMD", "ORCL"}
    assert rep.failed["AMD"] == "no share counts returned"
    status = con.execute("SELECT source, status, row_count, message FROM share_batches").fetchall()
    assert status == [("yahoo", "partial", 6, "MSFT: 1 dropped")]
    stored = share_counts(con)
    assert stored["ticker"].unique().to_list() == ["MSFT"]
    assert stored.filter(stored["as_of_date"] == dt.date(2024, 5, 31))["shares"].item() == 7_432_309_760
    # A second identical fetch appends nothing.
    again = refresh_shares(con, YahooSharesSource(), ["MSFT"], dt.date(2024, 5, 1), dt.date(2024, 6, 30))
    assert again.appended_rows == 0
    con.close()
