"""Multiple-testing adjustments of p-values: Holm (1979) and Benjamini-Hochberg (1995).

A study reports many p-values at once (every firm-event, window and test of the battery). Holm controls
the family-wise error rate under any dependence; Benjamini-Hochberg controls the false discovery rate
under independence or positive regression dependence (PRDS), which is the usual situation for
announcement returns moved by one common market. Both are computed on whole arrays (one sort per family)
and give exactly ``statsmodels.stats.multitest.multipletests(p, method='holm'|'fdr_bh')[1]``.

Missing p-values: a NaN is not a test. It stays NaN and does not count in the family size m (what
``multipletests`` applied to the non-missing entries gives). Ties get equal adjusted values, whatever
their order.

Per firm-event and window (:func:`adjusted_car_pvalues`): one family per window, the firm-events of
that window (the CAR t-test's p of each). This one function gives the appendix table's ``p_holm`` and
``p_bh``, the ``car`` SQL view's columns and every ``carousel study --format json`` record's, so the
three can never disagree. The family is always the whole study's window: ``carousel study --deal X``
adjusts over every firm-event of the window, not only the ones it prints (a filtered record equals the
full run's, as its CAR does).

Example:
    >>> import numpy as np
    >>> from analysis.multiplicity import adjust_pvalues
    >>> adjust_pvalues(np.array([0.01, 0.04, np.nan, 0.03]), "holm").round(4).tolist()
    [0.03, 0.06, nan, 0.06]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from core.errors import InputError

#: The columns :func:`adjusted_car_pvalues` adds (the ``car`` view and the JSON records carry them).
ADJUSTED_COLUMNS = ("p_holm", "p_bh")

Method = Literal["holm", "fdr_bh"]


def adjust_pvalues(pvalues: np.ndarray, method: Method = "holm", *, axis: int = -1) -> np.ndarray:
    """Adjusted p-values, each family along ``axis`` (default: the last; a 1-D array is one family).

    ``method``: ``'holm'`` (step-down Bonferroni, FWER) or ``'fdr_bh'`` (Benjamini-Hochberg step-up,
    FDR). NaN entries stay NaN and are left out of the family. Values outside [0, 1] raise InputError.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim == 0:
        raise InputError("p-values must be an array (one family per axis), got a scalar", field="pvalues")
    finite = ~np.isnan(p)
    if np.any(np.isinf(p)) or np.any((p[finite] < 0) | (p[finite] > 1)):
        raise InputError("p-values must lie in [0, 1] (NaN for a missing test)", field="pvalues")
    if method not in ("holm", "fdr_bh"):
        raise InputError(f"unknown method {method!r}; use 'holm' or 'fdr_bh'", field="method")
    moved = np.moveaxis(p, axis, -1)
    if moved.shape[-1] == 0:
        return p.copy()
    order = np.argsort(moved, axis=-1, kind="stable")  # NaN sorts last
    ps = np.take_along_axis(moved, order, axis=-1)
    m = (~np.isnan(ps)).sum(axis=-1, keepdims=True).astype(float)  # family size per row
    rank = np.arange(1, ps.shape[-1] + 1, dtype=float)  # 1-based position in the sorted family
    if method == "holm":
        # p_(j) * (m - j + 1), made monotone by a running maximum (fmax ignores the trailing NaNs).
        raw = ps * (m - rank + 1.0)
        adj = np.fmax.accumulate(raw, axis=-1)
    else:
        # p_(j) * m / j, made monotone by a running minimum from the largest p down.
        raw = ps * m / rank
        adj = np.flip(np.fmin.accumulate(np.flip(raw, axis=-1), axis=-1), axis=-1)
    adj = np.where(np.isnan(ps), np.nan, np.minimum(adj, 1.0))
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return np.moveaxis(out, -1, axis)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (FWER), NaN kept."""
    return adjust_pvalues(pvalues, "holm")


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) step-up adjusted p-values (FDR), NaN kept."""
    return adjust_pvalues(pvalues, "fdr_bh")


def adjusted_car_pvalues(car: pl.DataFrame) -> pl.DataFrame:
    """``car`` (same rows, same order) with ``p_holm`` and ``p_bh``: the Holm and Benjamini-Hochberg
    adjusted p-values of the firm-events' CAR t-tests, one family per ``window`` (a null p stays null
    and is not counted in its family). Columns needed: ``window`` and ``p``."""
    missing = [c for c in ("window", "p") if c not in car.columns]
    if missing:
        raise InputError(f"the CAR frame lacks column(s): {', '.join(missing)}", field="car")
    base = car.drop([c for c in ADJUSTED_COLUMNS if c in car.columns])
    n = base.height
    holm_p, bh_p = np.full(n, np.nan), np.full(n, np.nan)
    if n:
        p = base["p"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        windows = base["window"].cast(pl.String).to_numpy()
        # A few windows: one vectorised adjustment per family (rows put back in place).
        for w in np.unique(windows):
            rows = np.flatnonzero(windows == w)
            holm_p[rows] = adjust_pvalues(p[rows], "holm")
            bh_p[rows] = adjust_pvalues(p[rows], "fdr_bh")
    return base.with_columns(pl.Series("p_holm", holm_p).fill_nan(None), pl.Series("p_bh", bh_p).fill_nan(None))
