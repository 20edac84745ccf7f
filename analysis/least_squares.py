"""Least squares by QR: the one OLS fit behind the cross-section, the MVRM system and calendar time.

Why QR and not the normal equations: event-day dummies, category dummies and near-constant regressors
make X'X poorly conditioned, and forming it squares the condition number. The fit checks the rank (a
tiny diagonal of R) so a collinear design fails with a message instead of returning noise, and it
keeps what the covariance estimators and the bootstraps downstream need: (X'X)^-1, the residuals and
the leverages h_ii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InputError


@dataclass(frozen=True)
class OLSArrays:
    """An OLS fit on (already weighted) arrays: what the covariance estimators and the bootstrap need.

    ``y`` may be one column (n,) or several (n, m) sharing the design; ``beta`` and ``resid`` follow.
    """

    y: np.ndarray
    X: np.ndarray
    beta: np.ndarray
    resid: np.ndarray
    xtx_inv: np.ndarray
    hat_diag: np.ndarray

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def k(self) -> int:
        return int(self.X.shape[1])


_RANK_TOL = 1e-10
_COLLINEAR = ("the design matrix is rank deficient (a regressor is constant, or a category or boolean "
              "is perfectly collinear with others among the complete rows)")


def full_rank_qr(X: np.ndarray, collinear: str = _COLLINEAR) -> tuple[np.ndarray, np.ndarray]:
    """Reduced QR of X, or InputError(``collinear``) when a diagonal of R is below 1e-10 of the largest
    (a column that is, to rounding, a linear combination of the others)."""
    q, r = np.linalg.qr(X)
    diag = np.abs(np.diag(r))
    if diag.min() <= diag.max() * _RANK_TOL:
        raise InputError(collinear)
    return q, r


def ols_fit(y: np.ndarray, X: np.ndarray) -> OLSArrays:
    """Least squares by QR (stable when dummies make X'X poorly conditioned); X must have full rank."""
    n, k = X.shape
    if n <= k:
        raise InputError(f"{n} complete observations for {k} regressors: need more observations than regressors")
    q, r = full_rank_qr(X)
    beta = np.linalg.solve(r, q.T @ y)
    r_inv = np.linalg.solve(r, np.eye(k))
    xtx_inv = r_inv @ r_inv.T
    resid = y - X @ beta
    hat_diag = np.einsum("ij,ij->i", q, q)
    return OLSArrays(y=y, X=X, beta=beta, resid=resid, xtx_inv=xtx_inv, hat_diag=hat_diag)
