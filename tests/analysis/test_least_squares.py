"""The shared QR least-squares fit against statsmodels OLS, for one and for several dependent columns."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analysis.least_squares import full_rank_qr, ols_fit
from core.errors import InputError


def test_equals_statsmodels_one_and_many_columns() -> None:
    rng = np.random.default_rng(3)
    x = sm.add_constant(rng.normal(size=(50, 3)))
    y = rng.normal(size=(50, 4))
    fit = ols_fit(y, x)
    for j in range(4):
        ref = sm.OLS(y[:, j], x).fit()
        np.testing.assert_allclose(fit.beta[:, j], ref.params, rtol=1e-12)
        np.testing.assert_allclose(fit.resid[:, j], ref.resid, rtol=1e-10, atol=1e-14)
        one = ols_fit(y[:, j], x)
        np.testing.assert_allclose(one.beta, fit.beta[:, j], rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(fit.xtx_inv, np.linalg.inv(x.T @ x), rtol=1e-12)
    np.testing.assert_allclose(fit.hat_diag, sm.OLS(y[:, 0], x).fit().get_influence().hat_matrix_diag,
                               rtol=1e-12)
    assert (fit.n, fit.k) == (50, 4)


def test_rank_deficient_and_short_designs_fail() -> None:
    x = np.column_stack([np.ones(10), np.arange(10.0), 2.0 * np.arange(10.0)])
    with pytest.raises(InputError, match="rank deficient"):
        ols_fit(np.ones(10), x)
    with pytest.raises(InputError, match="3 complete observations for 3 regressors"):
        ols_fit(np.ones(3), x[:3])


def test_full_rank_qr_names_the_caller_problem() -> None:
    z = np.column_stack([np.ones(6), np.arange(6.0)])
    q, r = full_rank_qr(z)
    np.testing.assert_allclose(q @ r, z, atol=1e-13)
    with pytest.raises(InputError, match="characteristics are collinear"):
        full_rank_qr(np.column_stack([z, z[:, 1] * 3.0]), "the characteristics are collinear")
