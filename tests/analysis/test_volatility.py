"""Abnormal volatility on the shipped Stargate event: GARCH(1,1) market model against ``arch`` fitted
directly (and a hand recursion), the variance ratio against statsmodels OLS predictions + scipy."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from arch import arch_model
from scipy import stats

from analysis.engine import EventStudy
from analysis.study import run_garch_study, run_study
from analysis.volatility import GARCH_PARAMS, garch_study, variance_ratio
from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file
from market.returns import compute_returns
from market.sources import read_snapshot_file

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "prices"
T0 = date(2025, 1, 22)  # stargate-2025-01-21, after the close
STARGATE = ("ORCL", "MSFT", "NVDA", "ARM", "9984.T")
WINDOWS = ((-1, 1), (0, 0), (-10, 10))


@pytest.fixture(scope="module")
def deals(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    with connect(tmp_path_factory.mktemp("g") / "g.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        return api.deals(con)


@pytest.fixture(scope="module")
def returns() -> pl.DataFrame:
    return compute_returns(pl.concat([read_snapshot_file(PRICES / f"{t}.csv") for t in (*STARGATE, "SPY")]))


@pytest.fixture(scope="module")
def garch(deals: pl.DataFrame, returns: pl.DataFrame):  # type: ignore[no-untyped-def]
    return run_garch_study(deals, returns, deal_filter=["stargate-2025-01-21"], windows=WINDOWS)


def csv_series(ticker: str) -> tuple[list[date], np.ndarray, np.ndarray]:
    """(SPY dates, ticker's and SPY's adj-close returns on them) straight from the CSVs."""
    def rets(t: str) -> pl.DataFrame:
        f = pl.read_csv(PRICES / f"{t}.csv", try_parse_dates=True).sort("date")
        return f.select("date", (pl.col("adj_close") / pl.col("adj_close").shift(1) - 1).alias(t)).drop_nulls()
    both = rets("SPY").join(rets(ticker), on="date", how="inner").sort("date")
    return both["date"].to_list(), both[ticker].to_numpy(), both["SPY"].to_numpy()


@pytest.mark.parametrize("ticker", ["ORCL", "MSFT", "NVDA"])
def test_garch_matches_arch_fitted_directly(garch, ticker: str) -> None:  # type: ignore[no-untyped-def]
    d, y, m = csv_series(ticker)
    i0 = d.index(T0)
    est = slice(i0 - 250, i0 - 10)  # [-250, -11]
    am = arch_model(100 * y[est], x=100 * m[est, None], mean="LS", vol="GARCH", p=1, q=1, rescale=False)
    ref = am.fit(disp="off")
    assert ref.convergence_flag == 0
    got = garch.params.filter(pl.col("ticker") == ticker).row(0, named=True)
    assert got["converged"]
    scale = dict(zip(GARCH_PARAMS, (100.0, 1.0, 1e4, 1.0, 1.0), strict=True))
    for name, v in zip(GARCH_PARAMS, ref.params.to_numpy(), strict=True):
        assert got[name] * scale[name] == pytest.approx(v, rel=1e-6, abs=1e-9), name
    bse = garch.bse.filter(pl.col("ticker") == ticker).row(0, named=True)
    for name, v in zip(GARCH_PARAMS, ref.std_err.to_numpy(), strict=True):
        assert bse[name] * scale[name] == pytest.approx(v, rel=1e-6, abs=1e-9), name

    # Standardised ARs by hand: the GARCH recursion from arch's parameters and last estimation day.
    c, b, omega, a1, b1 = ref.params.to_numpy()
    post = slice(i0 - 10, i0 + 11)  # [-10, +10]
    e = 100 * y[post] - c - b * 100 * m[post]
    s2 = np.empty(e.shape[0])
    e_prev, s_prev = ref.resid[-1], ref.conditional_volatility[-1]
    for t in range(e.shape[0]):
        s2[t] = omega + a1 * e_prev**2 + b1 * s_prev**2
        e_prev, s_prev = e[t], np.sqrt(s2[t])
    ar = garch.ar.filter(pl.col("event_id") == f"stargate-2025-01-21:{ticker}").sort("rel_day")
    np.testing.assert_allclose(ar["ar"].to_numpy() * 100, e, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ar["se"].to_numpy() * 100, np.sqrt(s2), rtol=1e-6)
    np.testing.assert_allclose(ar["sar"].to_numpy(), e / np.sqrt(s2), rtol=1e-6, atol=1e-8)

    car = garch.car.filter(pl.col("ticker") == ticker)
    for (lo, hi), row in zip(WINDOWS, car.iter_rows(named=True), strict=True):
        k = slice(lo + 10, hi + 11)
        se = np.sqrt(s2[k].sum()) / 100
        assert row["car"] == pytest.approx(e[k].sum() / 100, rel=1e-6, abs=1e-10)
        assert row["se"] == pytest.approx(se, rel=1e-6)
        assert row["p"] == pytest.approx(2 * stats.norm.sf(abs(row["t"])), rel=1e-9)


def test_garch_battery_runs_on_standardised_ars(garch) -> None:  # type: ignore[no-untyped-def]
    sar0 = garch.ar.filter(pl.col("rel_day") == 0).sort("event_id")["sar"].to_numpy()
    bat = garch.tests((0, 0)).frame
    # cross-sectional t of the standardised day-0 ARs = statsmodels OLS on a constant
    ols = sm.OLS(sar0, np.ones_like(sar0)).fit()
    assert bat.filter(pl.col("test") == "cross_sectional_t")["statistic"][0] == pytest.approx(
        float(ols.tvalues[0]), rel=1e-10
    )
    assert garch.model.name == "garch" and garch.nobs == 5 and garch.excluded.height == 0
    assert "garch(1,1)" in garch.summary()


def test_model_garch_is_registered_and_run_study_dispatches(deals, returns, garch) -> None:  # type: ignore[no-untyped-def]
    via = run_study(deals, returns, model="garch", deal_filter=["stargate-2025-01-21"], windows=WINDOWS)
    assert via.car.equals(garch.car) and via.params.equals(garch.params)
    with pytest.raises(InputError, match="takes no --method"):
        run_study(deals, returns, model="garch", method="statsmodels")
    with pytest.raises(ValueError, match="not by the batch engine"):
        EventStudy(returns, pl.DataFrame({"event_id": ["e"], "ticker": ["ORCL"], "t0": [T0]}), model="garch").fit()


def test_variance_ratio_equals_statsmodels_prediction_errors(deals: pl.DataFrame, returns: pl.DataFrame) -> None:
    res = run_study(deals, returns, deal_filter=["stargate-2025-01-21"], windows=WINDOWS)
    vr = variance_ratio(res.panel, (-1, 1))
    q, n = 0.0, 0
    for ticker in ("ORCL", "MSFT", "NVDA"):
        d, y, m = csv_series(ticker)
        i0 = d.index(T0)
        x = sm.add_constant(m)
        ols = sm.OLS(y[i0 - 250 : i0 - 10], x[i0 - 250 : i0 - 10]).fit()
        w = slice(i0 - 1, i0 + 2)
        pred = ols.get_prediction(x[w])
        sar2 = (y[w] - pred.predicted_mean) ** 2 / pred.se_obs**2
        ratio = float(sar2.mean())
        row = vr.frame.filter(pl.col("ticker") == ticker).row(0, named=True)
        assert row["var_ratio"] == pytest.approx(ratio, rel=1e-9)
        assert (row["df1"], row["df2"]) == (3, 238)
        assert row["p"] == pytest.approx(stats.f.sf(ratio, 3, 238), rel=1e-8)
        q += 3 * ratio
        n += 1
    # ORCL's leak and announcement days: abnormal returns ~10x the estimation variance
    orcl = vr.frame.filter(pl.col("ticker") == "ORCL").row(0, named=True)
    assert orcl["var_ratio"] > 5 and orcl["p"] < 1e-3
    all_q = float((3 * vr.frame["var_ratio"]).sum())
    pooled = vr.pooled.row(0, named=True)
    assert pooled["chi2"] == pytest.approx(all_q, rel=1e-12) and pooled["df"] == 15
    assert pooled["p"] == pytest.approx(stats.chi2.sf(all_q, 15), rel=1e-8)
    assert n == 3 and q < all_q


def test_bad_input(returns: pl.DataFrame) -> None:
    ev = pl.DataFrame({"event_id": ["e"], "deal_id": ["d"], "ticker": ["ORCL"], "t0": [T0]})
    with pytest.raises(InputError, match="must start after the estimation window"):
        garch_study(returns, ev, windows=((-20, 0),))
    with pytest.raises(InputError, match="benchmark"):
        garch_study(returns, ev, benchmark="QQQ")
    with pytest.raises(InputError, match="empty"):
        garch_study(returns, ev, windows=((2, 1),))


def test_garch_uses_the_engines_grid_returns_for_tokyo(deals: pl.DataFrame, returns: pl.DataFrame, garch) -> None:  # type: ignore[no-untyped-def]
    # Both routes rebuild the grid return as AR + fitted mean: the GARCH study compounds a Tokyo-only
    # session into the next US session exactly as the engine does (2025-01-20, MLK day, into day -1).
    ols = run_study(deals, returns, deal_filter=["stargate-2025-01-21"], windows=WINDOWS, ticker_filter=["9984.T"])
    spy = returns.filter(pl.col("ticker") == "SPY").sort("date")
    days = spy["date"].to_list()
    i0 = days.index(T0)
    m = spy["ret"].to_numpy()[i0 - 10 : i0 + 11]
    g = garch.params.filter(pl.col("ticker") == "9984.T").row(0, named=True)
    o = ols.params.row(0, named=True)
    r_garch = garch.ar.filter(pl.col("event_id") == "stargate-2025-01-21:9984.T").sort("rel_day")["ar"].to_numpy()
    r_garch = r_garch + g["alpha"] + g["beta_market"] * m
    r_ols = ols.ar.sort("rel_day")["ar"].to_numpy() + o["alpha"] + o["beta_SPY"] * m
    np.testing.assert_allclose(r_garch, r_ols, rtol=0, atol=1e-12, equal_nan=True)
    tokyo = returns.filter(pl.col("ticker") == "9984.T")
    r20, r21 = (tokyo.filter(pl.col("date") == date(2025, 1, d))["ret"][0] for d in (20, 21))
    assert r_garch[9] == pytest.approx((1 + r20) * (1 + r21) - 1, abs=1e-12)  # day -1 = 2025-01-21
