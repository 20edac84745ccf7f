"""Calendar-time portfolio test of abnormal returns for event-clustered dates.

Why: when events cluster in calendar time (three Anthropic reports on 2025-11-18, five Stargate firms on
2025-01-22) their abnormal returns are cross-correlated, and tests that treat firm-events as independent
overstate the evidence. Jaffe (1974) and Mitchell and Stafford (2000) avoid the problem by forming one
portfolio per calendar day: the cross-correlation is then inside each day's portfolio return, and the
time series of portfolio returns is tested once.

Construction: each benchmark trading day t, an equal-weighted portfolio of the firms that are inside an
event window [t0 + a, t0 + b] (trading days of the benchmark) of one of their events and have a return
on t. A firm inside two of its own overlapping windows counts once that day. Days with fewer than
``min_firms`` firms are left out. The regression::

    market model:  R_pt        = alpha + beta R_mt + e_t
    FF3:           R_pt - rf_t = alpha + b mkt_rf_t + s smb_t + h hml_t + e_t

alpha is the mean daily abnormal return of a firm inside an event window (H0: alpha = 0). Standard
errors are Newey-West (Bartlett kernel), because portfolio composition overlaps from one day to the next
and the residuals are heteroskedastic as the number of firms changes. Lags default to the Newey-West
(1994) rule floor(4 (T/100)^(2/9)). Small-sample choice (``small_sample=True``, the default): the HAC
covariance is scaled by T/(T-k) and t-statistics are referred to Student t(T-k); this is statsmodels'
``OLS.fit(cov_type='HAC', cov_kwds={'maxlags': L, 'use_correction': True}, use_t=True)``. With
``small_sample=False`` it is statsmodels' default (no scaling, normal p-values).

Calendars: a t0 that is not a benchmark trading day (9984.T after a US close on the eve of a US
holiday: Tokyo day 0 is the holiday) moves to the benchmark's next trading day, the engine's rule
(:func:`analysis.grid.locate`). A firm on another exchange (9984.T) enters on the benchmark days on which it has a return;
a benchmark day that is its own holiday leaves it out of that day's portfolio. With FF3 factors, days
after the factor file ends (2026-04-30 for the shipped file) have no factors and are dropped (counted in
``days_without_factors``).

Example:
    >>> from analysis.calendar_time import calendar_time
    >>> events = pl.DataFrame({"ticker": ["ORCL", "NVDA"], "t0": [date(2025, 1, 22)] * 2})
    >>> res = calendar_time(returns, events, window=(0, 5))                   # doctest: +SKIP
    >>> res.params["alpha"], res.pvalues["alpha"]   # mean daily AR and its p     # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from analysis.grid import locate
from analysis.least_squares import ols_fit
from core.errors import InputError

Model = Literal["market", "ff3"]


def newey_west_lags(nobs: int) -> int:
    """Newey-West (1994) automatic lag: floor(4 (T/100)^(2/9))."""
    return int(math.floor(4.0 * (nobs / 100.0) ** (2.0 / 9.0)))


@dataclass(frozen=True)
class HACFit:
    """OLS coefficients with a Newey-West covariance."""

    params: np.ndarray
    cov: np.ndarray
    resid: np.ndarray
    nobs: int
    maxlags: int
    df_resid: int


def ols_hac(y: np.ndarray, x: np.ndarray, maxlags: int, *, small_sample: bool = True) -> HACFit:
    """OLS of y on x with a Bartlett-kernel HAC covariance (X'X)^-1 S (X'X)^-1.

    S = sum_t u_t u_t' + sum_{l=1..L} (1 - l/(L+1)) sum_t (u_t u_{t-l}' + u_{t-l} u_t'), u_t = x_t e_t;
    times T/(T-k) when ``small_sample``.
    """
    n, k = x.shape
    if maxlags < 0:
        raise InputError(f"maxlags must be >= 0, got {maxlags}", field="maxlags")
    if n <= k:
        raise InputError(f"{n} portfolio days cannot identify {k} coefficients", field="window")
    ols = ols_fit(y, x)
    params, bread, resid = ols.beta, ols.xtx_inv, ols.resid
    u = x * resid[:, None]
    s = u.T @ u
    for lag in range(1, min(maxlags, n - 1) + 1):  # L is a handful of lags, not a hot loop over rows
        g = u[lag:].T @ u[:-lag]
        s += (1.0 - lag / (maxlags + 1.0)) * (g + g.T)
    cov = bread @ s @ bread
    if small_sample:
        cov *= n / (n - k)
    return HACFit(params=params, cov=cov, resid=resid, nobs=n, maxlags=maxlags, df_resid=n - k)


def event_portfolio(
    returns: pl.DataFrame,
    events: pl.DataFrame,
    *,
    window: tuple[int, int],
    benchmark: str = "SPY",
) -> pl.DataFrame:
    """Daily equal-weighted portfolio of firms inside an event window: date, port_ret, n_firms, mkt_ret.

    Only benchmark trading days with at least one firm; sorted by date.
    """
    for c in ("ticker", "date", "ret"):
        if c not in returns.columns:
            raise InputError("returns frame lacks a column", field=c)
    for c in ("ticker", "t0"):
        if c not in events.columns:
            raise InputError("events frame lacks a column", field=c)
    a, b = window
    if a > b:
        raise InputError(f"the event window {window} runs backwards", field="window")
    if events.height == 0:
        raise InputError("no events", field="events")
    bench = (returns.filter(pl.col("ticker") == benchmark).select("date", pl.col("ret").alias("mkt_ret"))
             .filter(pl.col("mkt_ret").is_finite()).sort("date").with_row_index("_i"))
    if bench.height == 0:
        raise InputError(f"no returns for the benchmark {benchmark!r}", field="benchmark")
    known = set(returns.get_column("ticker").unique().to_list())
    unknown = sorted(set(events.get_column("ticker").to_list()) - known)
    if unknown:
        raise InputError(f"no returns for ticker {unknown[0]!r}", field="ticker")
    if events.get_column("t0").null_count():
        r = events.filter(pl.col("t0").is_null()).row(0, named=True)
        raise InputError(f"an event of {r['ticker']} has no t0", field="t0")
    # A t0 that is not a benchmark trading day (a Tokyo session on a US holiday) moves to the next one,
    # the engine's rule (analysis.grid.locate), so the windows are the study's; past the last day it
    # falls outside the data like any window day there.
    _, i0 = locate(events.get_column("t0").cast(pl.Date), bench.get_column("date").to_numpy().astype("datetime64[D]"))
    ev = events.select("ticker").with_columns(_i=pl.Series(i0, dtype=pl.Int64))
    # Window days before the benchmark's first or after its last return fall outside the data at either
    # end alike (the inner join drops them); cast only the in-range positions.
    days = (ev.with_columns(_k=pl.int_ranges(a, b + 1)).explode("_k")
            .select("ticker", _i=pl.col("_i") + pl.col("_k"))
            .filter((pl.col("_i") >= 0) & (pl.col("_i") < bench.height))
            .with_columns(pl.col("_i").cast(pl.UInt32))
            .join(bench.select("_i", "date"), on="_i", how="inner")
            .select("ticker", "date").unique())
    firm = returns.select("ticker", "date", "ret").filter(pl.col("ret").is_finite())
    # Sorted before the mean so the summation order, and so every bit of the output, is reproducible.
    return (days.join(firm, on=["ticker", "date"], how="inner").sort("date", "ticker")
            .group_by("date", maintain_order=True).agg(port_ret=pl.col("ret").mean(), n_firms=pl.len().cast(pl.Int64))
            .join(bench.select("date", "mkt_ret"), on="date", how="inner")
            .sort("date"))


@dataclass(frozen=True)
class CalendarTimeResult(CoefficientResults):
    """alpha (mean daily abnormal return) and factor loadings of the calendar-time portfolio."""

    table: CoefficientTable
    fit: HACFit
    portfolio: pl.DataFrame
    model: str
    window: tuple[int, int]
    benchmark: str
    small_sample: bool
    days_without_factors: int

    @property
    def nobs(self) -> int:
        return self.fit.nobs

    def _header(self) -> list[str]:
        n_firms = self.portfolio["n_firms"].to_numpy()
        return [
            f"model={self.model} benchmark={self.benchmark} window=[{self.window[0]},{self.window[1]}] "
            f"days={self.fit.nobs} firms per day: mean {float(n_firms.mean()):.2f}, max "
            f"{int(n_firms.max())}",
            f"Newey-West lags={self.fit.maxlags}, "
            + ("T/(T-k) scaling, t(T-k) p-values" if self.small_sample else "no scaling, normal p-values")
            + (f", days without factors dropped: {self.days_without_factors}"
               if self.days_without_factors else ""),
        ]

    def summary(self) -> str:
        return render_text("Calendar-time portfolio (equal-weighted), alpha = mean daily AR",
                           self._header(), self.table)

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        return render_latex(self.table, self._header(), caption=caption, label=label)


def calendar_time(
    returns: pl.DataFrame,
    events: pl.DataFrame,
    *,
    window: tuple[int, int] = (0, 0),
    benchmark: str = "SPY",
    model: Model = "market",
    factors: pl.DataFrame | None = None,
    maxlags: int | None = None,
    min_firms: int = 1,
    small_sample: bool = True,
) -> CalendarTimeResult:
    """Calendar-time portfolio regression (module docstring).

    ``returns``: ``market.returns.compute_returns`` output; ``events``: firm-events with ``ticker`` and
    ``t0`` (moved to the benchmark's next trading day when it is not one, as the engine does); ``window`` in benchmark trading days. ``model='ff3'`` needs
    ``factors`` (``analysis.factors.load_ff3()``: date, mkt_rf, smb, hml, rf as decimals).
    """
    if min_firms < 1:
        raise InputError("min_firms must be >= 1", field="min_firms")
    port = event_portfolio(returns, events, window=window, benchmark=benchmark).filter(
        pl.col("n_firms") >= min_firms)
    dropped = 0
    if model == "market":
        y = port["port_ret"].to_numpy()
        x = np.column_stack([np.ones(port.height), port["mkt_ret"].to_numpy()])
        names: tuple[str, ...] = ("alpha", "beta_mkt")
    elif model == "ff3":
        if factors is None:
            raise InputError("model='ff3' needs the factors frame (analysis.factors.load_ff3())",
                             field="factors")
        missing = [c for c in ("date", "mkt_rf", "smb", "hml", "rf") if c not in factors.columns]
        if missing:
            raise InputError("factors frame lacks a column", field=missing[0])
        joined = port.join(factors.select("date", "mkt_rf", "smb", "hml", "rf"), on="date",
                           how="inner").sort("date")
        dropped = port.height - joined.height
        port = joined
        y = (port["port_ret"] - port["rf"]).to_numpy()
        x = np.column_stack([np.ones(port.height), port.select("mkt_rf", "smb", "hml").to_numpy()])
        names = ("alpha", "mkt_rf", "smb", "hml")
    else:
        raise InputError(f"unknown model {model!r}; use 'market' or 'ff3'", field="model")
    lags = newey_west_lags(port.height) if maxlags is None else maxlags
    fit = ols_hac(y, x, lags, small_sample=small_sample)
    table = CoefficientTable(names=names, estimates=fit.params, cov=fit.cov,
                             df=float(fit.df_resid) if small_sample else None)
    return CalendarTimeResult(table=table, fit=fit, portfolio=port, model=model, window=window,
                              benchmark=benchmark, small_sample=small_sample,
                              days_without_factors=dropped)
