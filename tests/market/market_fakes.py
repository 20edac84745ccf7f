"""Test helpers: frames shaped exactly like yf.download output and a fake yfinance.download."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

DATA = Path(__file__).resolve().parents[2] / "data"
TZ = {"9984.T": "Asia/Tokyo"}


def history_frame(rows: dict[date, dict[str, float]], tz: str) -> pd.DataFrame:
    """One ticker as ``Ticker.history(auto_adjust=False, actions=True)`` returns it."""
    idx = pd.DatetimeIndex([pd.Timestamp(d).tz_localize(tz) for d in rows], name="Date")
    cols = ["Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]
    data = {c: [r.get(c, np.nan) for r in rows.values()] for c in cols}
    df = pd.DataFrame(data, index=idx)
    if not df["Volume"].isna().any():
        df["Volume"] = df["Volume"].astype("int64")
    return df


def yf_download_frame(per_ticker: dict[str, dict[date, dict[str, float]]],
                      group_by: str = "column") -> pd.DataFrame:
    """Assemble per-ticker frames exactly the way yfinance.multi.download does (1.x):
    convert indexes to the most common tz, reindex on the union of dates (NaN padding),
    concat with keys (Ticker, Price), then for group_by='column' swap levels and sort."""
    dfs = {t: history_frame(r, TZ.get(t, "America/New_York")) for t, r in per_ticker.items()}
    tzs = [str(df.index.tz) for df in dfs.values() if not df.empty]  # type: ignore[attr-defined]
    if tzs:
        uniq, counts = np.unique(tzs, return_counts=True)
        for t in dfs:
            if not dfs[t].empty:
                dfs[t].index = dfs[t].index.tz_convert(uniq[counts.argmax()])  # type: ignore[attr-defined]
    idx = None
    for df in dfs.values():
        if not df.empty:
            idx = df.index if idx is None else idx.union(df.index)
    if idx is None:
        idx = pd.DatetimeIndex([])
    dfs = {t: df.reindex(idx) for t, df in dfs.items()}
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)  # type: ignore[attr-defined]
        data = data.sort_index(level=0, axis=1)
    return data


def bar(close: float, adj: float | None = None, volume: int = 1_000_000, div: float = 0.0,
        split: float = 0.0) -> dict[str, float]:
    return {"Open": close * 0.99, "High": close * 1.01, "Low": close * 0.98, "Close": close,
            "Adj Close": close if adj is None else adj, "Volume": volume, "Dividends": div,
            "Stock Splits": split}


class FakeYahoo:
    """Stands in for ``yfinance.download``: serves `history` sliced by start/end like Yahoo, or
    raises the queued exceptions first. Records every call."""

    def __init__(self, history: dict[str, dict[date, dict[str, float]]]) -> None:
        self.history = history
        self.calls: list[dict[str, Any]] = []
        self.raise_queue: list[BaseException] = []
        self.log_errors: dict[str, str] = {}

    def __call__(self, tickers: list[str] | str, start: str | None = None, end: str | None = None,
                 **kw: Any) -> pd.DataFrame:
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        self.calls.append({"tickers": tickers, "start": start, "end": end, **kw})
        if self.raise_queue:
            raise self.raise_queue.pop(0)
        lo = date.fromisoformat(start) if start else date.min
        hi = date.fromisoformat(end) if end else date.max  # yfinance end is exclusive
        sliced: dict[str, dict[date, dict[str, float]]] = {}
        for t in tickers:
            if t in self.log_errors:
                import logging

                logging.getLogger("yfinance").error("['%s']: %s", t, self.log_errors[t])
                sliced[t] = {}
                continue
            sliced[t] = {d: v for d, v in self.history.get(t, {}).items() if lo <= d < hi}
        if all(not v for v in sliced.values()):
            return pd.DataFrame()
        return yf_download_frame(sliced, group_by=kw.get("group_by", "column"))


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
