"""MVRM on the shipped Stargate cluster against linearmodels SUR, statsmodels OLS and a looped bootstrap."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels.system import SUR
from scipy import stats

from analysis.mvrm import design, hypothesis_matrices, mvrm
from core.errors import InputError
from market.returns import compute_returns
from market.sources import read_snapshot_file

PRICES = Path(__file__).resolve().parents[2] / "data" / "prices"
STARGATE = ("ORCL", "9984.T", "MSFT", "NVDA", "ARM")
T0 = date(2025, 1, 22)  # stargate-2025-01-21 was announced after the close


@pytest.fixture(scope="module")
def returns() -> pl.DataFrame:
    files = [PRICES / f"{t}.csv" for t in (*STARGATE, "SPY")]
    return compute_returns(pl.concat([read_snapshot_file(f) for f in files]))


def lvec(res) -> np.ndarray:  # type: ignore[no-untyped-def]
    """l: the indicator of the event-day dummies in the common design [1, R_m, D]."""
    return np.r_[0.0, 0.0, np.ones(int(res.data.is_event.sum()))]


def sur_linearmodels(res, method: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """linearmodels' SUR params and covariance of the cluster (equations stacked in ticker order)."""
    d = res.data
    x = design(d.market, d.is_event)
    names = ["const", "market", *[f"d{i}" for i in range(x.shape[1] - 2)]]
    eqs = {t: {"dependent": pd.Series(d.y[:, j], name=t), "exog": pd.DataFrame(x, columns=names)}
           for j, t in enumerate(d.tickers)}
    lm = SUR(eqs).fit(method=method, cov_type="unadjusted", debiased=True)
    return lm.params.to_numpy(), lm.cov.to_numpy()


def wald_linearmodels(res, method: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """W = (R theta)'(R V R')^-1 (R theta) from linearmodels' SUR params and covariance."""
    theta, v = sur_linearmodels(res, method)
    out = {}
    for h, m in hypothesis_matrices(len(res.data.tickers)).items():
        r = np.kron(m.T, lvec(res))
        out[h] = float((r @ theta) @ np.linalg.solve(r @ v @ r.T, r @ theta))
    return out


@pytest.mark.parametrize("method", ["ols", "gls"])
@pytest.mark.parametrize("window", [(-1, 1), (0, 0)])
def test_wald_equals_linearmodels_sur(returns: pl.DataFrame, method: str,
                                      window: tuple[int, int]) -> None:
    res = mvrm(returns, STARGATE, T0, window=window, n_boot=0)
    ref = wald_linearmodels(res, method)
    got = dict(zip(res.wald["hypothesis"], res.wald["chi2"], strict=True))
    assert set(got) == {"all_zero", "sum_zero", "equal"}
    for h, w in ref.items():
        assert got[h] == pytest.approx(w, rel=1e-8, abs=1e-8)
    # chi2 p from the same statistic through scipy.stats
    for r in res.wald.iter_rows(named=True):
        assert r["p_chi2"] == pytest.approx(stats.chi2.sf(r["chi2"], r["df"]), rel=1e-10)


def test_stargate_numbers_and_calendar(returns: pl.DataFrame) -> None:
    res = mvrm(returns, STARGATE, T0, n_boot=0)
    d = res.data
    # 240 estimation days of SPY's calendar minus the US sessions that are Tokyo holidays
    spy = returns.filter(pl.col("ticker") == "SPY").sort("date")["date"].to_list()
    i0 = spy.index(T0)
    est = set(spy[i0 - 250 : i0 - 10])
    tokyo = set(returns.filter(pl.col("ticker") == "9984.T")["date"].to_list())
    others = [set(returns.filter(pl.col("ticker") == t)["date"].to_list()) for t in STARGATE]
    expect = est & tokyo & set.intersection(*others)
    assert int((~d.is_event).sum()) == len(expect) == 225
    assert d.dates[-3:] == [date(2025, 1, 21), T0, date(2025, 1, 23)]
    assert d.dropped_window_days == ()
    # per-firm CAR and se equal a statsmodels OLS of that firm with the dummies (t-test on their sum)
    x = design(d.market, d.is_event)
    for j, t in enumerate(STARGATE):
        ols = sm.OLS(d.y[:, j], x).fit()
        tt = ols.t_test(lvec(res))
        row = res.to_frame().row(j, named=True)
        assert row["term"].startswith(t)
        assert row["coef"] == pytest.approx(float(tt.effect[0]), rel=1e-10)
        assert row["se"] == pytest.approx(float(tt.sd[0, 0]), rel=1e-10)
        assert row["p"] == pytest.approx(float(tt.pvalue), rel=1e-8)
    # ORCL's Stargate CAR over [-1,+1] is large (leak on the 21st, +6.8% on the 22nd)
    assert 0.10 < res.params["ORCL CAR[-1,+1]"] < 0.14


def test_car_covariance_equals_linearmodels_sur(returns: pl.DataFrame) -> None:
    """cov_params(): the firm CARs and their mean as contrasts R theta of the SUR, Cov = R V R'."""
    res = mvrm(returns, STARGATE, T0, n_boot=0)
    theta, v = sur_linearmodels(res, "ols")
    n = len(STARGATE)
    r = np.kron(np.vstack([np.eye(n), np.full((1, n), 1.0 / n)]), lvec(res))
    assert list(res.params) == [f"{t} CAR[-1,+1]" for t in STARGATE] + ["mean CAR[-1,+1]"]
    np.testing.assert_allclose(list(res.params.values()), r @ theta, rtol=1e-10)
    np.testing.assert_allclose(res.cov_params(), r @ v @ r.T, rtol=1e-8)
    np.testing.assert_allclose(list(res.bse.values()), np.sqrt(np.diag(r @ v @ r.T)), rtol=1e-8)


def test_f_form_is_exact_hotelling(returns: pl.DataFrame) -> None:
    """sum_zero: F = t^2 of the OLS of the equal-weight cluster sum on the design (p = 1)."""
    res = mvrm(returns, STARGATE, T0, n_boot=0)
    d = res.data
    x = design(d.market, d.is_event)
    tt = sm.OLS(d.y.sum(axis=1), x).fit().t_test(lvec(res))
    row = res.wald.filter(pl.col("hypothesis") == "sum_zero").row(0, named=True)
    assert row["F"] == pytest.approx(float(tt.tvalue[0, 0]) ** 2, rel=1e-10)
    assert row["p_F"] == pytest.approx(float(tt.pvalue), rel=1e-8)
    # the mean row of the coefficient table is the same contrast, scaled by 1/N
    assert res.tvalues["mean CAR[-1,+1]"] ** 2 == pytest.approx(row["F"], rel=1e-10)
    for r in res.wald.iter_rows(named=True):
        p, nu = r["df"], res.fit.nu
        assert r["F"] == pytest.approx((nu - p + 1) / (nu * p) * r["chi2"], rel=1e-12)
        assert r["p_F"] == pytest.approx(stats.f.sf(r["F"], p, nu - p + 1), rel=1e-8)


def test_bootstrap_equals_looped_refits(returns: pl.DataFrame) -> None:
    """Same rng draws, one lstsq refit of Y* = X B0 + E* per draw (B0: event effects set to zero)."""
    n_boot = 150
    res = mvrm(returns, STARGATE, T0, n_boot=n_boot, rng=7)
    d, fit = res.data, res.fit
    x = design(d.market, d.is_event)
    pool = fit.resid[~d.is_event]
    idx = np.random.default_rng(7).integers(0, pool.shape[0], size=(n_boot, x.shape[0]))
    b0, *_ = np.linalg.lstsq(x, d.y, rcond=None)
    b0[2:] = 0.0
    ms = hypothesis_matrices(len(STARGATE))
    w_star = {h: np.empty(n_boot) for h in ms}
    for b in range(n_boot):
        y_star = x @ b0 + pool[idx[b]]
        coef, *_ = np.linalg.lstsq(x, y_star, rcond=None)
        e = y_star - x @ coef
        cov = np.kron(e.T @ e / fit.nu, np.linalg.inv(x.T @ x))
        theta = coef.T.ravel()
        for h, m in ms.items():
            r = np.kron(m.T, lvec(res))
            w_star[h][b] = (r @ theta) @ np.linalg.solve(r @ cov @ r.T, r @ theta)
    for row in res.wald.iter_rows(named=True):
        ws = w_star[row["hypothesis"]]
        assert row["p_boot"] == pytest.approx((1 + np.sum(ws >= row["chi2"])) / (n_boot + 1), abs=1e-15)
    # seeded: same seed, same p; another seed, other draws
    again = mvrm(returns, STARGATE, T0, n_boot=n_boot, rng=7)
    assert again.wald["p_boot"].to_list() == res.wald["p_boot"].to_list()


def test_results_object(returns: pl.DataFrame) -> None:
    res = mvrm(returns, STARGATE, T0, n_boot=99, rng=1)
    ci = res.conf_int()
    q = stats.t.ppf(0.975, res.fit.nu)
    np.testing.assert_allclose(ci["upper"].to_numpy() - list(res.params.values()),
                               q * np.array(list(res.bse.values())), rtol=1e-10)
    frame = res.to_frame()
    assert frame.columns == ["term", "coef", "se", "t", "p", "lower", "upper"]
    assert frame.height == 6
    eq = res.equation_params()
    assert eq.height == 5 * 5
    coef, *_ = np.linalg.lstsq(design(res.data.market, res.data.is_event), res.data.y, rcond=None)
    np.testing.assert_allclose(eq.filter(pl.col("term") == "d+0")["coef"].to_numpy(), coef[3], rtol=1e-10)
    np.testing.assert_allclose(eq.filter(pl.col("term") == "SPY")["coef"].to_numpy(), coef[1], rtol=1e-10)
    text = res.summary()
    assert "ORCL CAR[-1,+1]" in text and "all_zero" in text and "T=228" in text
    assert r"\toprule" in res.to_latex(caption="Stargate") and "bootstrap p" in res.to_latex()


def test_bad_input(returns: pl.DataFrame) -> None:
    # a t0 that is not a SPY session moves to the next one, as in the engine (analysis.grid.locate)
    sat, mon = mvrm(returns, STARGATE, date(2025, 1, 25), n_boot=0), mvrm(returns, STARGATE, date(2025, 1, 27),
                                                                          n_boot=0)
    assert sat.data.t0_grid == date(2025, 1, 27) and "(trading day 2025-01-27)" in sat.summary()
    assert sat.params == mon.params
    with pytest.raises(InputError, match="after the last trading day"):
        mvrm(returns, STARGATE, date(2030, 1, 2), n_boot=0)
    with pytest.raises(InputError, match="no returns for ticker 'XYZ'"):
        mvrm(returns, ["ORCL", "XYZ"], T0, n_boot=0)
    with pytest.raises(InputError, match="twice"):
        mvrm(returns, ["ORCL", "ORCL"], T0, n_boot=0)
    with pytest.raises(InputError, match="must end before"):
        mvrm(returns, STARGATE, T0, estimation=(-250, 0), n_boot=0)
    with pytest.raises(InputError, match="degrees of freedom"):
        mvrm(returns, STARGATE, T0, estimation=(-6, -2), n_boot=0)


def test_two_firm_cluster_equal_is_t_of_difference(returns: pl.DataFrame) -> None:
    """The 2025-11-18 Anthropic reports (MSFT, NVDA): 'equal' is the t-test of the CAR difference."""
    res = mvrm(returns, ["MSFT", "NVDA"], date(2025, 11, 18), window=(0, 1), n_boot=0)
    d = res.data
    tt = sm.OLS(d.y[:, 0] - d.y[:, 1], design(d.market, d.is_event)).fit().t_test(lvec(res))
    row = res.wald.filter(pl.col("hypothesis") == "equal").row(0, named=True)
    assert row["df"] == 1
    assert row["chi2"] == pytest.approx(float(tt.tvalue[0, 0]) ** 2, rel=1e-10)
    assert row["p_F"] == pytest.approx(float(tt.pvalue), rel=1e-8)


def test_tokyo_holiday_in_window_is_dropped(returns: pl.DataFrame) -> None:
    """2025-02-11 is a NYSE session but a Tokyo holiday: day 0 has no common return."""
    res = mvrm(returns, ["9984.T", "ORCL"], date(2025, 2, 11), window=(-1, 1), n_boot=0)
    assert res.data.dropped_window_days == (0,)
    assert res.data.rel_days[res.data.is_event].tolist() == [-1, 1]
    assert "without a common return: [0]" in res.summary()
    with pytest.raises(InputError, match="no event-window day"):
        mvrm(returns, ["9984.T", "ORCL"], date(2025, 2, 11), window=(0, 0), n_boot=0)


def test_exclude_drops_estimation_dates_only(returns: pl.DataFrame) -> None:
    full = mvrm(returns, STARGATE, T0, n_boot=0)
    drop = full.data.dates[:10] + [T0]  # ten estimation dates, and t0 itself (never excluded)
    res = mvrm(returns, STARGATE, T0, n_boot=0, exclude=drop)
    assert len(res.data.dates) == len(full.data.dates) - 10
    assert res.data.dates == full.data.dates[10:]
    keep = np.arange(len(full.data.dates)) >= 10
    ref = sm.OLS(full.data.y[keep, 0], design(full.data.market[keep], full.data.is_event[keep])).fit()
    assert res.params["ORCL CAR[-1,+1]"] == pytest.approx(float(ref.params[2:].sum()), rel=1e-10)


def test_the_size_simulations_common_design_route_equals_the_shipped_equation_route() -> None:
    """analysis.size_simulation measures fit_system/bootstrap_wald (Binder's dummy design); the report
    runs fit_equations/bootstrap_equations. On a balanced cluster (one design, one sample) the two must be
    the same statistic, draw for draw, so the size figures describe the shipped test."""
    from analysis.mvrm import (
        ClusterData,
        bootstrap_equations,
        bootstrap_wald,
        design,
        fit_equations,
        fit_system,
        hypothesis_matrices,
        wald_stats,
    )

    rng = np.random.default_rng(11)
    t_len, n, win = 140, 4, 3
    is_event = np.arange(t_len) >= t_len - win
    m = 0.0004 + 0.01 * rng.standard_normal(t_len)
    y = rng.uniform(0.5, 1.5, n) * m[:, None] + 0.02 * rng.standard_normal((t_len, n))
    ms = hypothesis_matrices(n)
    sys_fit = fit_system(y, m, is_event)
    c = float(sys_fit.lvec @ sys_fit.xtx_inv @ sys_fit.lvec)
    data = ClusterData(tickers=tuple("ABCD"), dates=[], rel_days=np.arange(t_len), y=y, market=m,
                       is_event=is_event, dropped_window_days=())
    eq = fit_equations(data)
    assert eq.nu == sys_fit.nu
    np.testing.assert_allclose(eq.car, np.einsum("k,kn->n", sys_fit.lvec, sys_fit.coef), rtol=1e-10)
    for h, mat in ms.items():
        w_sys = float(wald_stats(sys_fit.coef, sys_fit.sigma, c, sys_fit.lvec, mat))
        w_eq = float(wald_stats(eq.car[None, :], eq.cov, 1.0, np.ones(1), mat))
        assert w_eq == pytest.approx(w_sys, rel=1e-9), h
    b_sys = bootstrap_wald(sys_fit, design(m, is_event), is_event, ms, 99, np.random.default_rng(5))
    b_eq = bootstrap_equations(eq, data, ms, 99, np.random.default_rng(5))
    for h in ms:
        np.testing.assert_allclose(b_eq[h], b_sys[h], rtol=1e-8)
