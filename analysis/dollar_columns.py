"""The dollar columns of a study: market value before the window x CAR beside every CAR carousel prints or stores.

Why a module beside :mod:`analysis.study`: ``carousel study --format json``, the ``car`` SQL view (written
by ``carousel run``/``carousel report``) and the report's dollar section must show the same dollars for
the same CAR row, so the read of the inputs (share counts, closes, the ledger's currencies) and the join
live once. The maths are :func:`analysis.dollar.dollar_abnormal_value`; this module only reads its
inputs from a connection (read-only) and puts its four columns on the CAR frame, row for row.

A database without share counts (one created before the share tables, or where no counts were loaded)
gives every row ``dollar_reason = 'count_missing'`` and null dollars: never a crash, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from analysis.dollar import caps_before, dollar_abnormal_value, estimation_dollar_se
from analysis.grid import returns_on_grid
from analysis.models import benchmark_tickers
from analysis.results import EventStudyResult
from ledger import api as ledger_api
from market import api as market_api
from market.mcap import LISTINGS
from market.shares_store import SHARES_SNAPSHOT, share_counts

#: The columns added to a CAR frame, in this order (the ``car`` view and the JSON records end with them).
#: ``mcap_date``: the close the value is taken at (the ticker's trading day before the window's first
#: day); ``count_known_after_t0``: the count in force then was filed on or after t0 (look-ahead flag).
DOLLAR_COLUMNS = ("mcap_usd", "mcap_date", "count_known_after_t0", "dollar_car", "dollar_se", "dollar_reason")


@dataclass(frozen=True)
class DollarInputs:
    """What a dollar CAR needs besides the CAR: share counts, closes and the ledger's companies."""

    counts: pl.DataFrame
    prices: pl.DataFrame
    companies: pl.DataFrame | None = None


def load_dollar_inputs(con: duckdb.DuckDBPyConnection, tickers: list[str] | None = None) -> DollarInputs:
    """Read share counts, closes (of ``tickers``, all when None) and companies; reads only.

    A class quoted under another symbol is valued at that symbol's close (Alphabet's class C at GOOG's),
    so those closes are read with the listing's.
    """
    wanted = None
    if tickers is not None:
        quoted = {sym for t in tickers if t in LISTINGS for sym in LISTINGS[t].class_quotes.values()}
        wanted = sorted(set(tickers) | quoted)
    # The shipped filings win over Yahoo's daily counts on a date both give (hand-verified, with a
    # filing date); Yahoo's fill the dates the filings do not cover.
    counts = share_counts(con, wanted, prefer=[SHARES_SNAPSHOT])
    prices = market_api.prices(con, wanted).select("ticker", "date", "close")
    return DollarInputs(counts=counts, prices=prices, companies=ledger_api.companies(con))


def with_dollars(car: pl.DataFrame, inputs: DollarInputs, *, known_at_t0: bool = False) -> pl.DataFrame:
    """``car`` (same rows, same order) plus mcap_usd, dollar_car, dollar_se and dollar_reason (pure).

    Args:
        car: ``EventStudyResult.car`` (event_id, deal_id, ticker, t0, window, car, se, ...).
        inputs: :func:`load_dollar_inputs` (or frames built by hand, e.g. from the shipped CSVs).
        known_at_t0: only counts filed before t0 (``analysis.dollar.dollar_abnormal_value``).
    """
    base = car.drop([c for c in DOLLAR_COLUMNS if c in car.columns]).with_row_index("_dollar_row")
    frame = dollar_abnormal_value(base, inputs.counts, inputs.prices, companies=inputs.companies,
                                  known_at_t0=known_at_t0).frame
    dollars = frame.select("_dollar_row", *DOLLAR_COLUMNS)
    return base.join(dollars, on="_dollar_row", how="left").sort("_dollar_row").drop("_dollar_row")


def study_dollars(con: duckdb.DuckDBPyConnection, car: pl.DataFrame) -> pl.DataFrame:
    """:func:`with_dollars` on inputs read from ``con`` for the tickers of ``car`` (the shell's one call)."""
    tickers = sorted(set(car["ticker"].cast(pl.Utf8).drop_nulls().to_list()))
    return with_dollars(car, load_dollar_inputs(con, tickers))


def market_caps_at_t0(con: duckdb.DuckDBPyConnection, events: pl.DataFrame) -> pl.DataFrame | None:
    """ticker, t0, price_date, mcap_usd, mcap_reason: the value at t0-1 of each distinct (ticker, t0) of
    ``events``, computed exactly as the dollar CARs' (:func:`analysis.dollar.caps_before` on
    :func:`load_dollar_inputs`: filings preferred, classes at their own close, ADR ratio, the ledger's
    currencies); None when the database holds no share counts (``analysis.features`` then says
    ``no_market_cap_frame``). Reads only."""
    keys = events.filter(pl.col("t0").is_not_null()).select(
        pl.col("ticker").cast(pl.Utf8), pl.col("t0").cast(pl.Date)).unique().sort("ticker", "t0")
    inputs = load_dollar_inputs(con, keys["ticker"].unique().sort().to_list())
    if inputs.counts.height == 0:
        return None
    caps = caps_before(inputs.counts, inputs.prices, keys, companies=inputs.companies)
    return caps.select("ticker", "t0", "price_date", "mcap_usd", "mcap_reason")


def study_grid(returns: pl.DataFrame, res: EventStudyResult) -> np.ndarray:
    """The engine's trading-day grid for ``res`` (its first benchmark's days in ``returns``; every date
    of the tickers read when the model has no benchmark), as the engine builds it."""
    bench = benchmark_tickers(res.model.benchmarks)
    wanted = set(res.panel.keys["ticker"].cast(pl.Utf8).to_list()) | set(bench)
    return returns_on_grid(returns, wanted, bench[0] if bench else None).grid


def with_estimation_se(dollars: pl.DataFrame, res: EventStudyResult, grid: np.ndarray | pl.Series,
                       inputs: DollarInputs) -> pl.DataFrame:
    """``dollars`` (the CAR frame with its dollar columns) plus ``dollar_se_est`` and its reason
    (:func:`analysis.dollar.estimation_dollar_se`), same rows and order (pure)."""
    est = estimation_dollar_se(dollars, res.panel, grid, inputs.counts, inputs.prices, companies=inputs.companies)
    return dollars.with_columns(est["dollar_se_est"], est["dollar_se_est_reason"])


def study_dollars_with_estimation_se(con: duckdb.DuckDBPyConnection, res: EventStudyResult,
                                     returns: pl.DataFrame) -> pl.DataFrame:
    """:func:`study_dollars` plus the estimation-window dollar SE (the report's dollar tests use both)."""
    tickers = sorted(set(res.car["ticker"].cast(pl.Utf8).drop_nulls().to_list()))
    inputs = load_dollar_inputs(con, tickers)
    return with_estimation_se(with_dollars(res.car, inputs), res, study_grid(returns, res), inputs)
