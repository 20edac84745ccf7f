"""Read API of the market package (contract in DEVELOPERS.md)."""

from __future__ import annotations

import duckdb
import polars as pl

_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "batch_id"]


def prices(con: duckdb.DuckDBPyConnection, tickers: list[str] | None = None) -> pl.DataFrame:
    """Latest value per (ticker, date), sorted by ticker, date. ``tickers=None`` means all."""
    cols = ", ".join(_COLUMNS)
    if tickers is None:
        df = con.sql(f"SELECT {cols} FROM prices ORDER BY ticker, date").pl()  # noqa: S608
    else:
        df = con.sql(
            f"SELECT {cols} FROM prices WHERE list_contains(?, ticker) ORDER BY ticker, date",  # noqa: S608
            params=[list(tickers)],
        ).pl()
    return df.with_columns(pl.col("date").cast(pl.Date))


def returns(con: duckdb.DuckDBPyConnection, tickers: list[str] | None = None) -> pl.DataFrame:
    """The ``returns`` view as Polars (ticker, date, ret, log_ret, basis), sorted."""
    if tickers is None:
        return con.sql("SELECT * FROM returns ORDER BY ticker, date").pl()
    return con.sql(
        "SELECT * FROM returns WHERE list_contains(?, ticker) ORDER BY ticker, date",
        params=[list(tickers)],
    ).pl()
