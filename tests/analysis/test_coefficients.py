"""The one coefficient table against statsmodels (t and normal inference) and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.coefficients import (
    CoefficientTable,
    critical_value,
    render_latex,
    render_text,
    two_sided_p,
)
from core.errors import InputError


@pytest.fixture(scope="module")
def ols() -> sm.regression.linear_model.RegressionResults:
    rng = np.random.default_rng(12)
    x = sm.add_constant(rng.normal(size=(40, 2)))
    y = x @ np.array([0.1, 0.5, 0.0]) + rng.normal(size=40)
    return sm.OLS(y, x).fit(cov_type="HC1", use_t=True)


def test_full_covariance_equals_statsmodels(ols) -> None:  # type: ignore[no-untyped-def]
    names = ("const", "x1", "x2")
    tab = CoefficientTable(names=names, estimates=ols.params, cov=ols.cov_params(), df=ols.df_resid)
    assert list(tab.params) == list(names)
    np.testing.assert_allclose(list(tab.params.values()), ols.params, rtol=1e-15)
    np.testing.assert_allclose(list(tab.bse.values()), ols.bse, rtol=1e-14)
    np.testing.assert_allclose(list(tab.tvalues.values()), ols.tvalues, rtol=1e-14)
    np.testing.assert_allclose(list(tab.pvalues.values()), ols.pvalues, rtol=1e-12)
    for alpha in (0.05, 0.01, 0.3):
        np.testing.assert_allclose(tab.conf_int(alpha).select("lower", "upper").to_numpy(),
                                   ols.conf_int(alpha), rtol=1e-13)
    np.testing.assert_array_equal(tab.cov_params(), ols.cov_params())
    # standard errors alone give the same inference; only the covariance is then unknown
    se_only = CoefficientTable(names=names, estimates=ols.params, se=ols.bse, df=ols.df_resid)
    assert se_only.to_frame().equals(tab.to_frame())
    with pytest.raises(InputError, match="only standard errors"):
        se_only.cov_params()


def test_normal_reference_and_null() -> None:
    tab = CoefficientTable(names=("a", "b"), estimates=np.array([1.0, -0.2]), se=np.array([0.4, 0.1]),
                           df=None, null=np.array([0.5, 0.0]))
    z = np.array([(1.0 - 0.5) / 0.4, -2.0])
    np.testing.assert_allclose(list(tab.tvalues.values()), z, rtol=1e-15)
    np.testing.assert_allclose(list(tab.pvalues.values()), 2 * stats.norm.sf(np.abs(z)), rtol=1e-13)
    assert tab.stat_label == "z"
    ci = tab.conf_int(0.10)
    np.testing.assert_allclose(ci["upper"].to_numpy(), [1.0 + stats.norm.ppf(0.95) * 0.4,
                                                        -0.2 + stats.norm.ppf(0.95) * 0.1], rtol=1e-14)


def test_two_sided_p_is_scipy_stats_bit_for_bit() -> None:
    """The tails every p-value of carousel comes from (significance tests, the engine's CAR t, the
    coefficient tables): exactly scipy.stats' 2 * t.sf and 2 * norm.sf, with one df per statistic too."""
    rng = np.random.default_rng(17)
    x = np.concatenate([rng.standard_t(3, 2000) * rng.uniform(0, 5, 2000), [0.0, np.inf, -np.inf, 40.0, np.nan]])
    df = rng.integers(1, 300, x.size).astype(float)
    np.testing.assert_array_equal(two_sided_p(x, df), 2.0 * stats.t.sf(np.abs(x), df))
    np.testing.assert_array_equal(two_sided_p(x, None), 2.0 * stats.norm.sf(np.abs(x)))


def test_tail_helpers_equal_scipy_stats() -> None:
    t = np.array([-3.1, -0.2, 0.0, 1.7, 40.0])
    for df in (3.0, 27.5, 1e6):
        np.testing.assert_allclose(two_sided_p(t, df), 2 * stats.t.sf(np.abs(t), df), rtol=1e-12)
        for alpha in (1e-8, 0.05, 0.5):
            assert critical_value(alpha, df) == pytest.approx(stats.t.isf(alpha / 2, df), rel=1e-12)
    np.testing.assert_allclose(two_sided_p(t, None), 2 * stats.norm.sf(np.abs(t)), rtol=1e-12)
    assert critical_value(0.05, None) == pytest.approx(1.959963984540054, rel=1e-15)
    with pytest.raises(InputError, match="alpha"):
        critical_value(1.0, 5.0)


def test_resampled_p_and_interval_replace_the_t_law() -> None:
    tab = CoefficientTable(names=("CAAR",), estimates=np.array([0.02]), se=np.array([0.01]), df=None,
                           resampled_p=np.array([0.0312]), resampled_ci=np.array([[0.004, 0.041]]))
    assert tab.pvalues == {"CAAR": 0.0312} and tab.tvalues == {"CAAR": 2.0}
    assert tab.conf_int().row(0) == ("CAAR", 0.004, 0.041)
    assert tab.stat_label == "t"
    with pytest.raises(InputError, match="only for alpha=0.05"):
        tab.conf_int(0.1)
    text = render_text("T", ["h"], tab, notes=["n1"])
    assert "p*" in text and "resampling distribution" in text and text.endswith("n1")
    tex = render_latex(tab, ["a note_1"], caption="Cap")
    assert r"CAAR & 0.02** & 0.01 & 2.000 & 0.0312 & [0.004, 0.041] \\" in tex
    assert r"a note\_1" in tex and r"\caption{Cap}" in tex


def test_bad_tables_name_the_field() -> None:
    est = np.array([1.0, 2.0])
    with pytest.raises(InputError, match="not both"):
        CoefficientTable(names=("a", "b"), estimates=est, cov=np.eye(2), se=np.ones(2), df=None)
    with pytest.raises(InputError, match="not both"):
        CoefficientTable(names=("a", "b"), estimates=est, df=None)
    with pytest.raises(InputError, match="cov has shape"):
        CoefficientTable(names=("a", "b"), estimates=est, cov=np.eye(3), df=None)
    with pytest.raises(InputError, match="3 estimates for 2 names"):
        CoefficientTable(names=("a", "b"), estimates=np.ones(3), se=np.ones(2), df=None)
    with pytest.raises(InputError, match="repeat"):
        CoefficientTable(names=("a", "a"), estimates=est, se=np.ones(2), df=None)
