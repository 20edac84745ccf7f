"""analysis.prediction_error: sigma^2 (L + s'As) against the sum of the full covariance matrix of the ARs."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.prediction_error import (
    ar_variance_factor,
    car_variance_factor,
    quad_form,
    window_sums,
)


def _case(seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, n_days, k = 4, 9, 3
    x = np.concatenate([np.ones((n, n_days, 1)), rng.normal(0, 0.01, (n, n_days, k - 1))], axis=2)
    x_est = np.concatenate([np.ones((n, 200, 1)), rng.normal(0, 0.01, (n, 200, k - 1))], axis=2)
    a = np.linalg.inv(np.einsum("nlk,nlj->nkj", x_est, x_est))
    return x, a, x_est


def test_car_factor_equals_the_summed_covariance_of_the_ars() -> None:
    x, a, _ = _case()
    cols = np.arange(2, 7)
    # Independent route: Cov(AR)/sigma^2 = I + X A X' over the window; Var(CAR) is the sum of all of it.
    xw = x[:, cols, :]
    cov = np.eye(cols.shape[0])[None] + np.einsum("nlk,nkj,nmj->nlm", xw, a, xw)
    expected = cov.sum(axis=(1, 2))
    planes = [None, *(x[:, :, j] for j in range(1, x.shape[2]))]
    got = car_variance_factor(a, window_sums(planes, cols), float(cols.shape[0]))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # and it exceeds the sum of the daily factors by the cross-day terms, which are not negligible
    daily = ar_variance_factor(a, [np.ones((4, cols.shape[0])), *(xw[:, :, j] for j in range(1, 3))])
    assert isinstance(daily, np.ndarray)
    cross = expected - daily.sum(axis=1)
    np.testing.assert_allclose(cross, expected - np.trace(cov, axis1=1, axis2=2), rtol=1e-12)
    assert np.all(np.abs(cross) > 1e-4)


def test_quad_form_and_the_no_parameter_case() -> None:
    x, a, _ = _case(9)
    planes = [x[:, :, j] for j in range(3)]
    np.testing.assert_allclose(quad_form(a, planes), np.einsum("nlk,nkj,nlj->nl", x, a, x), rtol=1e-13)
    none = np.empty((4, 0, 0))
    assert ar_variance_factor(none, []) == 1.0
    np.testing.assert_array_equal(car_variance_factor(none, [], 5.0), np.full((4, 1), 5.0))
    prefixes = car_variance_factor(none[:1], [], np.arange(1, 4))
    np.testing.assert_array_equal(prefixes, [[1.0, 2.0, 3.0]])


def test_prefix_windows_as_the_car_path_uses_them() -> None:
    x, a, _ = _case(2)
    s = np.cumsum(x[0], axis=0)  # (L, k): regressor sums over [first day, t]
    got = car_variance_factor(a[:1], [s[None, :, j] for j in range(3)], np.arange(1, 10))[0]
    for t in range(9):
        xw = x[0, : t + 1]
        assert got[t] == pytest.approx((np.eye(t + 1) + xw @ a[0] @ xw.T).sum(), rel=1e-13)
