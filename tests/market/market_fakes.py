"""Test helpers: a fake yfinance that serves canned daily bars through the installed yfinance's own
``download`` assembly, and a helper that builds its frames directly.

Faked one level below ``yf.download``: ``yfinance.multi.Ticker`` is swapped, for the duration of a call,
for a stand-in whose ``history()`` returns what ``Ticker.history(auto_adjust=False, actions=True)`` returns
for daily bars (read from yfinance 1.7, scrapers/history.py): a tz-aware index at midnight in the
exchange's zone named ``Date``; columns Open, High, Low, Close, Adj Close, Volume (int64, NaN -> 0),
Dividends, Stock Splits, plus Capital Gains for funds (ETF, MUTUALFUND); rows whose every value is NaN or 0
dropped. A ticker without data gets ``utils.empty_df()`` (six NaN columns) and a soft error that download()
logs (``['NOPE']: possibly delisted; ...``); an exception queued for a ticker is raised inside history(), as
a rate limit is, and download() logs its repr. Everything after that (``ignore_tz``: naive local dates for
daily bars by default, else one tz-converted index; the union-of-dates NaN padding; the (Ticker, Price)
concat; the level swap and sort for ``group_by='column'``; a MultiIndex even for one ticker) is yfinance's
own code, so the frames have the installed version's shape by construction; tests/market/test_sources.py
pins that shape, so an upgrade that changes it fails there first.
"""

from __future__ import annotations

import threading
import warnings
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import yfinance
import yfinance.multi
import yfinance.utils

DATA = Path(__file__).resolve().parents[2] / "data"
TZ = {"9984.T": "Asia/Tokyo"}
#: Yahoo's quoteType ETF: history() adds a Capital Gains column for these (expect_capital_gains).
FUNDS = {"SPY", "QQQ", "SOXX"}
_COLUMNS = ["Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]
#: The real download, kept before any test patches ``yfinance.download``.
_REAL_DOWNLOAD = yfinance.multi.download
_PATCH_LOCK = threading.Lock()


def history_frame(rows: dict[date, dict[str, float]], tz: str, *, fund: bool = False) -> pd.DataFrame:
    """One ticker's daily bars as ``Ticker.history(auto_adjust=False, actions=True)`` returns them."""
    idx = pd.to_datetime(list(rows)).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    cols = _COLUMNS + (["Capital Gains"] if fund else [])
    data = {c: [float(r.get(c, 0.0 if c == "Capital Gains" else np.nan)) for r in rows.values()] for c in cols}
    df = pd.DataFrame(data, index=pd.DatetimeIndex(idx, name="Date"))
    df["Volume"] = df["Volume"].fillna(0).astype(np.int64)
    values = df[[c for c in cols if c != "Volume"] + ["Volume"]]
    return df[~(values.isna() | (values == 0)).all(axis=1)]


def _tz(ticker: str) -> str:
    return TZ.get(ticker, "America/New_York")


class FakeYahoo:
    """Stands in for ``yfinance.download``: serves `history` sliced by start/end like Yahoo, or raises the
    queued exceptions first (the whole call fails). ``log_errors[ticker]`` is a per-ticker failure: a
    string is recorded as yfinance's soft error, an exception is raised inside that ticker's history();
    download() logs either. Records every call."""

    def __init__(self, history: dict[str, dict[date, dict[str, float]]]) -> None:
        self.history = history
        self.calls: list[dict[str, Any]] = []
        self.raise_queue: list[BaseException] = []
        self.log_errors: dict[str, str | BaseException] = {}

    def __call__(self, tickers: list[str] | str, start: str | None = None, end: str | None = None,
                 **kw: Any) -> pd.DataFrame:
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        self.calls.append({"tickers": tickers, "start": start, "end": end, **kw})
        if self.raise_queue:
            raise self.raise_queue.pop(0)
        kw = {k: v for k, v in kw.items() if k != "session"}
        fake = self

        class Ticker:
            def __init__(self, ticker: str, session: Any = None) -> None:
                self.ticker = ticker
                self._price_history: Any = None

            def history(self, start: str | None = None, end: str | None = None, **_: Any) -> pd.DataFrame:
                err = fake.log_errors.get(self.ticker)
                if isinstance(err, BaseException):
                    raise err
                lo = date.fromisoformat(start) if start else date.min
                hi = date.fromisoformat(end) if end else date.max  # yfinance's end is exclusive
                rows = {d: v for d, v in sorted(fake.history.get(self.ticker, {}).items()) if lo <= d < hi}
                df = history_frame(rows, _tz(self.ticker), fund=self.ticker in FUNDS) if rows else None
                if err is not None or df is None or df.empty:
                    # PriceHistory's soft error, which download() picks up from _last_error and logs.
                    self._price_history = SimpleNamespace(_last_error=err or (
                        f"possibly delisted; no price data found  (1d {start} -> {end})"))
                    return yfinance.utils.empty_df()
                return df

        with _PATCH_LOCK, warnings.catch_warnings():
            # yfinance 1.7 under pandas 3 warns about its own inplace= calls; not the tests' concern.
            warnings.simplefilter("ignore")
            saved = yfinance.multi.Ticker
            yfinance.multi.Ticker = Ticker  # type: ignore[misc,assignment]
            try:
                return _REAL_DOWNLOAD(tickers, start=start, end=end, **kw)
            finally:
                yfinance.multi.Ticker = saved  # type: ignore[misc]


def yf_download_frame(per_ticker: dict[str, dict[date, dict[str, float]]], group_by: str = "column",
                      *, ignore_tz: bool | None = None) -> pd.DataFrame:
    """The frame ``yf.download(list(per_ticker), auto_adjust=False, actions=True, group_by=...)`` returns
    for these bars: tz-naive local dates by default (yfinance 1.x and 0.2.x for daily bars); with
    ``ignore_tz=False`` a tz-aware index converted to the most common zone (1.4+; UTC before 1.4)."""
    return FakeYahoo(per_ticker)(list(per_ticker), auto_adjust=False, actions=True, group_by=group_by,
                                 ignore_tz=ignore_tz, threads=False, progress=False, multi_level_index=True)


def bar(close: float, adj: float | None = None, volume: int = 1_000_000, div: float = 0.0,
        split: float = 0.0) -> dict[str, float]:
    return {"Open": close * 0.99, "High": close * 1.01, "Low": close * 0.98, "Close": close,
            "Adj Close": close if adj is None else adj, "Volume": volume, "Dividends": div,
            "Stock Splits": split}


def _f32(v: float | None) -> float:
    # Yahoo's chart API serves float32 values printed as doubles (e.g. 268.7699890136719).
    return float("nan") if v is None else float(np.float32(v))


def yahoo_history(rows: pl.DataFrame, adj_factor: float = 1.0) -> dict[date, dict[str, float]]:
    """A snapshot file as yf.download would serve it: float32 prices, 0.0 dividends and splits."""
    return {
        r["date"]: {"Open": _f32(r["open"]), "High": _f32(r["high"]), "Low": _f32(r["low"]),
                    "Close": _f32(r["close"]), "Adj Close": _f32(None if r["adj_close"] is None else r["adj_close"] * adj_factor),
                    "Volume": r["volume"], "Dividends": 0.0, "Stock Splits": 0.0}
        for r in rows.iter_rows(named=True)
    }
