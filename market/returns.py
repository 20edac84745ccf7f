"""Daily returns from stored prices (pure; same rule as the DuckDB ``returns`` view)."""

from __future__ import annotations

import polars as pl


def compute_returns(prices: pl.DataFrame) -> pl.DataFrame:
    """Simple and log close-to-close returns per ticker.

    Uses ``adj_close`` (splits and dividends) when both days have it; otherwise ``close`` (split-adjusted
    only: indices, or snapshot files without adj_close) and says so in ``basis``. The first row of each
    ticker has no previous price and is dropped. Output sorted by ticker, date.
    """
    prev = {c: pl.col(c).shift(1).over("ticker", order_by="date") for c in ("close", "adj_close")}
    use_adj = pl.col("adj_close").is_not_null() & prev["adj_close"].is_not_null()
    return (
        prices.lazy()
        .select("ticker", "date", "close", "adj_close")
        .with_columns(
            ret=pl.when(use_adj)
            .then(pl.col("adj_close") / prev["adj_close"] - 1)
            .otherwise(pl.col("close") / prev["close"] - 1),
            basis=pl.when(use_adj).then(pl.lit("adj_close")).otherwise(pl.lit("close")),
            _has_prev=prev["close"].is_not_null(),
        )
        .filter(pl.col("_has_prev"))
        .with_columns(log_ret=pl.col("ret").log1p())
        .select("ticker", "date", "ret", "log_ret", "basis")
        .sort("ticker", "date")
        .collect()
    )
