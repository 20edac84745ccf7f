"""Significance battery against independent formulas, plus size and power on synthetic panels."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from estudy2_reference import market_model_panel
from scipy import stats

from analysis import significance as S
from analysis.conventions import ESTUDY2, TEXTBOOK, Conventions
from analysis.panel import ARPanel, EstimationBlock

L_EST, L_EV = 150, 5


def simulate(
    seed: int,
    n: int = 40,
    shock: float = 0.0,
    missing: bool = False,
    conventions: Conventions = TEXTBOOK,
    common: float = 0.0,
) -> tuple[ARPanel, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    L = L_EST + L_EV
    m = rng.normal(0.0004, 0.01, L)
    beta = rng.uniform(0.5, 1.5, n)
    sig = rng.uniform(0.01, 0.03, n)
    f = rng.normal(0, 1, L)  # common shock -> cross-correlated residuals when common > 0
    eps = sig[:, None] * (
        np.sqrt(1 - common) * rng.standard_normal((n, L)) + np.sqrt(common) * f[None, :]
    )
    y = 0.0002 + beta[:, None] * m[None, :] + eps
    y[:, L_EST] += shock  # event day 0
    if missing:
        y[: n // 4, :30] = np.nan  # late listings
        y[n // 4 : n // 3, L_EST + 2] = np.nan  # a few firms without a return on day +2
    is_est = np.arange(L) < L_EST
    keys = pl.DataFrame(
        {"event_id": [f"e{i:03d}" for i in range(n)], "ticker": [f"T{i}" for i in range(n)]}
    )
    return market_model_panel(y, m, is_est, keys, conventions), y, m


def per_firm(y: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference OLS per firm (loop, test-only): AR, sigma (ddof 2), pe factor, (X'X)^-1."""
    n, L = y.shape
    ar = np.full((n, L), np.nan)
    sig = np.empty(n)
    pe = np.full((n, L), np.nan)
    inv = np.empty((n, 2, 2))
    X = np.column_stack([np.ones(L), m])
    for i in range(n):
        ok = np.isfinite(y[i]) & (np.arange(L) < L_EST)
        b, *_ = np.linalg.lstsq(X[ok], y[i, ok], rcond=None)
        ar[i] = y[i] - X @ b
        sig[i] = np.sqrt(np.sum(ar[i, ok] ** 2) / (ok.sum() - 2))
        inv[i] = np.linalg.inv(X[ok].T @ X[ok])
        pe[i, L_EST:] = 1 + np.einsum("lk,kj,lj->l", X[L_EST:], inv[i], X[L_EST:])
    ar[~np.isfinite(y)] = np.nan
    return ar, sig, pe, inv


def test_panel_matches_per_firm_ols() -> None:
    p, y, m = simulate(1, missing=True)
    ar, sig, pe, inv = per_firm(y, m)
    np.testing.assert_allclose(p.full_ar(), ar, atol=1e-12)
    np.testing.assert_allclose(p.sigma, sig, rtol=1e-10)
    np.testing.assert_allclose(p.pe_factor, pe[:, L_EST:], rtol=1e-10)
    np.testing.assert_allclose(p.xtx_inv, inv, rtol=1e-8)


@pytest.mark.parametrize("missing", [False, True])
def test_cross_sectional_t_equals_scipy(missing: bool) -> None:
    p, *_ = simulate(2, shock=0.004, missing=missing)
    for d in range(L_EV):
        x = p.full_ar()[:, L_EST + d]
        x = x[np.isfinite(x)]
        ref = stats.ttest_1samp(x, 0.0)
        r = S.cross_sectional_t(p, day=d)
        assert r.statistic[0] == pytest.approx(ref.statistic, rel=1e-12)
        assert r.p_value[0] == pytest.approx(ref.pvalue, rel=1e-9)
        assert r.n[0] == x.size
    car = p.full_ar()[:, L_EST + 1 : L_EST + 4].sum(axis=1)
    car = car[np.isfinite(car)]
    ref = stats.ttest_1samp(car, 0.0)
    r = S.cross_sectional_t(p, window=(1, 3))
    assert r.statistic[0] == pytest.approx(ref.statistic, rel=1e-12)
    assert r.n[0] == car.size


def test_patell_and_bmp_against_hand_formula() -> None:
    p, y, m = simulate(3, shock=0.003, missing=True)
    ar, sig, pe, inv = per_firm(y, m)
    M = np.isfinite(y[:, :L_EST]).sum(axis=1)
    for d in range(L_EV):
        c = L_EST + d
        sar = ar[:, c] / (sig * np.sqrt(pe[:, c]))
        ok = np.isfinite(sar)
        z = sar[ok].sum() / np.sqrt(((M[ok] - 2) / (M[ok] - 4)).sum())
        assert S.patell_z(p, day=d).statistic[0] == pytest.approx(z, rel=1e-10)
        assert S.patell_z(p, day=d).p_value[0] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
        t = stats.ttest_1samp(sar[ok], 0.0)
        assert S.bmp_t(p, day=d).statistic[0] == pytest.approx(t.statistic, rel=1e-10)
        assert S.bmp_t(p, day=d).p_value[0] == pytest.approx(t.pvalue, rel=1e-8)
    # window [0, +1]: full CAR variance from the explicit covariance matrix of the two prediction errors
    X = np.column_stack([np.ones(L_EST + L_EV), m])[L_EST : L_EST + 2]
    scar = np.empty(p.n)
    for i in range(p.n):
        cov = sig[i] ** 2 * (np.eye(2) + X @ inv[i] @ X.T)
        scar[i] = ar[i, L_EST : L_EST + 2].sum() / np.sqrt(cov.sum())
    z = scar.sum() / np.sqrt(((M - 2) / (M - 4)).sum())
    assert S.patell_z(p, window=(0, 1)).statistic[0] == pytest.approx(z, rel=1e-10)
    assert S.bmp_t(p, window=(0, 1)).statistic[0] == pytest.approx(
        stats.ttest_1samp(scar, 0.0).statistic, rel=1e-10
    )


def test_kolari_pynnonen_rbar_and_adjustment() -> None:
    p, *_ = simulate(4, common=0.3)
    e = p.full_ar()[:, :L_EST]
    c = np.corrcoef(e)  # OLS residuals have mean zero, so centred = uncentred
    rbar = c[np.triu_indices(p.n, 1)].mean()
    assert S.cross_correlation(p) == pytest.approx(rbar, rel=1e-10)
    assert 0.2 < rbar < 0.4
    b = S.bmp_t(p, day=0).statistic[0]
    kp = S.kolari_pynnonen_t(p, day=0).statistic[0]
    assert kp == pytest.approx(b * np.sqrt((1 - rbar) / (1 + (p.n - 1) * rbar)), rel=1e-10)


def test_corrado_rank_against_scipy_ranks() -> None:
    p, *_ = simulate(5, shock=0.01, missing=True)
    n, L = p.full_ar().shape
    u = np.full((n, L), np.nan)
    for i in range(n):
        ok = np.isfinite(p.full_ar()[i])
        u[i, ok] = stats.rankdata(p.full_ar()[i, ok]) - (ok.sum() + 1) / 2
    ubar = np.nanmean(u, axis=0)
    mbar = np.isfinite(p.full_ar()).sum(axis=1).mean()
    s = np.sqrt(np.sum(ubar**2) / mbar)
    for d in range(L_EV):
        assert S.corrado_rank(p, day=d).statistic[0] == pytest.approx(
            ubar[L_EST + d] / s, rel=1e-10
        )
    # window [0, +2]: only firm-events ranked on every window day (day +2 has a gap), S from them too
    uw = u[:, L_EST : L_EST + 3]
    full = np.isfinite(uw).all(axis=1)
    assert 0 < full.sum() < n
    ubar_f = np.nanmean(u[full], axis=0)
    s_f = np.sqrt(np.sum(ubar_f**2) / np.isfinite(p.full_ar()[full]).sum(axis=1).mean())
    w = S.corrado_rank(p, window=(0, 2))
    assert w.statistic[0] == pytest.approx(np.sqrt(3) * ubar_f[L_EST : L_EST + 3].mean() / s_f, rel=1e-10)
    assert w.n[0] == full.sum()
    assert w.statistic[0] != pytest.approx(np.sqrt(3) * np.nanmean(uw, axis=0).mean() / s, rel=1e-6)
    # estudy2 inflates the day sums on days with missing firms (day +2 here), nowhere else
    e2 = S.corrado_rank(p, day=2, conventions=ESTUDY2).statistic[0]
    assert abs(e2) > 0 and e2 != pytest.approx(ubar[L_EST + 2] / s, rel=1e-6)


def test_rank_ties_are_averaged() -> None:
    p, *_ = simulate(6, n=5)
    ar = p.full_ar()
    ar[:, 10] = ar[:, 11]  # ties (estimation days)
    ranks, _ = S._ranks(dataclasses.replace(p, estimation=EstimationBlock(values=ar[:, p.is_est])))
    for i in range(5):
        np.testing.assert_allclose(ranks[i], stats.rankdata(ar[i]))


def test_average_ranks_are_scipy_rankdata_bit_for_bit() -> None:
    """analysis.significance ranks without scipy.stats (its import is a cold-start cost): the same
    array as scipy.stats.rankdata(..., axis=1, nan_policy="omit"), ties, NaN, infinities and all."""
    rng = np.random.default_rng(16)
    x = rng.integers(0, 12, size=(300, 61)).astype(float)  # many ties
    x[rng.random(x.shape) < 0.15] = np.nan
    x[0, :] = np.nan  # an all-NaN row
    x[1, :5] = [np.inf, -np.inf, np.inf, 3.0, -np.inf]
    x[2, :] = 7.0  # one tie group
    x = np.vstack([x, rng.normal(size=(50, 61))])  # no ties
    ours = S.average_ranks(x)
    ref = stats.rankdata(x, axis=1, nan_policy="omit")
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)
    assert np.array_equal(np.isnan(ours), np.isnan(x))


def test_generalized_sign_formula() -> None:
    p, *_ = simulate(7, shock=0.01, missing=True)
    e = p.full_ar()[:, :L_EST]
    ok = np.isfinite(e)
    phat_firm = np.mean((e > 0).sum(axis=1) / ok.sum(axis=1))
    phat_pool = (e > 0).sum() / ok.sum()
    x = p.full_ar()[:, L_EST]
    w, n = (x > 0).sum(), np.isfinite(x).sum()
    for conv, ph in ((TEXTBOOK, phat_firm), (ESTUDY2, phat_pool)):
        z = (w - n * ph) / np.sqrt(n * ph * (1 - ph))
        assert S.generalized_sign(p, day=0, conventions=conv).statistic[0] == pytest.approx(
            z, rel=1e-12
        )
    assert phat_firm != phat_pool


def test_skewness_adjusted_t_formula() -> None:
    p, *_ = simulate(8, shock=0.002)
    x = p.full_ar()[:, L_EST + 1]
    n = x.size
    s = x.mean() / x.std(ddof=1)
    g = stats.skew(x, bias=False)
    ref = np.sqrt(n) * (s + g * s**2 / 3 + g**2 * s**3 / 27 + g / (6 * n))
    assert S.skewness_adjusted_t(p, day=1).statistic[0] == pytest.approx(ref, rel=1e-10)


def test_brown_warner_window_is_sum_of_daily_over_sqrt_l() -> None:
    p, *_ = simulate(9, shock=0.005)
    daily = np.array([S.brown_warner_1985(p, day=d).statistic[0] for d in range(3)])
    assert S.brown_warner_1985(p, window=(0, 2)).statistic[0] == pytest.approx(
        daily.sum() / np.sqrt(3)
    )
    rm = np.nanmean(p.full_ar()[:, :L_EST], axis=0)
    assert daily[0] == pytest.approx(np.nanmean(p.full_ar()[:, L_EST]) / rm.std(ddof=1), rel=1e-12)


def test_bad_requests_raise() -> None:
    p, *_ = simulate(10, n=5)
    with pytest.raises(ValueError):
        S.cross_sectional_t(p)
    with pytest.raises(ValueError):
        S.patell_z(p, day=-3)  # estimation day
    with pytest.raises(KeyError):
        S.bmp_t(p, day=50)


SIZE_TESTS = [
    "cross_sectional_t",
    "patell_z",
    "bmp_t",
    "kolari_pynnonen_t",
    "corrado_rank",
    "generalized_sign",
    "skewness_adjusted_t",
]


@pytest.fixture(scope="module")
def null_draws() -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {t: [] for t in SIZE_TESTS}
    out.update({t + "_w": [] for t in SIZE_TESTS})
    for seed in range(300):
        p, *_ = simulate(1000 + seed, n=30)
        for t in SIZE_TESTS:
            out[t].append(S.TESTS[t](p, day=0).p_value[0])
            out[t + "_w"].append(S.TESTS[t](p, window=(0, 2)).p_value[0])
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("test", SIZE_TESTS + [t + "_w" for t in SIZE_TESTS])
def test_size_under_null(null_draws: dict[str, np.ndarray], test: str) -> None:
    rate = float(np.mean(null_draws[test] < 0.05))
    # 300 draws: binomial sd of a 5% rate is 1.26 points; allow about +-3 sd.
    assert 0.012 <= rate <= 0.09, rate


@pytest.mark.parametrize("test", SIZE_TESTS)
def test_power_with_injected_ar(test: str) -> None:
    rej = []
    for seed in range(60):
        p, *_ = simulate(5000 + seed, n=30, shock=0.02)
        rej.append(S.TESTS[test](p, day=0).p_value[0] < 0.05)
    assert np.mean(rej) >= 0.9


def test_patell_estudy2_sums_over_all_firms_on_gappy_days() -> None:
    p, *_ = simulate(11, missing=True)  # some firms have no AR on day +2
    sar = p.full_ar()[:, L_EST + 2] / (p.sigma * np.sqrt(p.pe_factor[:, 2]))
    ok = np.isfinite(sar)
    var = (p.n_est - 2) / (p.n_est - 4)
    tb = sar[ok].sum() / np.sqrt(var[ok].sum())
    e2 = sar[ok].mean() * p.n / np.sqrt(var.sum())
    assert S.patell_z(p, day=2, conventions=TEXTBOOK).statistic[0] == pytest.approx(tb, rel=1e-12)
    assert S.patell_z(p, day=2, conventions=ESTUDY2).statistic[0] == pytest.approx(e2, rel=1e-12)
    assert tb != pytest.approx(e2, rel=1e-3)
