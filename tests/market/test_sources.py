"""yfinance boundary: frames shaped exactly like yf.download(auto_adjust=False, actions=True)."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, bar, yf_download_frame
from yfinance.exceptions import YFRateLimitError

from market.sources import RetryableError, YahooSource, parse_download

# AMD and NVDA around the 2025-10-06 OpenAI announcement (closes from data/prices).
HIST = {
    "AMD": {date(2025, 10, 2): bar(169.729996), date(2025, 10, 3): bar(164.669998),
            date(2025, 10, 6): bar(203.710007, volume=248859600)},
    "NVDA": {date(2025, 10, 2): bar(188.889999, 188.87), date(2025, 10, 3): bar(187.619995, 187.6),
             date(2025, 10, 6): bar(185.539993, 185.52, div=0.01)},
}


def test_frame_shape_matches_real_yf_download() -> None:
    f = yf_download_frame(HIST)
    assert isinstance(f.columns, pd.MultiIndex)
    assert list(f.columns.names) == ["Price", "Ticker"]
    assert list(f.columns.get_level_values(0).unique()) == [
        "Adj Close", "Close", "Dividends", "High", "Low", "Open", "Stock Splits", "Volume"]
    assert f.index.name == "Date" and str(f.index.tz) == "America/New_York"  # type: ignore[attr-defined]


@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_parse_download_long_rows(group_by: str) -> None:
    res = parse_download(yf_download_frame(HIST, group_by=group_by), ["AMD", "NVDA"])
    amd = res["AMD"].rows
    assert amd is not None
    assert amd["date"].to_list() == [date(2025, 10, 2), date(2025, 10, 3), date(2025, 10, 6)]
    row = amd.filter(pl.col("date") == date(2025, 10, 6)).row(0, named=True)
    assert row["close"] == pytest.approx(203.710007, abs=0) and row["volume"] == 248859600
    nv = res["NVDA"].rows
    assert nv is not None
    assert nv["adj_close"].to_list() == [188.87, 187.6, 185.52]
    assert nv["dividends"].to_list() == [0.0, 0.0, 0.01]


def test_empty_frame_fails_every_ticker() -> None:
    res = parse_download(pd.DataFrame(), ["AMD", "NVDA"])
    assert {t: r.ok for t, r in res.items()} == {"AMD": False, "NVDA": False}
    assert "empty" in (res["AMD"].error or "")
    assert not res["AMD"].retryable


def test_partial_ticker_all_nan_fails_only_that_ticker() -> None:
    frame = yf_download_frame({"AMD": HIST["AMD"], "XYZ": {}})
    assert frame.xs("XYZ", axis=1, level="Ticker").isna().all().all()
    res = parse_download(frame, ["AMD", "XYZ"])
    assert res["AMD"].ok and res["AMD"].rows is not None and res["AMD"].rows.height == 3
    assert not res["XYZ"].ok and "NaN" in (res["XYZ"].error or "")


def test_nan_padding_rows_dropped_and_counted() -> None:
    # CRWV has no 2025-10-02 row here: yf.download pads it with NaN on the union index.
    hist = {"AMD": HIST["AMD"], "CRWV": {date(2025, 10, 3): bar(139.0), date(2025, 10, 6): bar(141.3)}}
    res = parse_download(yf_download_frame(hist), ["AMD", "CRWV"])
    crwv = res["CRWV"]
    assert crwv.rows is not None and crwv.rows["date"].to_list() == [date(2025, 10, 3), date(2025, 10, 6)]
    assert crwv.dropped_nan_rows == 1


def test_tokyo_dates_not_shifted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mixed in one download, yfinance converts 9984.T's Tokyo midnights to New York (previous day);
    # YahooSource downloads each calendar separately so the session date stays 2025-10-06.
    mixed = yf_download_frame({"AMD": HIST["AMD"], "9984.T": {date(2025, 10, 6): bar(20000.0)}})
    assert any(ts.hour != 0 for ts in mixed.index)  # the quirk being avoided
    fake = FakeYahoo({"AMD": HIST["AMD"], "9984.T": {date(2025, 10, 6): bar(20000.0)}})
    monkeypatch.setattr(yfinance, "download", fake)
    res = YahooSource().fetch(["AMD", "9984.T"], date(2025, 10, 1), date(2025, 10, 6))
    assert [c["tickers"] for c in fake.calls] == [["AMD"], ["9984.T"]]
    tk = res["9984.T"].rows
    assert tk is not None and tk["date"].to_list() == [date(2025, 10, 6)]
    assert fake.calls[0]["auto_adjust"] is False and fake.calls[0]["actions"] is True
    assert fake.calls[0]["end"] == "2025-10-07"  # inclusive end -> yfinance's exclusive end


def test_rate_limit_raised_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeYahoo(HIST)
    fake.raise_queue.append(YFRateLimitError())
    monkeypatch.setattr(yfinance, "download", fake)
    with pytest.raises(RetryableError, match="YFRateLimitError"):
        YahooSource().fetch(["AMD"], date(2025, 10, 1), None)


def test_logged_per_ticker_rate_limit_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeYahoo(HIST)
    fake.log_errors["NVDA"] = "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"
    monkeypatch.setattr(yfinance, "download", fake)
    res = YahooSource().fetch(["AMD", "NVDA"], date(2025, 10, 1), None)
    assert res["AMD"].ok
    assert not res["NVDA"].ok and res["NVDA"].retryable


def test_volume_and_nan_prices_converted() -> None:
    hist = {"AMD": {date(2025, 10, 3): bar(164.669998), date(2025, 10, 6): {"Close": 203.710007,
            "Adj Close": 203.710007, "Volume": 5, "Open": math.nan, "High": math.nan,
            "Low": math.nan, "Dividends": 0.0, "Stock Splits": 0.0}}}
    rows = parse_download(yf_download_frame(hist), ["AMD"])["AMD"].rows
    assert rows is not None
    assert rows["open"].to_list()[1] is None  # NaN becomes NULL, not a stored NaN
    assert rows["volume"].dtype == pl.Int64 and rows["volume"].to_list() == [1_000_000, 5]
