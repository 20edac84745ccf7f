"""Sefcik-Thompson portfolios: the identity with the cross-sectional OLS, statsmodels on the portfolio
series, and (slow) the size of the test against the naive cross-sectional t under correlated returns."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.common_shock import common_shock_test, portfolio_regression
from core.errors import InputError
from market.returns import compute_returns
from market.snapshot import read_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"
FIRMS = ["NVDA", "MSFT", "ORCL", "AMD", "AVGO", "META", "GOOGL", "AMZN", "CRWV", "TSM", "INTC", "ARM", "9984.T"]
STALL = date(2026, 2, 2)  # the 2026-01-30 stall report reached NVDA on the next session


@pytest.fixture(scope="module")
def returns() -> pl.DataFrame:
    r = compute_returns(read_snapshot(DATA / "prices"))
    return r.filter(pl.col("ticker").is_in([*FIRMS, "SPY"])).select("ticker", "date", "ret")


@pytest.fixture(scope="module")
def exposure() -> pl.DataFrame:
    """A real characteristic: the number of shipped deals with OpenAI naming the ticker, and a size
    proxy, log of the disclosed dollar amount summed over those deals (0 when none)."""
    deals = pl.read_csv(DATA / "events" / "deals.csv").filter(pl.col("counterparty_tickers").is_not_null())
    fe = (
        deals.with_columns(pl.col("counterparty_tickers").str.split(";").alias("ticker"))
        .explode("ticker")
        .with_columns(
            (pl.col("payer").str.contains("OpenAI") | pl.col("payee").str.contains("OpenAI")).alias("oa")
        )
    )
    agg = fe.group_by("ticker").agg(
        pl.col("oa").sum().cast(pl.Float64).alias("openai_deals"),
        pl.col("amount_usd_bn").filter(pl.col("oa")).sum().alias("openai_bn"),
    )
    base = pl.DataFrame({"ticker": FIRMS})
    return base.join(agg, on="ticker", how="left").with_columns(
        pl.col("openai_deals").fill_null(0.0),
        (pl.col("openai_bn").fill_null(0.0) + 1.0).log().alias("log_openai_bn"),
    ).drop("openai_bn")


def _independent_route(returns: pl.DataFrame, exposure: pl.DataFrame, res, model: str):
    """Recompute from scratch: per-firm market models (statsmodels) on the estimation days, the
    cross-sectional OLS of event-day ARs, and statsmodels OLS on each portfolio's return series."""
    wide = returns.pivot(on="ticker", index="date", values="ret").sort("date")
    wide = wide.filter(pl.col("SPY").is_not_null())
    benchmark = "SPY" if model == "market" else None
    dates = wide["date"].to_list()
    e = dates.index(res.event_date)
    rows = list(range(e + res.estimation[0], e + res.estimation[1] + 1))
    est, ev = wide[rows], wide[e]
    firms = list(res.firms)
    z = sm.add_constant(
        exposure.filter(pl.col("ticker").is_in(firms))
        .sort(pl.col("ticker").replace_strict({t: i for i, t in enumerate(firms)}, return_dtype=pl.Int64))
        .select("openai_deals", "log_openai_bn")
        .to_numpy()
    )
    ars = []
    for t in firms:
        y = est[t].to_numpy()
        if benchmark:
            f = sm.OLS(y, sm.add_constant(est[benchmark].to_numpy())).fit()
            ars.append(ev[t][0] - f.params[0] - f.params[1] * ev[benchmark][0])
        else:
            ars.append(ev[t][0] - y.mean())
    xs = sm.OLS(np.array(ars), z).fit()
    w = np.linalg.pinv(z)
    block = pl.concat([est, ev])
    port = block.select(firms).to_numpy() @ w.T
    dummy = np.r_[np.zeros(len(rows)), 1.0]
    cols = [np.ones(len(dummy))] + ([block[benchmark].to_numpy()] if benchmark else []) + [dummy]
    x = np.column_stack(cols)
    ts = [sm.OLS(port[:, j], x).fit() for j in range(port.shape[1])]
    return xs, ts


@pytest.mark.parametrize("model", ["market", "mean"])
def test_identity_and_statsmodels_on_real_returns(returns, exposure, model) -> None:
    res = common_shock_test(
        returns, exposure, STALL, formula="~ openai_deals + log_openai_bn", model=model
    )
    assert res.nobs >= 10 and res.n_days == 241
    assert set(res.firms) | set(res.dropped) == set(FIRMS)
    xs, ts = _independent_route(returns, exposure, res, model)
    gamma = np.array(list(res.params.values()))
    # identity: dummy coefficient == cross-sectional OLS coefficient of the market-model ARs
    np.testing.assert_allclose(gamma, xs.params, rtol=0, atol=1e-10)
    # and == the dummy coefficient of statsmodels on each portfolio series, with its standard error
    np.testing.assert_allclose(gamma, [t.params[-1] for t in ts], rtol=0, atol=1e-10)
    np.testing.assert_allclose(list(res.bse.values()), [t.bse[-1] for t in ts], rtol=0, atol=1e-10)
    np.testing.assert_allclose(list(res.pvalues.values()), [t.pvalues[-1] for t in ts], rtol=1e-9)
    assert res.df_resid == ts[0].df_resid
    # the naive SE reported beside it is the plain cross-sectional OLS one
    np.testing.assert_allclose(list(res.naive.bse.values()), xs.bse, rtol=1e-10)
    f = res.to_frame()
    assert f.columns == ["term", "coef", "se", "t", "p", "lower", "upper", "naive_se", "naive_t"]
    np.testing.assert_allclose(res.ar["ar"].to_numpy(), xs.model.endog, atol=1e-12)
    assert "Sefcik-Thompson" in res.summary()


def test_firms_without_complete_returns_are_left_out_and_named(returns, exposure) -> None:
    # drop ten of NVDA's estimation-day returns; add a ticker with no prices
    nv = returns.filter(pl.col("ticker") == "NVDA").sort("date")
    gap = nv.filter(pl.col("date") < STALL).tail(60).head(10)["date"]
    holed = returns.filter(~((pl.col("ticker") == "NVDA") & pl.col("date").is_in(gap.implode())))
    chars = pl.concat([exposure, pl.DataFrame({"ticker": ["XYZ"], "openai_deals": [1.0], "log_openai_bn": [0.0]})])
    res = common_shock_test(holed, chars, STALL, formula="~ openai_deals")
    assert "NVDA" not in res.firms
    assert res.dropped["NVDA"].startswith("10 missing return")
    assert res.dropped["XYZ"] == "no returns"
    assert "left out" in res.summary()


def test_bad_input(returns, exposure) -> None:
    with pytest.raises(InputError, match="not a trading day"):
        common_shock_test(returns, exposure, date(2026, 1, 31), formula="~ openai_deals")
    with pytest.raises(InputError, match="too late"):
        common_shock_test(returns, exposure, date(2018, 3, 1), formula="~ openai_deals")
    with pytest.raises(InputError, match="exposure_x"):
        common_shock_test(returns, exposure, STALL, formula="~ exposure_x")
    with pytest.raises(InputError, match="twice"):
        common_shock_test(returns, pl.concat([exposure, exposure]), STALL, formula="~ openai_deals")


def _simulate(n_sims: int, seed: int) -> tuple[float, float]:
    """Under H0 (the event day is an ordinary day), firms load on a common industry factor beyond the
    market in proportion to their exposure, as AI-heavy firms do. Returns the 5% rejection rates of
    the naive cross-sectional t and of the Sefcik-Thompson t for the exposure slope."""
    rng = np.random.default_rng(seed)
    n, t_est = 20, 120
    rej_naive = rej_st = 0
    for _ in range(n_sims):
        z = rng.normal(0.0, 1.0, n)
        lam = 0.8 * z + rng.normal(0.0, 0.3, n)  # industry loadings line up with the exposure
        beta = rng.uniform(0.6, 1.6, n)
        m = rng.normal(0.0, 0.01, t_est + 1)
        f = rng.normal(0.0, 0.012, t_est + 1)
        r = m[:, None] * beta + f[:, None] * lam + rng.normal(0.0, 0.015, (t_est + 1, n))
        reg = portfolio_regression(r, m, np.column_stack([np.ones(n), z]), event_row=t_est)
        t_st = reg.gamma[1] / reg.gamma_se[1]
        t_naive = (reg.weights @ reg.ar)[1] / np.sqrt(reg.naive_cov[1, 1])
        rej_st += abs(t_st) > stats.t.ppf(0.975, reg.df_resid)
        rej_naive += abs(t_naive) > stats.t.ppf(0.975, n - 2)
    return rej_naive / n_sims, rej_st / n_sims


@pytest.mark.slow
def test_naive_cross_section_over_rejects_while_portfolios_hold_size() -> None:
    """Small version of bench/bench_crosssection.py (10,000 replications there)."""
    naive, st = _simulate(n_sims=1000, seed=1986)
    # 1,000 replications: MC s.e. of a 5% rate is 0.7 points
    assert naive > 0.30
    assert abs(st - 0.05) < 0.021
