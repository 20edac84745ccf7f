"""yfinance boundary: frames as the installed yf.download(auto_adjust=False, actions=True) builds them,
in both index shapes (naive local dates, the daily default; tz-aware with ignore_tz=False)."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yfinance
from market_fakes import FakeYahoo, bar, history_frame, yf_download_frame
from yfinance.exceptions import YFRateLimitError

from core.errors import InputError
from market.sources import RetryableError, YahooSource, parse_download
from market.validate import check_rows

# AMD and NVDA around the 2025-10-06 OpenAI announcement (closes from data/prices).
HIST = {
    "AMD": {date(2025, 10, 2): bar(169.729996), date(2025, 10, 3): bar(164.669998),
            date(2025, 10, 6): bar(203.710007, volume=248859600)},
    "NVDA": {date(2025, 10, 2): bar(188.889999, 188.87), date(2025, 10, 3): bar(187.619995, 187.6),
             date(2025, 10, 6): bar(185.539993, 185.52, div=0.01)},
}


#: The two index shapes of a daily download: naive local dates (ignore_tz, yfinance's default for daily
#: bars since 0.2, and what YahooSource asks for) and tz-aware (ignore_tz=False: one zone, 1.4+).
SHAPES = [None, False]


def test_frame_shape_matches_installed_yfinance() -> None:
    # Pinned from yfinance 1.7's multi.py and scrapers/history.py; the frames come from its own download().
    f = yf_download_frame(HIST)
    assert isinstance(f.columns, pd.MultiIndex)
    assert list(f.columns.names) == ["Price", "Ticker"]
    assert list(f.columns.get_level_values(0).unique()) == [
        "Adj Close", "Close", "Dividends", "High", "Low", "Open", "Stock Splits", "Volume"]
    assert f.index.name == "Date" and f.index.tz is None  # type: ignore[attr-defined]
    assert [str(d) for d in f.index] == ["2025-10-02 00:00:00", "2025-10-03 00:00:00", "2025-10-06 00:00:00"]
    assert f[("Volume", "AMD")].dtype == "int64"  # no NaN padding here; with padding it turns float
    # One ticker: still two levels (multi_level_index=True).
    one = yf_download_frame({"AMD": HIST["AMD"]})
    assert one.columns.nlevels == 2 and set(one.columns.get_level_values("Ticker")) == {"AMD"}
    # group_by='ticker': levels (Ticker, Price), not sorted by yfinance.
    assert list(yf_download_frame(HIST, group_by="ticker").columns.names) == ["Ticker", "Price"]
    # A fund (ETF) has Capital Gains; a ticker without data has empty_df()'s six NaN columns only.
    mixed = yf_download_frame({"SPY": {date(2025, 10, 6): bar(669.21)}, "XYZ": {}})
    assert sorted(mixed.xs("SPY", axis=1, level="Ticker").columns) == [
        "Adj Close", "Capital Gains", "Close", "Dividends", "High", "Low", "Open", "Stock Splits", "Volume"]
    assert sorted(mixed.xs("XYZ", axis=1, level="Ticker").columns) == [
        "Adj Close", "Close", "High", "Low", "Open", "Volume"]
    # ignore_tz=False: tz-aware, every ticker converted to the most common zone.
    aware = yf_download_frame(HIST, ignore_tz=False)
    assert str(aware.index.tz) == "America/New_York"  # type: ignore[attr-defined]
    assert [ts.hour for ts in aware.index] == [0, 0, 0]


@pytest.mark.parametrize("ignore_tz", SHAPES)
@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_parse_download_long_rows(group_by: str, ignore_tz: bool | None) -> None:
    res = parse_download(yf_download_frame(HIST, group_by=group_by, ignore_tz=ignore_tz), ["AMD", "NVDA"])
    amd = res["AMD"].rows
    assert amd is not None
    assert amd["date"].to_list() == [date(2025, 10, 2), date(2025, 10, 3), date(2025, 10, 6)]
    row = amd.filter(pl.col("date") == date(2025, 10, 6)).row(0, named=True)
    assert row["close"] == pytest.approx(203.710007, abs=0) and row["volume"] == 248859600
    nv = res["NVDA"].rows
    assert nv is not None
    assert nv["adj_close"].to_list() == [188.87, 187.6, 185.52]
    assert nv["dividends"].to_list() == [0.0, 0.0, 0.01]


def test_parse_one_ticker_history_frame() -> None:
    # Ticker.history's own frame (single-level columns, tz-aware Tokyo midnights): the local date.
    f = history_frame({date(2025, 10, 6): bar(20000.0), date(2025, 10, 7): bar(20150.0)}, "Asia/Tokyo")
    rows = parse_download(f, ["9984.T"])["9984.T"].rows
    assert rows is not None and rows["date"].to_list() == [date(2025, 10, 6), date(2025, 10, 7)]
    assert rows["close"].to_list() == [20000.0, 20150.0]


def test_empty_frame_fails_every_ticker() -> None:
    res = parse_download(pd.DataFrame(), ["AMD", "NVDA"])
    assert {t: r.ok for t, r in res.items()} == {"AMD": False, "NVDA": False}
    assert "empty" in (res["AMD"].error or "")
    assert not res["AMD"].retryable
    # As yfinance returns it when every ticker failed: the columns, no rows.
    none = yf_download_frame({"XYZ": {}})
    assert none.empty and none.columns.nlevels == 2
    assert "empty" in (parse_download(none, ["XYZ"])["XYZ"].error or "")


@pytest.mark.parametrize("ignore_tz", SHAPES)
def test_partial_ticker_all_nan_fails_only_that_ticker(ignore_tz: bool | None) -> None:
    frame = yf_download_frame({"AMD": HIST["AMD"], "XYZ": {}}, ignore_tz=ignore_tz)
    assert frame.xs("XYZ", axis=1, level="Ticker").isna().all().all()
    res = parse_download(frame, ["AMD", "XYZ"])
    assert res["AMD"].ok and res["AMD"].rows is not None and res["AMD"].rows.height == 3
    assert not res["XYZ"].ok and "NaN" in (res["XYZ"].error or "")


@pytest.mark.parametrize("ignore_tz", SHAPES)
def test_nan_padding_rows_dropped_and_counted(ignore_tz: bool | None) -> None:
    # CRWV has no 2025-10-02 row here: yf.download pads it with NaN on the union index.
    hist = {"AMD": HIST["AMD"], "CRWV": {date(2025, 10, 3): bar(139.0), date(2025, 10, 6): bar(141.3)}}
    res = parse_download(yf_download_frame(hist, ignore_tz=ignore_tz), ["AMD", "CRWV"])
    crwv = res["CRWV"]
    assert crwv.rows is not None and crwv.rows["date"].to_list() == [date(2025, 10, 3), date(2025, 10, 6)]
    assert crwv.rows["close"].to_list() == [139.0, 141.3]
    assert crwv.dropped_nan_rows == 1


def test_mixed_zones_keep_dates_or_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    tokyo = {date(2025, 10, 6): bar(20000.0)}
    # Naive (the default for daily bars): one download of both zones keeps each local session date.
    naive = parse_download(yf_download_frame({"AMD": HIST["AMD"], "9984.T": tokyo}), ["AMD", "9984.T"])
    assert naive["9984.T"].rows is not None and naive["9984.T"].rows["date"].to_list() == [date(2025, 10, 6)]
    # ignore_tz=False converts 9984.T's Tokyo midnight to 2025-10-05 11:00 New York: refused, not stored a
    # day off (parse_download used to return 2025-10-05, a Sunday). AMD, at New York midnights, parses.
    aware = yf_download_frame({"AMD": HIST["AMD"], "9984.T": tokyo}, ignore_tz=False)
    assert [str(ts) for ts in aware.index if ts.hour] == ["2025-10-05 11:00:00-04:00"]
    res = parse_download(aware, ["AMD", "9984.T"])
    assert res["9984.T"].rows is None and "converted to America/New_York" in (res["9984.T"].error or "")
    assert res["AMD"].rows is not None and res["AMD"].rows["date"].to_list()[-1] == date(2025, 10, 6)
    # Before 1.4, ignore_tz=False gave UTC: every local midnight moves, every ticker is refused.
    utc = aware.set_axis(aware.index.tz_convert("UTC"), axis=0)  # type: ignore[attr-defined]
    assert all("converted to UTC" in (r.error or "") for r in parse_download(utc, ["AMD", "9984.T"]).values())
    # YahooSource asks for naive dates and still downloads each calendar separately.
    fake = FakeYahoo({"AMD": HIST["AMD"], "9984.T": tokyo})
    monkeypatch.setattr(yfinance, "download", fake)
    got = YahooSource().fetch(["AMD", "9984.T"], date(2025, 10, 1), date(2025, 10, 6))
    assert [c["tickers"] for c in fake.calls] == [["AMD"], ["9984.T"]]
    assert all(c["ignore_tz"] is True and c["multi_level_index"] is True for c in fake.calls)
    tk = got["9984.T"].rows
    assert tk is not None and tk["date"].to_list() == [date(2025, 10, 6)] and tk["close"].to_list() == [20000.0]
    assert fake.calls[0]["auto_adjust"] is False and fake.calls[0]["actions"] is True
    assert fake.calls[0]["end"] == "2025-10-07"  # inclusive end -> yfinance's exclusive end


def test_naive_live_row_and_nan_close_fail_validation() -> None:
    # The reviewer's p8, on the naive shape: Yahoo's live bar (a time of day) is a second row of its date,
    # and a NaN close with the other prices present is a missing close; both fail the ticker by name.
    idx = pd.DatetimeIndex(["2025-06-09", "2025-06-10", "2025-06-10 09:15"], name="Date")
    cols = pd.MultiIndex.from_product([["Adj Close", "Close", "High", "Low", "Open", "Volume", "Dividends",
                                        "Stock Splits"], ["9984.T"]], names=["Price", "Ticker"])
    values = [[1, 1, 1, 1, 1, 10, 0, 0], [2, 2, 2, 2, 2, 10, 0, 0], [3, 3, 3, 3, 3, 5, 0, 0]]
    live = parse_download(pd.DataFrame(values, index=idx, columns=cols, dtype=float), ["9984.T"])["9984.T"]
    assert live.rows is not None and live.rows["date"].to_list() == [date(2025, 6, 9), date(2025, 6, 10),
                                                                      date(2025, 6, 10)]
    with pytest.raises(InputError, match=r"yahoo:9984.T:3, field 'date': duplicate date 2025-06-10 "
                                         r"\(also on line 2\)"):
        check_rows(live.rows, file="yahoo:9984.T", line_offset=1)
    nan = pd.DataFrame([values[0], [np.nan, np.nan, 2, 2, 2, 10, 0, 0]], columns=cols,
                       index=pd.DatetimeIndex(["2025-06-09", "2025-06-10"], name="Date"))
    rows = parse_download(nan, ["9984.T"])["9984.T"].rows
    assert rows is not None and rows["close"].to_list() == [1.0, None] and rows["open"].to_list() == [1.0, 2.0]
    with pytest.raises(InputError, match=r"yahoo:9984.T:2, field 'close': close is missing or NaN"):
        check_rows(rows, file="yahoo:9984.T", line_offset=1)


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


@pytest.mark.parametrize("ignore_tz", SHAPES)
def test_volume_and_nan_prices_converted(ignore_tz: bool | None) -> None:
    hist = {"AMD": {date(2025, 10, 3): bar(164.669998), date(2025, 10, 6): {"Close": 203.710007,
            "Adj Close": 203.710007, "Volume": 5, "Open": math.nan, "High": math.nan,
            "Low": math.nan, "Dividends": 0.0, "Stock Splits": 0.0}}}
    rows = parse_download(yf_download_frame(hist, ignore_tz=ignore_tz), ["AMD"])["AMD"].rows
    assert rows is not None
    assert rows["open"].to_list()[1] is None  # NaN becomes NULL, not a stored NaN
    assert rows["volume"].dtype == pl.Int64 and rows["volume"].to_list() == [1_000_000, 5]
