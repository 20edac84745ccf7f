"""Abnormal trading volume: the market-volume model on log volume (EventStudyTools' AVC convention).

Why log volume: daily share volume is strongly right-skewed and its level differs by orders of
magnitude across firms; ln(V + 1) is close to normal, so a residual divided by its estimation-window
standard deviation behaves like a standardised abnormal return and the whole return battery (Patell,
BMP, Corrado, sign, ...) applies unchanged. The ``+ 1`` keeps a zero-volume day finite (ln 1 = 0).

Model (per firm-event i, estimation window [-250, -11] by default)::

    v_it = ln(V_it + 1),  v_mt = ln(V_mt + 1)      (V_mt: the market benchmark's volume, ^GSPC)
    v_it = a_i + b_i v_mt + e_it                     (OLS over the estimation window)
    AV_it = v_it - (a_i + b_i v_mt)                  (abnormal log volume on event days)

so the abnormal volume is the market model of :mod:`analysis.engine` run on log volumes instead of
returns: the same windows, masking of other events, prediction-error variance, CAR (here the
cumulative abnormal log volume, CAV) and test battery. A CAV of 0.7 over one day means volume
exp(0.7) ~ 2x its normal level given the market's volume that day.

Two choices that are ours (docs/conventions.md):
- Only dates of the benchmark's trading-day grid are used. The engine compounds a return on an
  off-grid date (a Tokyo session on a US holiday) into the next grid day; volume does not compound,
  so such rows are dropped instead, never added.
- A zero volume of the market benchmark is a missing observation (an index does not trade zero
  shares; ^GSPC carries a Yahoo 0 on 2023-05-24), while a firm's zero volume is kept as ln 1 = 0.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from analysis.models import benchmark_tickers, parse_benchmark
from analysis.results import EventStudyResult
from analysis.window import DEFAULT_WINDOWS
from core.errors import InputError

#: Market volume benchmark: the S&P 500 index's volume (consolidated volume of its members).
DEFAULT_VOLUME_BENCHMARK = "^GSPC"


def log_volume(prices: pl.DataFrame, *, market: tuple[str, ...] = (DEFAULT_VOLUME_BENCHMARK,)) -> pl.DataFrame:
    """DataFrame[ticker, date, ret] with ``ret = ln(volume + 1)`` on the first market ticker's dates.

    ``ret`` is named so that the frame feeds :class:`analysis.engine.EventStudy` directly. Rows with a
    null or negative volume are dropped (no value to log), as are zero volumes of the ``market``
    tickers (missing, not zero trading) and every date the first market ticker does not trade (volume
    is not compounded onto the next session the way returns are).
    """
    for col in ("ticker", "date", "volume"):
        if col not in prices.columns:
            raise InputError(f"prices frame lacks column {col!r}", field=col)
    bench = benchmark_tickers(market)
    if not bench:
        raise InputError("abnormal volume needs a market volume benchmark", field="--benchmark")
    grid_ticker = parse_benchmark(bench[0])[0]
    grid = prices.filter(pl.col("ticker") == grid_ticker).select("date").unique()
    if grid.height == 0:
        raise InputError(f"no prices for the market volume benchmark {grid_ticker!r}", field="--benchmark")
    vol = pl.col("volume").cast(pl.Float64)
    usable = vol.is_not_null() & (vol >= 0) & ~(pl.col("ticker").is_in(list(bench)) & (vol == 0))
    return (
        prices.filter(usable)
        .join(grid, on="date", how="semi")
        .select(
            pl.col("ticker").cast(pl.String),
            pl.col("date").cast(pl.Date),
            vol.log1p().alias("ret"),
        )
        .sort("ticker", "date")
    )


def abnormal_volume(
    deals: pl.DataFrame,
    prices: pl.DataFrame,
    *,
    benchmarks: tuple[str, ...] = (DEFAULT_VOLUME_BENCHMARK,),
    estimation: tuple[int, int] = (-250, -11),
    windows: tuple[tuple[int, int], ...] = DEFAULT_WINDOWS,
    **study_options: object,
) -> EventStudyResult:
    """The abnormal-volume study of ``deals`` on ``prices`` (with a ``volume`` column).

    Pure: :func:`analysis.study.run_study` with the market model on :func:`log_volume`, so every
    option of a return study (deal/ticker filters, peers, conventions, method, masking) applies. The
    result's ``car`` is the cumulative abnormal log volume; ``bhar`` is null (buy-and-hold has no
    meaning for volume). ``result.tests(window)`` runs the return battery on the standardised
    abnormal log volumes.
    """
    from analysis.study import run_study

    if "model" in study_options and study_options["model"] not in ("market", "market_model"):
        raise InputError("abnormal volume uses the market-volume model only", field="--model")
    study_options.pop("model", None)
    res = run_study(
        deals,
        log_volume(prices, market=benchmarks),
        model="market",
        benchmarks=benchmarks,
        estimation=estimation,
        windows=windows,
        **study_options,  # type: ignore[arg-type]
    )
    return dataclasses.replace(res, car=res.car.with_columns(pl.lit(None, dtype=pl.Float64).alias("bhar")))


__all__ = ["DEFAULT_VOLUME_BENCHMARK", "abnormal_volume", "log_volume"]
