"""Null-hypothesis simulations for the size of the joint-inference tests.

Why: a test whose p-values are not uniform under its null misleads exactly in the small, clustered, fat-
tailed samples these tests exist for. Each function below draws ``n_sims`` samples in which the null is
true, with the features that break naive tests (fat-tailed t(4) noise, cross-correlated firms, betas that
differ across firms, changing portfolio composition), runs the real test code and returns the p-values.
``rejection_summary`` turns them into a rejection rate with its exact (Clopper-Pearson) 95% interval.
The slow test runs these at a reduced size; ``bench/bench_inference_size.py`` at the full size.

All draws come from the Generator passed in, so a seed reproduces every figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis.calendar_time import newey_west_lags, ols_hac
from analysis.mvrm import bootstrap_wald, design, fit_system, hypothesis_matrices, wald_stats
from analysis.resampling import caar_test


@dataclass(frozen=True)
class Rejections:
    """Rejection rate at ``level`` over ``n`` simulated null samples, with its exact 95% interval."""

    rate: float
    low: float
    high: float
    n: int
    level: float


def rejection_summary(pvalues: np.ndarray, level: float = 0.05) -> Rejections:
    """Share of p-values at or below ``level`` and its Clopper-Pearson 95% interval."""
    p = np.asarray(pvalues, dtype=float)
    n = p.size
    k = int(np.sum(p <= level))
    low = float(special.betaincinv(k, n - k + 1, 0.025)) if k > 0 else 0.0
    high = float(special.betaincinv(k + 1, n - k, 0.975)) if k < n else 1.0
    return Rejections(rate=k / n, low=low, high=high, n=n, level=level)


def _fat_noise(rng: np.random.Generator, shape: tuple[int, ...], dof: float = 4.0) -> np.ndarray:
    """Student t(dof) noise scaled to unit variance."""
    return rng.standard_t(dof, shape) * np.sqrt((dof - 2.0) / dof)


def calendar_time_null_pvalues(
    n_sims: int,
    rng: np.random.Generator,
    *,
    n_days: int = 750,
    n_firms: int = 40,
    events_per_firm: int = 3,
    window: tuple[int, int] = (0, 5),
) -> np.ndarray:
    """p-values of the calendar-time alpha when every firm follows R_i = b_i R_m + e_i (alpha = 0).

    Betas U(0.5, 1.5), residual sd U(1%, 3%), t(4) noise, event dates uniform over the sample, so the
    portfolio's composition (and beta, and variance) changes from day to day as in real data.
    """
    a, b = window
    out = np.empty(n_sims)
    for s in range(n_sims):  # one simulated sample per iteration; the work inside is whole-array
        m = 0.0004 + 0.01 * _fat_noise(rng, (n_days,))
        beta = rng.uniform(0.5, 1.5, n_firms)
        sig = rng.uniform(0.01, 0.03, n_firms)
        r = beta[None, :] * m[:, None] + sig[None, :] * _fat_noise(rng, (n_days, n_firms))
        t0 = rng.integers(-a, n_days - b, size=(n_firms, events_per_firm))
        inside = np.zeros((n_days, n_firms), dtype=bool)
        days = (t0[..., None] + np.arange(a, b + 1)).reshape(n_firms, -1)
        inside[days, np.arange(n_firms)[:, None]] = True
        n_in = inside.sum(axis=1)
        keep = n_in > 0
        port = np.where(inside, r, 0.0).sum(axis=1)[keep] / n_in[keep]
        x = np.column_stack([np.ones(keep.sum()), m[keep]])
        fit = ols_hac(port, x, newey_west_lags(int(keep.sum())))
        t = fit.params[0] / np.sqrt(fit.cov[0, 0])
        out[s] = 2.0 * special.stdtr(fit.df_resid, -abs(t))
    return out


def hein_westfall_null_pvalues(
    n_sims: int,
    rng: np.random.Generator,
    *,
    n_firms: int = 5,
    n_est: int = 100,
    window_len: int = 3,
    n_boot: int = 199,
    common: float = 0.4,
) -> dict[str, np.ndarray]:
    """p-values (n_sims x 3: all_zero, sum_zero, equal) of the MVRM with no event effect.

    Keys: ``boot`` (Hein-Westfall bootstrap), ``F`` (exact-under-normality Hotelling F) and ``chi2``
    (asymptotic), so the bootstrap is compared with the parametric forms on the same samples.

    A small estimation period (100 days), t(4) noise with a common factor (pairwise residual
    correlation ``common``) and firm-specific scales: the setting in which the asymptotic chi2 is least
    reliable.
    """
    t_len = n_est + window_len
    is_event = np.arange(t_len) >= n_est
    ms = hypothesis_matrices(n_firms)
    names = list(ms)
    out = {k: np.empty((n_sims, len(names))) for k in ("boot", "F", "chi2")}
    nu = t_len - 2 - window_len
    for s in range(n_sims):  # one simulated cluster per iteration; the bootstrap inside is vectorised
        m = 0.0004 + 0.01 * _fat_noise(rng, (t_len,))
        f = _fat_noise(rng, (t_len, 1))
        e = np.sqrt(common) * f + np.sqrt(1.0 - common) * _fat_noise(rng, (t_len, n_firms))
        y = rng.uniform(0.5, 1.5, n_firms) * m[:, None] + rng.uniform(0.01, 0.03, n_firms) * e
        fit = fit_system(y, m, is_event)
        c = float(fit.lvec @ fit.xtx_inv @ fit.lvec)
        boot = bootstrap_wald(fit, design(m, is_event), is_event, ms, n_boot, rng)
        for j, h in enumerate(names):
            w = float(wald_stats(fit.coef, fit.sigma, c, fit.lvec, ms[h]))
            p = ms[h].shape[1]
            out["boot"][s, j] = (1.0 + np.sum(boot[h] >= w)) / (n_boot + 1.0)
            out["F"][s, j] = special.fdtrc(p, nu - p + 1, (nu - p + 1) / (nu * p) * w)
            out["chi2"][s, j] = special.chdtrc(p, w)
    return out


def caar_bootstrap_null_pvalues(
    n_sims: int,
    rng: np.random.Generator,
    *,
    n: int = 30,
    n_boot: int = 199,
    method: str = "bootstrap",
) -> np.ndarray:
    """p-values of the CAAR resampling test on n iid CARs with mean zero and t(4) tails."""
    out = np.empty(n_sims)
    for s in range(n_sims):  # one simulated cross-section per iteration
        cars = 0.03 * _fat_noise(rng, (n,))
        out[s] = caar_test(cars, method=method, n_resamples=n_boot,  # type: ignore[arg-type]
                           rng=rng, exact_max_clusters=0).pvalues["CAAR"]
    return out
