"""Multiple-testing adjustments of p-values: Holm (1979) and Benjamini-Hochberg (1995).

A study reports many p-values at once (every firm-event, window and test of the battery). Holm controls
the family-wise error rate under any dependence; Benjamini-Hochberg controls the false discovery rate
under independence or positive regression dependence (PRDS), which is the usual situation for
announcement returns moved by one common market. Both are computed on whole arrays (one sort per family)
and give exactly ``statsmodels.stats.multitest.multipletests(p, method='holm'|'fdr_bh')[1]``.

Missing p-values: a NaN is not a test. It stays NaN and does not count in the family size m (what
``multipletests`` applied to the non-missing entries gives). Ties get equal adjusted values, whatever
their order.

Example:
    >>> import numpy as np
    >>> from analysis.multiplicity import adjust_pvalues
    >>> adjust_pvalues(np.array([0.01, 0.04, np.nan, 0.03]), "holm").round(4).tolist()
    [0.03, 0.06, nan, 0.06]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from core.errors import InputError

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
