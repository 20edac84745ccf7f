"""Daily returns from stored prices (pure; same rule as the DuckDB ``returns`` view)."""

from __future__ import annotations

import polars as pl

#: Relative fall of the adj_close/close ratio from one day to the next above which the two days' adjusted
#: closes are taken to sit on different dividend bases. Why a *fall*: back-adjustment scales every row
#: before an ex-date down, so across a real ex-date the ratio rises (that rise is the dividend, and the
#: adj_close return rightly includes it). A fall only happens where rows were adjusted at different
#: times: later rows already adjusted for a future dividend next to earlier rows that were never
#: rescaled (the snapshot's MSFT 2026-08-10, -0.19%, and QQQ 2026-06-02, -0.11%; PROVENANCE.md). Rounding
#: of 6-decimal prices moves the ratio by at most 8e-7 in the shipped files, hence 1e-5.
ADJ_BASIS_BREAK_TOL = 1e-5


def compute_returns(prices: pl.DataFrame) -> pl.DataFrame:
    """Simple and log close-to-close returns per ticker.

    Uses ``adj_close`` (splits and dividends) when both days have it; otherwise ``close`` (split-adjusted
    only: indices, or snapshot files without adj_close) and says so in ``basis``. Where the
    adj_close/close ratio falls by more than :data:`ADJ_BASIS_BREAK_TOL` the two adjusted closes are on
    different bases and their ratio is not a return; that day uses ``close`` too, with ``basis`` =
    ``close_adj_break`` (no dividend can be lost: on an ex-date the ratio rises, never falls). The first
    row of each ticker has no previous price and is dropped. Output sorted by ticker, date.
    """
    prev = {c: pl.col(c).shift(1).over("ticker", order_by="date") for c in ("close", "adj_close")}
    both_adj = pl.col("adj_close").is_not_null() & prev["adj_close"].is_not_null()
    # ratio_t < ratio_prev * (1 - tol), cross-multiplied (all prices are positive).
    broken = both_adj & (
        pl.col("adj_close") * prev["close"] < prev["adj_close"] * pl.col("close") * (1 - ADJ_BASIS_BREAK_TOL)
    )
    use_adj = both_adj & ~broken
    return (
        prices.lazy()
        .select("ticker", "date", "close", "adj_close")
        .with_columns(
            ret=pl.when(use_adj)
            .then(pl.col("adj_close") / prev["adj_close"] - 1)
            .otherwise(pl.col("close") / prev["close"] - 1),
            basis=pl.when(use_adj)
            .then(pl.lit("adj_close"))
            .when(broken)
            .then(pl.lit("close_adj_break"))
            .otherwise(pl.lit("close")),
            _has_prev=prev["close"].is_not_null(),
        )
        .filter(pl.col("_has_prev"))
        .with_columns(log_ret=pl.col("ret").log1p())
        .select("ticker", "date", "ret", "log_ret", "basis")
        .sort("ticker", "date")
        .collect()
    )
