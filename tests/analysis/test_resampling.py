"""CAAR bootstrap-t and sign-flip tests against scipy/statsmodels statistics and looped references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.resampling import caar_test
from core.errors import InputError


def sample(seed: int, n: int = 25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.01 + 0.03 * rng.standard_t(4, n)


def test_statistic_equals_one_sample_t_and_cluster_ols() -> None:
    x = sample(1)
    res = caar_test(x, n_resamples=9)
    ref = stats.ttest_1samp(x, 0.0)
    assert res.params["CAAR"] == pytest.approx(x.mean(), rel=1e-14)
    assert res.tvalues["CAAR"] == pytest.approx(ref.statistic, rel=1e-12)
    groups = np.repeat(np.arange(9), 3)[: x.size - 1]
    groups = np.r_[groups, 8]  # unequal cluster sizes
    cl = caar_test(x, clusters=groups, n_resamples=9)
    ols = sm.OLS(x, np.ones((x.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert cl.bse["CAAR"] == pytest.approx(float(ols.bse[0]), rel=1e-12)
    assert cl.tvalues["CAAR"] == pytest.approx(float(ols.tvalues[0]), rel=1e-12)


def test_bootstrap_equals_looped_reference() -> None:
    x = sample(2) + 0.03
    b = 999
    res = caar_test(x, method="bootstrap", n_resamples=b, rng=11)
    idx = np.random.default_rng(11).integers(0, x.size, size=(b, x.size))
    t_ref = np.array([(x[i].mean() - x.mean()) / (x[i].std(ddof=1) / np.sqrt(x.size)) for i in idx])
    np.testing.assert_allclose(res.t_star, t_ref, rtol=1e-10)
    t = x.mean() / (x.std(ddof=1) / np.sqrt(x.size))
    assert res.pvalues["CAAR"] == (1 + np.sum(np.abs(t_ref) >= abs(t))) / (b + 1)
    se = x.std(ddof=1) / np.sqrt(x.size)
    q = np.quantile(t_ref, [0.025, 0.975])
    np.testing.assert_allclose(res.conf_int().row(0)[1:], [x.mean() - q[1] * se, x.mean() - q[0] * se],
                               rtol=1e-10)
    # a strong effect is found, a seed reproduces
    assert res.pvalues["CAAR"] < 0.05
    assert caar_test(x, n_resamples=b, rng=11).pvalues["CAAR"] == res.pvalues["CAAR"]


def test_sign_flip_exact_equals_enumeration_with_clusters() -> None:
    x = sample(3, 20)
    groups = np.arange(20) % 7  # 7 clusters of sizes 3 and 2
    res = caar_test(x, method="sign_flip", clusters=groups)
    assert res.exact and res.n_resamples == 2**7
    s = np.array([x[groups == g].sum() for g in range(7)])
    n_g = np.array([(groups == g).sum() for g in range(7)])

    def t_of(sums: np.ndarray) -> float:
        m = sums.sum() / 20
        se = np.sqrt(7 / 6 * np.sum((sums - n_g * m) ** 2)) / 20
        return m / se

    t_all = np.array([t_of(np.array(sg) * s) for sg in itertools.product([1, -1], repeat=7)])
    assert res.pvalues["CAAR"] == pytest.approx(np.mean(np.abs(t_all) >= abs(t_of(s)) - 1e-12), abs=1e-15)
    assert res.pvalues["CAAR"] >= 2 / 2**7  # identity and its mirror image always count
    assert np.isnan(res.conf_int().select("lower", "upper").to_numpy()).all()


def test_sign_flip_monte_carlo_close_to_exact() -> None:
    x = sample(4, 11)
    exact = caar_test(x, method="sign_flip").pvalues["CAAR"]
    mc = caar_test(x, method="sign_flip", exact_max_clusters=5, n_resamples=20000, rng=3)
    assert not mc.exact
    se = np.sqrt(exact * (1 - exact) / 20000)
    assert abs(mc.pvalues["CAAR"] - exact) < 4 * se + 1 / 20001


def test_results_object() -> None:
    res = caar_test(sample(5), n_resamples=199, rng=0)
    frame = res.to_frame()
    assert frame["term"].to_list() == ["CAAR"] and frame["p"][0] == res.pvalues["CAAR"]
    assert "bootstrap" in res.summary() and r"\toprule" in res.to_latex() and str(res) == res.summary()
    assert res.conf_int().row(0) == frame.select("term", "lower", "upper").row(0)
    with pytest.raises(InputError, match="alpha=0.05"):
        res.conf_int(0.1)
    with pytest.raises(InputError, match="only standard errors"):
        res.cov_params()


def test_bad_input() -> None:
    with pytest.raises(InputError, match="missing"):
        caar_test(np.array([0.1, np.nan, 0.2]))
    with pytest.raises(InputError, match="labels"):
        caar_test(np.array([0.1, 0.2]), clusters=np.array([1]))
    with pytest.raises(InputError, match="at least 2"):
        caar_test(np.array([0.1, 0.2]), clusters=np.array([1, 1]))
    with pytest.raises(InputError, match="unknown method"):
        caar_test(np.array([0.1, 0.2]), method="jackknife")  # type: ignore[arg-type]


def test_cluster_bootstrap_equals_looped_reference() -> None:
    """Whole clusters drawn: each draw's t* is the cluster-robust t of the stacked drawn CARs."""
    x = sample(6, 18) + 0.01
    labels = np.array(list("aabbbcdddeeffgghhi"))  # 9 clusters of 1-3 firm-events
    b = 300
    res = caar_test(x, clusters=labels, n_resamples=b, rng=21)
    names = np.unique(labels)
    idx = np.random.default_rng(21).integers(0, names.size, size=(b, names.size))
    t_ref = np.empty(b)
    for k, draw in enumerate(idx):
        vals = np.concatenate([x[labels == names[g]] for g in draw])
        grp = np.concatenate([np.full((labels == names[g]).sum(), j) for j, g in enumerate(draw)])
        ols = sm.OLS(vals - x.mean(), np.ones((vals.size, 1))).fit(
            cov_type="cluster", cov_kwds={"groups": grp})
        t_ref[k] = float(ols.tvalues[0])
    np.testing.assert_allclose(res.t_star, t_ref, rtol=1e-9)
