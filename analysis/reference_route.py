"""The reference routes the batch engine must agree with: one regression per firm-event.

Why they exist: the batch engine's linear algebra is hand-written; these routes get the same numbers
from statsmodels (one OLS per firm-event plus ``get_prediction``), or from the event-dummy regression
(estimation and event days together, one dummy per event day whose coefficient is the AR), and build
each CAR's variance as the sum of the full covariance matrix of its ARs rather than the closed form
sigma^2 (L + s'As). The tests hold the routes to 1e-8 of each other. These are deliberate Python loops
over firm-events, for checking, not for speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.models import NormalReturnModel
from analysis.models.base import intercept_fix


@dataclass(frozen=True)
class RowEstimate:
    """One firm-event's estimates on the relative-day grid (L days)."""

    b: np.ndarray  # (k,)
    bse: np.ndarray  # (k,)
    sigma2: float
    ar: np.ndarray  # (L,) residuals on estimation days, ARs on event days, NaN elsewhere
    pe: np.ndarray  # (L,) Var(AR_t) / sigma^2 on non-estimation days
    a_pe: np.ndarray  # (k, k)
    cov_ar: np.ndarray  # (L, L) covariance of the ARs (NaN where unknown)
    fitted: np.ndarray  # (L,) X b


@dataclass(frozen=True)
class RowDays:
    """Which days of one firm-event's row do what."""

    est: np.ndarray  # (L,) bool: estimation observations
    event: np.ndarray  # (L,) bool: event days with a valid return
    pe_days: np.ndarray  # (L,) bool: days of the prediction-error matrix (estudy2: all market days)
    ne_cols: np.ndarray  # columns of the non-estimation days
    pe_over_all_market_days: bool


def model_row(model: NormalReturnModel, x: np.ndarray, y: np.ndarray, d: RowDays, ddof: int) -> RowEstimate:
    """The model's own reference fit (statsmodels OLS for a linear model) and its predictions."""
    n_len = y.shape[0]
    m_i = int(d.est.sum())
    fit = model.fit_one(x[d.est], y[d.est])
    sigma2 = fit.ssr / (m_i - ddof)
    bse = np.sqrt(sigma2 * np.diag(fit.a))
    a_pe = model.prediction_matrix_one(x[d.pe_days], m_i) if d.pe_over_all_market_days else fit.a
    ar = np.full(n_len, np.nan)
    ar[d.est] = fit.resid
    if d.event.any():
        ar[d.event] = y[d.event] - fit.predict(x[d.event])
    x0 = np.nan_to_num(x)
    fitted = np.where(np.isfinite(x).all(axis=1), x0 @ fit.b, np.nan)
    pe = np.full(n_len, np.nan)
    x_ne = x[d.ne_cols]
    pe[d.ne_cols] = 1.0 + np.einsum("lk,kj,lj->l", x_ne, a_pe, x_ne)
    cov_ar = sigma2 * (np.eye(n_len) + x0 @ a_pe @ x0.T)
    return RowEstimate(fit.b, bse, sigma2, ar, pe, a_pe, cov_ar, fitted)


def event_dummy_row(
    x: np.ndarray,
    y: np.ndarray,
    d: RowDays,
    ddof: int,
    cov_type: str,
    cov_kwds: dict[str, Any] | None,
) -> RowEstimate:
    """OLS over estimation + event days with a dummy per event day: the dummies are the ARs.

    ``cov_type='HAC'`` gives Newey-West standard errors for the dummies (``cov_kwds``, default
    ``{'maxlags': 5}``).
    """
    import statsmodels.api as sm

    n_len, k = y.shape[0], x.shape[1]
    m_i = int(d.est.sum())
    use = d.est | d.event
    d_days = np.flatnonzero(d.event)
    dummies = np.zeros((n_len, d_days.shape[0]))
    dummies[d_days, np.arange(d_days.shape[0])] = 1.0
    z = np.hstack([np.nan_to_num(x), dummies])[use]
    kw = dict(cov_kwds or {"maxlags": 5}) if cov_type == "HAC" else None
    res = sm.OLS(y[use], z).fit(cov_type=cov_type, cov_kwds=kw)
    params = np.asarray(res.params)
    b = params[:k]
    sigma2 = float(res.ssr) / (m_i - ddof)
    cov = np.asarray(res.cov_params())
    if cov_type == "nonrobust":
        cov = cov * (sigma2 / float(res.scale))  # same sigma^2 convention as the other routes
    bse = np.sqrt(np.diag(cov[:k, :k]))
    fitted = np.where(np.isfinite(x).all(axis=1), np.nan_to_num(x) @ b, np.nan)
    ar = np.full(n_len, np.nan)
    ar[d.est] = y[d.est] - fitted[d.est]
    ar[d_days] = params[k:]
    cov_ar = np.full((n_len, n_len), np.nan)
    cov_ar[np.ix_(d_days, d_days)] = cov[k:, k:]
    a_pe = np.asarray(res.normalized_cov_params)[:k, :k]
    if d.pe_over_all_market_days and cov_type == "nonrobust":
        # estudy2: the correction uses every market day of the estimation window, which the dummy
        # regression cannot know; rebuild the dummies' covariance from that (X'X)^-1.
        xp = x[d.pe_days]
        a_pe = np.linalg.inv(xp.T @ xp)
        a_pe[0, 0] += intercept_fix(np.array([m_i]), np.array([xp.shape[0]]))[0]
        xd = x[d_days]
        cov_ar[np.ix_(d_days, d_days)] = sigma2 * (np.eye(d_days.shape[0]) + xd @ a_pe @ xd.T)
    # Days without a return have no dummy: their factor comes from the regressors alone.
    pe = np.full(n_len, np.nan)
    x_ne = x[d.ne_cols]
    pe[d.ne_cols] = 1.0 + np.einsum("lk,kj,lj->l", x_ne, a_pe, x_ne)
    pe[d_days] = np.diag(cov_ar)[d_days] / sigma2
    return RowEstimate(b, bse, sigma2, ar, pe, a_pe, cov_ar, fitted)


def window_stats(
    est: RowEstimate, y: np.ndarray, off: np.ndarray, win_cols: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(CAR, se, BHAR, days with an AR) per window; the se sums the ARs' covariance block."""
    n_w = len(win_cols)
    car = np.full(n_w, np.nan)
    car_se = np.full(n_w, np.nan)
    bhar = np.full(n_w, np.nan)
    n_days = np.zeros(n_w, dtype=np.int64)
    for w, cols in enumerate(win_cols):
        nd = int(np.isfinite(est.ar[cols]).sum())
        n_days[w] = nd
        if nd == cols.shape[0]:
            car[w] = est.ar[cols].sum()
            car_se[w] = np.sqrt(est.cov_ar[np.ix_(cols, cols)].sum())
            bhar[w] = np.prod(1.0 + y[cols]) - np.prod(1.0 + off[cols] + est.fitted[cols])
    return car, car_se, bhar, n_days
