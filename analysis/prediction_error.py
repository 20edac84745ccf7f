"""The prediction-error variance of abnormal returns and CARs: one home for sigma^2 (L + s'As).

For a normal-return model fitted by OLS on the estimation window, A = (X'X)^-1 (or the estudy2
variant, see :mod:`analysis.conventions`). The abnormal return on an event day t with regressors x_t
and the CAR over a window W of L days have::

    Var(AR_t)  = sigma^2 (1 + x_t' A x_t)
    Var(CAR_W) = sigma^2 (L + s' A s),     s = X_W' 1 (the regressors summed over the window)

The second contains the cross-day covariances x_t' A x_u (t != u) that a sum of daily variances
omits. The engine (per window), the significance tests (standardized CARs) and the CAR-path figure
(each prefix of the window) all call :func:`car_variance_factor`; the daily factor is the one-day case.

Regressors come as k *planes* (one array per regressor, all the same shape, ``None`` for the
intercept's ones) so that the batch engine never materialises an (N, L, k) array.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Plane = np.ndarray | None


def quad_form(a: np.ndarray, x: Sequence[np.ndarray]) -> np.ndarray:
    """x' A x for every element of the planes: sum_ij A_ij x_i x_j, with ``a`` of shape (n, k, k)
    and each plane (n, c) (or broadcastable to it); returns (n, c). A must be symmetric."""
    k = len(x)
    out = np.zeros(np.broadcast_shapes((a.shape[0], 1), *(p.shape for p in x)))
    for i in range(k):
        out += a[:, i, i, None] * x[i] * x[i]
        for j in range(i + 1, k):
            out += 2.0 * a[:, i, j, None] * x[i] * x[j]
    return out


def day_sums(a: np.ndarray) -> np.ndarray:
    """(n,) sums of an (n, d) array's rows, added day by day from the first column.

    Why not ``a.sum(axis=1)``: numpy adds the columns of a multi-row slice one at a time but sums a
    single contiguous row pairwise, so a firm-event alone in its chunk would get different last bits
    than in a larger chunk. Column by column, every row gets the same bits whatever the chunking."""
    out = a[:, 0].copy() if a.shape[1] else np.zeros(a.shape[0])
    for j in range(1, a.shape[1]):
        out += a[:, j]
    return out


def window_sums(planes: Sequence[Plane], cols: np.ndarray) -> list[np.ndarray]:
    """s = X_W' 1 as planes of shape (n, 1): each regressor summed over the window's columns."""
    n_days = float(cols.shape[0])
    out = []
    for p in planes:
        if p is None:
            out.append(np.full((1, 1), n_days))
        else:
            out.append(day_sums(p[:, cols])[:, None])
    return out


def car_variance_factor(
    a: np.ndarray, s: Sequence[np.ndarray], length: float | np.ndarray
) -> np.ndarray:
    """Var(CAR) / sigma^2 = L + s' A s.

    ``a``: (n, k, k); ``s``: k planes of regressor sums over the window (shape (n, c), ``c`` windows
    or prefixes); ``length``: L, a number or an array broadcastable to (n, c). With k = 0 (no
    estimated parameters, e.g. market-adjusted returns) the factor is L.
    """
    if len(s) == 0:
        return np.zeros((a.shape[0], 1)) + length
    return length + quad_form(a, s)


def ar_variance_factor(a: np.ndarray, x: Sequence[np.ndarray]) -> np.ndarray | float:
    """Var(AR_t) / sigma^2 = 1 + x_t' A x_t per day (planes (n, L)); 1 when there are no parameters."""
    if len(x) == 0:
        return 1.0
    return 1.0 + quad_form(a, x)
