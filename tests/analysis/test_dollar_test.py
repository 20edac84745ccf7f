"""Dollar-CAR tests: a hand computation from the formulas, statsmodels for the cross-sectional t."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.dollar_test import dollar_test
from core.errors import InputError


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    """Market values from about $20bn to $4.5tn (the deal web's spread), CARs and their SEs."""
    rng = np.random.default_rng(2011)
    n = 48
    mcap = np.exp(rng.uniform(np.log(2e10), np.log(4.5e12), n))
    se_car = rng.uniform(0.01, 0.05, n)
    car = 0.006 + rng.normal(0.0, 1.0, n) * se_car
    car[[4, 9]] = np.nan  # CARs with a gap in the window
    return pl.DataFrame(
        {
            "ticker": [f"T{i}" for i in range(n)],
            "mcap": mcap,
            "car": car,
            "se_car": se_car,
        }
    ).with_columns(
        (pl.col("mcap") * pl.col("car")).alias("dollar_car"),
        (pl.col("mcap") * pl.col("se_car")).alias("dollar_se"),
    )


def test_aggregate_test_is_the_hand_formula(frame: pl.DataFrame) -> None:
    res = dollar_test(frame, market_value="mcap")
    c = frame.filter(pl.col("car").is_not_nan())
    d, s, v = c["dollar_car"].to_numpy(), c["dollar_se"].to_numpy(), c["mcap"].to_numpy()
    total, se_total = d.sum(), np.sqrt((s**2).sum())
    z = total / se_total
    assert res.nobs == 46 and res.n_dropped == 2
    assert res.params["total_dollar_car"] == pytest.approx(total, rel=1e-12)
    assert res.bse["total_dollar_car"] == pytest.approx(se_total, rel=1e-12)
    assert res.tvalues["total_dollar_car"] == pytest.approx(z, rel=1e-12)
    assert res.pvalues["total_dollar_car"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
    ci = res.conf_int(0.10).row(0, named=True)
    assert ci["lower"] == pytest.approx(total - stats.norm.ppf(0.95) * se_total, rel=1e-10)
    # the value-weighted CAR, sum(V CAR)/sum(V), has the same z: its SE is sqrt(sum V^2 se^2)/sum(V)
    vw = (v * c["car"].to_numpy()).sum() / v.sum()
    vw_se = np.sqrt((v**2 * c["se_car"].to_numpy() ** 2).sum()) / v.sum()
    assert res.value_weighted_car == pytest.approx(vw, rel=1e-12)
    assert vw / vw_se == pytest.approx(z, rel=1e-12)
    # and it is not the equally weighted mean CAR
    assert abs(vw - c["car"].mean()) > 1e-4


def test_cross_sectional_t_agrees_with_statsmodels(frame: pl.DataFrame) -> None:
    res = dollar_test(frame)
    d = frame.filter(pl.col("car").is_not_nan())["dollar_car"].to_numpy()
    ref = sm.OLS(d, np.ones_like(d)).fit()
    m = res.mean_test
    assert m.params["mean_dollar_car"] == pytest.approx(ref.params[0], rel=1e-12)
    assert m.bse["mean_dollar_car"] == pytest.approx(ref.bse[0], rel=1e-10)
    assert m.tvalues["mean_dollar_car"] == pytest.approx(ref.tvalues[0], rel=1e-10)
    assert m.pvalues["mean_dollar_car"] == pytest.approx(ref.pvalues[0], rel=1e-9)
    assert res.df_resid == ref.df_resid == 45
    lo, hi = ref.conf_int()[0]
    row = res.to_frame().filter(pl.col("term") == "mean_dollar_car").row(0, named=True)
    assert row["lower"] == pytest.approx(lo, rel=1e-10) and row["upper"] == pytest.approx(hi, rel=1e-10)
    assert row["dist"] == "t(45)"


def test_firm_level_dollar_t_equals_return_t(frame: pl.DataFrame) -> None:
    """Conditional on the market value at t0-1 (Duarte-Silva and Tripolski Kimel 2014)."""
    c = frame.filter(pl.col("car").is_not_nan())
    np.testing.assert_allclose(
        (c["dollar_car"] / c["dollar_se"]).to_numpy(), (c["car"] / c["se_car"]).to_numpy(), rtol=1e-12
    )


def test_rendering_and_bad_input(frame: pl.DataFrame) -> None:
    res = dollar_test(frame, market_value="mcap")
    text = res.summary()
    assert "2 firm-event(s) dropped" in text and "Value-weighted CAR" in text
    tex = res.to_latex()
    assert r"total\_dollar\_car" in tex and r"mean\_dollar\_car" in tex and "$t/z$" in tex
    with pytest.raises(InputError, match="dollar_se"):
        dollar_test(frame.drop("dollar_se"))
    with pytest.raises(InputError, match="positive"):
        dollar_test(frame.with_columns(pl.lit(0.0).alias("dollar_se")))
    with pytest.raises(InputError, match="at least 2"):
        dollar_test(frame.head(1))
