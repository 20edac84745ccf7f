"""Test-only reference ARPanel for the R estudy2 vignette case (``data/conformance/estudy2``).

Lives with the tests, not in ``analysis/``: no production code uses it. Why a separate path: the conformance case fixes its estimation window in calendar dates common to all
firms (not relative trading days) and feeds log returns directly. This module builds that panel with a
small vectorised OLS (all firms solved at once from masked sufficient statistics) so that the
significance battery can be checked against the published values independently of the engine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from analysis.conventions import ESTUDY2, Conventions
from analysis.panel import ARPanel

DATA = Path(__file__).resolve().parents[2] / "data" / "conformance" / "estudy2"
EST_START = dt.date(2019, 4, 1)
EST_END = dt.date(2020, 3, 13)
EVENT_START = dt.date(2020, 3, 16)
EVENT_END = dt.date(2020, 3, 20)
MARKET = "GSPC"


def load_rates(path: Path | None = None) -> pl.DataFrame:
    """The vignette's wide table of log returns (date + one column per ticker, NA -> null)."""
    p = path if path is not None else DATA / "rates.csv"
    df = pl.read_csv(p, null_values="NA", try_parse_dates=True)
    return df.with_columns(pl.col("date").cast(pl.Date)).sort("date")


def estudy2_panel(rates: pl.DataFrame | None = None, conventions: Conventions = ESTUDY2) -> ARPanel:
    """Single-index market model on GSPC, estimation 2019-04-01..2020-03-13, event 03-16..03-20.

    One firm-event per ticker with t0 = 2020-03-16; relative day 0 is t0 on the GSPC trading days.
    Under ``pe_over_all_market_days`` the market mean and sum of squares in the prediction-error factor
    come from every estimation-window market day while the 1/M term keeps each firm's own M (as estudy2
    does); ``xtx_inv`` is built so that pe_factor = 1 + x'(xtx_inv)x holds exactly.
    """
    df = rates if rates is not None else load_rates()
    df = df.filter(pl.col("date") >= EST_START, pl.col("date") <= EVENT_END)
    tickers = [c for c in df.columns if c not in ("date", MARKET)]
    is_est = (df["date"] <= EST_END).to_numpy()
    t0 = df["date"][int(np.flatnonzero(~is_est)[0])]
    y = df.select(tickers).to_numpy().astype(float).T  # (N, L)
    m = df[MARKET].to_numpy().astype(float)  # (L,)
    keys = pl.DataFrame(
        {"event_id": [f"estudy2-{t}" for t in tickers], "ticker": tickers, "t0": [t0] * len(tickers)},
        schema={"event_id": pl.Utf8, "ticker": pl.Utf8, "t0": pl.Date},
    )
    return market_model_panel(y, m, is_est, keys, conventions)


def market_model_panel(
    y: np.ndarray,
    m: np.ndarray,
    is_est: np.ndarray,
    keys: pl.DataFrame,
    conventions: Conventions = ESTUDY2,
) -> ARPanel:
    """Single-index market model for N firms on one common grid of L days (same t0 for all).

    ``y`` (N, L) returns with NaN for missing, ``m`` (L,) market returns, ``is_est`` (L,) estimation
    days; relative day 0 is the first non-estimation day. All firms are solved at once.
    """
    n = y.shape[0]
    t0_idx = int(np.flatnonzero(~is_est)[0])
    rel = np.arange(y.shape[1]) - t0_idx
    ok = np.isfinite(y) & is_est[None, :]
    w = ok.astype(float)
    yz = np.where(ok, y, 0.0)
    # Masked sufficient statistics for every firm at once: sum 1, sum m, sum m^2, sum y, sum m*y.
    s0 = w.sum(axis=1)
    s1 = w @ m
    s2 = w @ (m**2)
    sy = yz.sum(axis=1)
    smy = yz @ m
    det = s0 * s2 - s1**2
    beta = (s0 * smy - s1 * sy) / det
    alpha = (sy - beta * s1) / s0
    fitted = alpha[:, None] + beta[:, None] * m[None, :]
    ar = y - fitted
    ar = np.where(np.isfinite(y), ar, np.nan)
    k = 2
    resid = np.where(ok, ar, 0.0)
    ddof = k if conventions.sigma_ddof == "k" else int(conventions.sigma_ddof)
    sigma = np.sqrt((resid**2).sum(axis=1) / (s0 - ddof))

    if conventions.pe_over_all_market_days:
        me = m[is_est]
        mbar = np.full(n, me.mean())
        ss = np.full(n, ((me - me.mean()) ** 2).sum())
    else:
        mbar = s1 / s0
        ss = s2 - s1**2 / s0
    # A with x'Ax = 1/M + (m - mbar)^2 / SS for x = (1, m).
    a = np.empty((n, 2, 2))
    a[:, 0, 0] = 1.0 / s0 + mbar**2 / ss
    a[:, 0, 1] = a[:, 1, 0] = -mbar / ss
    a[:, 1, 1] = 1.0 / ss
    ev = ~is_est
    x_event = np.stack([np.ones((n, ev.sum())), np.broadcast_to(m[ev], (n, ev.sum()))], axis=2)
    pe = np.full((n, y.shape[1]), np.nan)
    pe[:, ev] = 1.0 + np.einsum("nlk,nkj,nlj->nl", x_event, a, x_event)
    return ARPanel.from_grid(
        keys=keys,
        rel_days=rel.astype(np.int64),
        is_est=is_est,
        ar=ar,
        sigma=sigma,
        n_est=s0.astype(np.int64),
        n_params=k,
        pe_factor=pe,
        x_event=x_event,
        xtx_inv=a,
        conventions=conventions,
    )
