"""Benchmark: size of the second-stage tests by simulation, and the wild bootstrap's speed.

    python bench/bench_crosssection.py            # full size (2,000 and 10,000 replications)
    python bench/bench_crosssection.py --quick    # a tenth

1. Wild cluster bootstrap (``analysis.crosssection``): a cluster-level, skewed regressor and
   cluster-correlated errors under H0, G clusters of 6. Rejection rates at 5% of the CRV1 t referred
   to t(G-1) and of the WCR bootstrap (Webb and Rademacher weights, 399 draws each).
2. Common shock (``analysis.common_shock``): 20 firms whose loadings on a same-day industry factor line
   up with their exposure, 120 estimation days, H0 true on the event day. Rejection rates at 5% of the
   naive cross-sectional OLS t and of the Sefcik-Thompson portfolio t; and the same with loadings
   unrelated to exposure (both should hold size there).
3. Speed: our vectorised WCR against the ``wildboottest`` package on the same data and draws count.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.common_shock import portfolio_regression  # noqa: E402
from analysis.crosssection import (  # noqa: E402
    bootstrap_pvalue,
    bootstrap_weights,
    covariance,
    wild_cluster_bootstrap_t,
)
from analysis.least_squares import ols_fit  # noqa: E402


def wcr_size(n_sims: int, n_clusters: int, per: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), per)
    rej = {"crv1_t": 0, "wcr_webb": 0, "wcr_rademacher": 0}
    for _ in range(n_sims):
        x = rng.lognormal(0.0, 1.0, n_clusters)[g]
        y = rng.normal(0.0, 1.0, n_clusters)[g] + rng.normal(0.0, 1.0, g.size)
        X = np.column_stack([np.ones(g.size), x])
        fit = ols_fit(y, X)
        cov = covariance(fit, "cluster", (g,))
        t = fit.beta[1] / np.sqrt(cov[1, 1])
        rej["crv1_t"] += 2 * special.stdtr(n_clusters - 1, -abs(t)) < 0.05
        for kind in ("webb", "rademacher"):
            v, _ = bootstrap_weights(kind, n_clusters, 399, rng)
            tb, t_boot = wild_cluster_bootstrap_t(y, X, g, 1, v)
            rej["wcr_" + kind] += bootstrap_pvalue(tb, t_boot) < 0.05
    return {k: v / n_sims for k, v in rej.items()}


def st_size(n_sims: int, aligned: bool, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    n, t_est = 20, 120
    rej = {"naive_t": 0, "sefcik_thompson": 0}
    for _ in range(n_sims):
        z = rng.normal(0.0, 1.0, n)
        lam = (0.8 * z if aligned else 0.8 * rng.normal(0.0, 1.0, n)) + rng.normal(0.0, 0.3, n)
        beta = rng.uniform(0.6, 1.6, n)
        m = rng.normal(0.0, 0.01, t_est + 1)
        f = rng.normal(0.0, 0.012, t_est + 1)
        r = m[:, None] * beta + f[:, None] * lam + rng.normal(0.0, 0.015, (t_est + 1, n))
        reg = portfolio_regression(r, m, np.column_stack([np.ones(n), z]), event_row=t_est)
        t_st = reg.gamma[1] / reg.gamma_se[1]
        t_naive = (reg.weights @ reg.ar)[1] / np.sqrt(reg.naive_cov[1, 1])
        rej["sefcik_thompson"] += 2 * special.stdtr(reg.df_resid, -abs(t_st)) < 0.05
        rej["naive_t"] += 2 * special.stdtr(n - 2, -abs(t_naive)) < 0.05
    return {k: v / n_sims for k, v in rej.items()}


def speed(reps: int, seed: int) -> None:
    import pandas as pd
    import statsmodels.api as sm
    from wildboottest.wildboottest import wildboottest

    rng = np.random.default_rng(seed)
    n_clusters, per = 30, 4
    g = np.repeat(np.arange(n_clusters), per)
    X = np.column_stack([np.ones(g.size), rng.normal(size=g.size), rng.normal(size=g.size)])
    y = X @ np.array([0.0, 0.2, 0.0]) + rng.normal(size=g.size)
    t0 = time.perf_counter()
    v, _ = bootstrap_weights("webb", n_clusters, reps, np.random.default_rng(1))
    tb, t_boot = wild_cluster_bootstrap_t(y, X, g, 2, v)
    p_ours = bootstrap_pvalue(tb, t_boot)
    ours = time.perf_counter() - t0
    exog = pd.DataFrame(X, columns=["const", "x1", "x2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wildboottest(sm.OLS(y, exog), B=99, cluster=g, param="x2", weights_type="webb", seed=1, show=False)
        t0 = time.perf_counter()
        ref = wildboottest(
            sm.OLS(y, exog), B=reps, cluster=g, param="x2", weights_type="webb", seed=2, show=False
        )
        theirs = time.perf_counter() - t0
    print(
        f"WCR, n={g.size}, G={n_clusters}, {reps} Webb draws: ours {ours * 1e3:.1f} ms (p={p_ours:.4f}), "
        f"wildboottest {theirs * 1e3:.1f} ms after numba warm-up (p={float(ref['p-value'].iloc[0]):.4f}); "
        f"ratio {theirs / ours:.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    scale = 10 if a.quick else 1
    n_wcr, n_st = 2000 // scale, 10_000 // scale
    mc = np.sqrt(0.05 * 0.95 / n_wcr)
    print(f"1. Wild cluster bootstrap, H0 true, {n_wcr} replications (MC s.e. of 5%: {mc:.3%})")
    for n_clusters in (6, 8, 12):
        t0 = time.perf_counter()
        r = wcr_size(n_wcr, n_clusters, 6, seed=100 + n_clusters)
        print(
            f"   G={n_clusters:>2}: CRV1 t(G-1) {r['crv1_t']:.3f}  WCR Webb {r['wcr_webb']:.3f}  "
            f"WCR Rademacher {r['wcr_rademacher']:.3f}   ({time.perf_counter() - t0:.1f}s)"
        )
    mc = np.sqrt(0.05 * 0.95 / n_st)
    print(f"2. Common shock, H0 true, {n_st} replications (MC s.e. of 5%: {mc:.3%})")
    for aligned in (True, False):
        r = st_size(n_st, aligned, seed=1986 + aligned)
        label = "loadings aligned with exposure" if aligned else "loadings unrelated to exposure"
        print(f"   {label:<32}: naive t {r['naive_t']:.3f}  Sefcik-Thompson {r['sefcik_thompson']:.3f}")
    print("3. Speed")
    speed(99_999 // scale, seed=7)


if __name__ == "__main__":
    main()
