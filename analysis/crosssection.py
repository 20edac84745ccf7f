"""Second-stage cross-sectional regression of CARs on firm-event characteristics.

Do announcements on a round-trip, or by firms more exposed to OpenAI, move prices more than others of
the same size and kind? The question is a regression of each firm-event's CAR on its characteristics,
``car ~ log_amount + on_round_trip + C(deal_type)``, estimated by OLS or by WLS with weights
1/se(CAR)^2 (precise CARs count more). The CARs of one announcement day share the market's news and
one firm appears in many events, so the covariance can be clustered one way (announcement date) or two
ways (date and firm; Cameron, Gelbach and Miller 2011). With few clusters (a few dozen dates at most) the
cluster-robust t is oversized; the restricted wild cluster bootstrap (WCR; Cameron, Gelbach and Miller
2008; Roodman, MacKinnon, Nielsen and Webb 2019) gives p-values that hold their size.

Conventions are statsmodels' (``OLS(...).fit(cov_type=...)``), so a reader can reproduce every number:

* ``nonrobust``: s^2 (X'X)^-1 with s^2 = SSR/(n-k); t(n-k).
* ``HC0``..``HC3``: White's sandwich with residuals scaled by 1, n/(n-k), 1/(1-h), 1/(1-h)^2; t(n-k).
* ``cluster`` (CRV1): sum of cluster score outer products times G/(G-1) (n-1)/(n-k); two-way is
  V_1 + V_2 - V_12 with each term's own correction (statsmodels' ``cov_cluster_2groups``); t(G-1),
  G the smaller number of clusters.
* WLS runs OLS on sqrt(w)-scaled data (as statsmodels' ``wexog``/``wresid`` do); R^2 is centred on
  the weighted mean.

The functional core is :func:`analysis.least_squares.ols_fit` (arrays in, estimates out) and :func:`wild_cluster_bootstrap`;
:func:`fit_crosssection` is the entry point on a Polars frame with a formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from analysis.least_squares import OLSArrays, ols_fit
from core.errors import InputError

CovType = Literal["nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"]
_COV_TYPES: tuple[str, ...] = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")
BootWeights = Literal["rademacher", "webb"]


# ---------------------------------------------------------------------------------------- core maths


def _group_codes(g: np.ndarray) -> tuple[np.ndarray, int]:
    _, codes = np.unique(g, return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1


def _cluster_meat(scores: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    sums = np.zeros((n_groups, scores.shape[1]))
    np.add.at(sums, codes, scores)
    return sums.T @ sums


def covariance(fit: OLSArrays, cov_type: str, groups: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The parameter covariance under ``cov_type`` with statsmodels' small-sample factors."""
    n, k = fit.n, fit.k
    bread = fit.xtx_inv
    if cov_type == "nonrobust":
        return bread * (fit.resid @ fit.resid / (n - k))
    if cov_type in ("HC0", "HC1", "HC2", "HC3"):
        if cov_type in ("HC2", "HC3") and np.any(fit.hat_diag > 1.0 - 1e-8):
            # h_ii = 1 (a category with one observation): its residual is 0 and u^2/(1-h)^k is 0/0;
            # statsmodels returns whatever the rounding gives, so refuse instead of printing noise.
            n_one = int(np.sum(fit.hat_diag > 1.0 - 1e-8))
            raise InputError(
                f"{cov_type} is undefined: {n_one} observation(s) have leverage 1 (a category or "
                "dummy with a single observation is fitted exactly); merge rare categories, or use "
                "HC1 or a cluster covariance",
                field="cov_type",
            )
        u2 = fit.resid**2
        if cov_type == "HC1":
            u2 = u2 * n / (n - k)
        elif cov_type == "HC2":
            u2 = u2 / (1.0 - fit.hat_diag)
        elif cov_type == "HC3":
            u2 = u2 / (1.0 - fit.hat_diag) ** 2
        meat = (fit.X * u2[:, None]).T @ fit.X
        return bread @ meat @ bread
    if cov_type == "cluster":
        scores = fit.X * fit.resid[:, None]

        def one_way(g: np.ndarray) -> np.ndarray:
            codes, n_g = _group_codes(g)
            if n_g < 2:
                raise InputError("clustering needs at least two clusters among the complete rows")
            factor = n_g / (n_g - 1.0) * (n - 1.0) / (n - k)
            return factor * (bread @ _cluster_meat(scores, codes, n_g) @ bread)

        if len(groups) == 1:
            return one_way(groups[0])
        if len(groups) == 2:
            c1, _ = _group_codes(groups[0])
            c2, n2 = _group_codes(groups[1])
            both = c1 * n2 + c2
            return one_way(groups[0]) + one_way(groups[1]) - one_way(both)
        raise InputError("cluster covariance takes one or two cluster variables")
    raise InputError(f"unknown cov_type {cov_type!r}; use one of {', '.join(_COV_TYPES)}", field="cov_type")


@dataclass(frozen=True)
class WildBootstrapResult:
    """A restricted wild cluster bootstrap test of one coefficient (H0: coefficient = null).

    ``t_boot`` holds every bootstrap t statistic (all 2^G of them when ``enumerated``), so a reader can
    recompute the p-value under any tie convention. ``pvalue`` is symmetric: the share of draws with
    |t*| >= |t| (ties, such as the identity draw under full enumeration, count as at least as extreme,
    so the test is never anti-conservative on account of them).
    """

    term: str
    null: float
    tstat: float
    pvalue: float
    t_boot: np.ndarray
    reps: int
    weights: str
    enumerated: bool
    n_clusters: int
    cluster: str

    def summary(self) -> str:
        how = f"full enumeration of 2^{self.n_clusters}" if self.enumerated else f"{self.reps} draws"
        return (
            f"Wild cluster bootstrap (WCR, CRV1, {self.weights} weights, {how}) clustered by "
            f"{self.cluster} (G={self.n_clusters}): H0 {self.term} = {self.null:g}, "
            f"t = {self.tstat:.4f}, bootstrap p = {self.pvalue:.4f}"
        )


def _rademacher_enumeration(n_groups: int) -> np.ndarray:
    """All 2^G sign vectors as a G x 2^G matrix (bit g of column b gives cluster g's sign)."""
    b = np.arange(2**n_groups, dtype=np.int64)
    bits = (b[None, :] >> np.arange(n_groups, dtype=np.int64)[:, None]) & 1
    return (2.0 * bits - 1.0)[::-1]


_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def bootstrap_weights(
    kind: str, n_groups: int, reps: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """G x B weights; Rademacher is enumerated exactly when 2^G <= reps (no Monte-Carlo error)."""
    if kind == "rademacher":
        if 2**n_groups <= reps:
            return _rademacher_enumeration(n_groups), True
        return rng.integers(0, 2, size=(n_groups, reps)) * 2.0 - 1.0, False
    if kind == "webb":
        return _WEBB[rng.integers(0, 6, size=(n_groups, reps))], False
    raise InputError(f"unknown bootstrap weights {kind!r}; use 'rademacher' or 'webb'", field="weights")


def wild_cluster_bootstrap_t(
    y: np.ndarray,
    X: np.ndarray,
    cluster: np.ndarray,
    j: int,
    v: np.ndarray,
    null: float = 0.0,
) -> tuple[float, np.ndarray]:
    """The CRV1 t statistic of coefficient ``j`` and its WCR bootstrap draws for weights ``v`` (G x B).

    Restricted residuals u~ come from least squares under H0 (beta_j = null). A draw is
    y* = X beta~ + u~ * v_g, so beta*_j - null = sum_g v_g s_g with s_g = sum_{i in g} a_i u~_i
    (a = row j of (X'X)^-1 X'), and cluster g's score for coefficient j is s_g v_g - (H v)_g with
    H[g, h] = a_g' X_g (X'X)^-1 X_h' u~_h (Roodman et al. 2019, "fast and wild"). Everything is a
    G x G or G x B matrix product: no per-draw regression.
    """
    fit = ols_fit(y, X)
    n, k = fit.n, fit.k
    codes, n_g = _group_codes(cluster)
    if v.shape[0] != n_g:
        raise InputError(f"bootstrap weights have {v.shape[0]} rows for {n_g} clusters")
    ssc = n_g / (n_g - 1.0) * (n - 1.0) / (n - k)
    xtx_inv = fit.xtx_inv
    # t statistic of the unrestricted fit, one-way CRV1
    cov = covariance(fit, "cluster", (codes,))
    tstat = float((fit.beta[j] - null) / np.sqrt(cov[j, j]))
    # restricted estimate: beta~ = beta^ - (X'X)^-1 e_j (beta^_j - null) / [(X'X)^-1]_jj
    beta_r = fit.beta - xtx_inv[:, j] * (fit.beta[j] - null) / xtx_inv[j, j]
    u_r = y - X @ beta_r
    a = X @ xtx_inv[:, j]  # row j of (X'X)^-1 X'
    d = np.zeros((n, n_g))
    d[np.arange(n), codes] = 1.0
    s = d.T @ (a * u_r)  # G
    p_mat = d.T @ (a[:, None] * X)  # G x k: a_g' X_g
    q_mat = xtx_inv @ ((X * u_r[:, None]).T @ d)  # k x G: (X'X)^-1 X_h' u~_h
    h = p_mat @ q_mat  # G x G
    t_boot = np.empty(v.shape[1])
    step = max(1, 2_000_000 // max(n_g, 1))
    for start in range(0, v.shape[1], step):  # chunks bound memory (G x chunk), not a per-draw loop
        vb = v[:, start : start + step]
        numer = s @ vb
        scores = s[:, None] * vb - h @ vb
        t_boot[start : start + step] = numer / np.sqrt(ssc * np.sum(scores**2, axis=0))
    return tstat, t_boot


def bootstrap_pvalue(tstat: float, t_boot: np.ndarray) -> float:
    """Symmetric p-value: share of |t*| >= |t|, with |t*| within 1e-9 (relative) of |t| a tie."""
    thr = abs(tstat) * (1.0 - 1e-9)
    return float(np.mean(np.abs(t_boot) >= thr))


# -------------------------------------------------------------------------------------- the frame API


@dataclass(frozen=True)
class CrossSectionResult(CoefficientResults):
    """A fitted cross-sectional regression of CARs (statsmodels-like accessors, Polars frames)."""

    formula: str
    method: str
    cov_type: str
    cluster: tuple[str, ...]
    table: CoefficientTable
    nobs: int
    n_dropped: int
    dropped_by: dict[str, int]
    df_model: float
    df_resid: float
    rsquared: float
    rsquared_adj: float
    n_clusters: tuple[int, ...]
    fit_arrays: OLSArrays
    cluster_values: dict[str, np.ndarray]
    #: each dropped row named (its event_id, else "row i", 1-based) with the columns it misses: a reader
    #: sees which firm-events left the fit and why (an unknown OpenAI share, an undisclosed amount)
    dropped_rows: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def df_inference(self) -> float:
        """Degrees of freedom of the t reference distribution (n-k, or G-1 when clustered)."""
        assert self.table.df is not None
        return self.table.df

    def _notes(self) -> list[str]:
        notes = [
            f"Covariance: {self._cov_label()}; t reference with {self.df_inference:g} df.",
        ]
        if self.n_dropped:
            detail = ", ".join(f"{c}: {m}" for c, m in self.dropped_by.items() if m)
            notes.append(
                f"{self.n_dropped} row(s) dropped for missing values ({detail}; a row can miss several)."
            )
            if self.dropped_rows:
                notes.append("Dropped: " + "; ".join(f"{r} ({', '.join(c)})" for r, c in self.dropped_rows) + ".")
        else:
            notes.append("No rows dropped for missing values.")
        return notes

    def _cov_label(self) -> str:
        if self.cov_type != "cluster":
            return self.cov_type
        parts = " and ".join(f"{c} (G={g})" for c, g in zip(self.cluster, self.n_clusters, strict=True))
        way = "two-way (CGM 2011)" if len(self.cluster) == 2 else "one-way"
        return f"cluster-robust CRV1, {way}, by {parts}"

    def summary(self) -> str:
        header = [
            f"Dep. formula: {self.formula}",
            f"Method: {self.method}   No. observations: {self.nobs}   Df residuals: {self.df_resid:g}   "
            f"Df model: {self.df_model:g}",
            f"R-squared: {self.rsquared:.4f}   Adj. R-squared: {self.rsquared_adj:.4f}",
        ]
        return render_text("Cross-sectional regression of CARs", header, self.table, self._notes())

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        notes = [
            f"{self.method}, n = {self.nobs}, R-squared = {self.rsquared:.3f}.",
            *self._notes(),
        ]
        return render_latex(self.table, notes, caption=caption, label=label)

    def wild_bootstrap(
        self,
        term: str,
        *,
        cluster: str | None = None,
        weights: BootWeights = "webb",
        reps: int = 9999,
        seed: int | np.random.Generator = 0,
        null: float = 0.0,
    ) -> WildBootstrapResult:
        """Restricted wild cluster bootstrap p-value for H0: ``term`` = ``null``.

        ``cluster`` defaults to the fit's first cluster variable. Rademacher weights with 2^G <= reps
        are enumerated exactly; with fewer than about 12 clusters Rademacher has too few distinct
        draws, so Webb's six-point weights are the default (Webb 2014). Seeded, so reproducible.

        >>> res.wild_bootstrap("on_round_trip", cluster="t0", reps=9999, seed=1).pvalue  # doctest: +SKIP
        """
        if term not in self.table.names:
            raise InputError(f"unknown term {term!r}; terms are {', '.join(self.table.names)}", field="term")
        name = cluster or (self.cluster[0] if self.cluster else None)
        if name is None:
            raise InputError("the wild cluster bootstrap needs a cluster variable", field="cluster")
        if name not in self.cluster_values:
            raise InputError(
                f"cluster variable {name!r} was not kept by the fit; pass it in fit_crosssection(keep=...)",
                field="cluster",
            )
        if reps < 1:
            raise InputError(f"reps must be positive, got {reps}", field="reps")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        g = self.cluster_values[name]
        _, n_g = _group_codes(g)
        if n_g < 2:
            raise InputError("the wild cluster bootstrap needs at least two clusters", field="cluster")
        v, enumerated = bootstrap_weights(weights, n_g, reps, rng)
        j = self.table.names.index(term)
        tstat, t_boot = wild_cluster_bootstrap_t(self.fit_arrays.y, self.fit_arrays.X, g, j, v, null)
        return WildBootstrapResult(
            term=term,
            null=null,
            tstat=tstat,
            pvalue=bootstrap_pvalue(tstat, t_boot),
            t_boot=t_boot,
            reps=int(v.shape[1]),
            weights=weights,
            enumerated=enumerated,
            n_clusters=n_g,
            cluster=name,
        )


def _design(
    data: pl.DataFrame, formula: str, extra: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str], pl.DataFrame, int, dict[str, int],
           tuple[tuple[str, tuple[str, ...]], ...]]:
    from formulaic import Formula

    try:
        parsed = Formula(formula)
        needed = sorted(parsed.required_variables)
    except Exception as exc:  # formulaic raises several parser error types
        raise InputError(f"cannot parse formula {formula!r}: {exc}", field="formula") from exc
    if not hasattr(parsed, "lhs"):
        raise InputError(f"formula {formula!r} needs a left-hand side (e.g. 'car ~ x')", field="formula")
    cols = list(dict.fromkeys([*needed, *extra]))
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise InputError(f"column(s) not in the frame: {', '.join(missing)}", field=missing[0])
    # Decimal amounts (the ledger's amount_usd) would reach pandas as Python objects, which formulaic
    # reads as categories: make them floats first.
    sub = data.select(cols).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    # NaN in a float column is a missing value too (a CAR that could not be computed)
    null_masks = {
        c: (sub[c].is_null() | sub[c].is_nan()) if sub[c].dtype.is_float() else sub[c].is_null()
        for c in cols
    }
    dropped_by = {c: int(m.sum()) for c, m in null_masks.items()}
    any_missing = pl.Series([False] * sub.height)
    for m in null_masks.values():
        any_missing = any_missing | m
    complete = sub.filter(~any_missing)
    n_dropped = sub.height - complete.height
    label = (data["event_id"].cast(pl.String) if "event_id" in data.columns
             else pl.select(pl.format("row {}", pl.int_range(1, sub.height + 1)))[:, 0])
    misses = pl.DataFrame(null_masks).select(
        pl.concat_list([pl.when(pl.col(c)).then(pl.lit(c)) for c in cols]).list.drop_nulls().alias("m"))
    dropped_rows = tuple(
        (str(r), tuple(m)) for r, m in zip(label.filter(any_missing).to_list(),
                                           misses["m"].filter(any_missing).to_list(), strict=True))
    if complete.height == 0:
        raise InputError("no complete rows: every row misses a value the formula or the weights need")
    try:
        mm = parsed.get_model_matrix(complete.to_pandas(), na_action="raise")
    except Exception as exc:
        raise InputError(f"cannot build the design for {formula!r}: {exc}", field="formula") from exc
    y = np.asarray(mm.lhs, dtype=float)
    if y.ndim == 2:
        if y.shape[1] != 1:
            raise InputError("the left-hand side must be one numeric column", field="formula")
        y = y[:, 0]
    X = np.asarray(mm.rhs, dtype=float)
    names = [str(c) for c in mm.rhs.columns]
    return y, X, names, complete, n_dropped, dropped_by, dropped_rows


def fit_crosssection(
    data: pl.DataFrame,
    formula: str,
    *,
    se: str | None = None,
    cov_type: CovType = "HC3",
    cluster: str | Sequence[str] | None = None,
    keep: Sequence[str] = (),
) -> CrossSectionResult:
    """Regress CARs on firm-event characteristics (OLS, or WLS with weights 1/se^2).

    ``data`` is one row per firm-event; ``formula`` a formulaic/patsy formula over its columns
    (``C(x)`` for categories; booleans enter as 0/1 dummies named ``x[T.True]``). ``se`` names the
    column of CAR standard errors for WLS. ``cov_type`` is ``nonrobust``, ``HC0``-``HC3`` (default HC3,
    the best-behaved in samples of a few dozen) or ``cluster`` with ``cluster`` one column name or
    two (two-way). Columns in ``keep`` are carried along for a later ``wild_bootstrap(cluster=...)``.
    Rows missing any needed value are dropped, counted and named (event_id) in the summary.

    Example:

    >>> import polars as pl
    >>> from analysis.crosssection import fit_crosssection
    >>> res = fit_crosssection(frame, "car ~ log_amount + on_round_trip + C(deal_type)",
    ...                        se="se", cov_type="cluster", cluster=["t0", "ticker"])  # doctest: +SKIP
    >>> print(res.summary())  # doctest: +SKIP
    >>> res.wild_bootstrap("on_round_trip", cluster="t0", seed=1).pvalue  # doctest: +SKIP
    """
    if cov_type not in _COV_TYPES:
        raise InputError(f"unknown cov_type {cov_type!r}; use one of {', '.join(_COV_TYPES)}", field="cov_type")
    clusters: tuple[str, ...] = (cluster,) if isinstance(cluster, str) else tuple(cluster or ())
    if cov_type == "cluster" and len(clusters) not in (1, 2):
        raise InputError("cov_type='cluster' needs cluster= one or two column names", field="cluster")
    if cov_type != "cluster" and clusters:
        raise InputError(f"cluster= given but cov_type is {cov_type!r}; use cov_type='cluster'", field="cov_type")
    extra = [*([se] if se else []), *clusters, *keep]
    y, X, names, complete, n_dropped, dropped_by, dropped_rows = _design(data, formula, extra)
    w: np.ndarray | None = None
    if se is not None:
        s = complete[se].cast(pl.Float64).to_numpy()
        if np.any(s <= 0) or not np.all(np.isfinite(s)):
            raise InputError(f"column {se!r} must hold positive finite standard errors", field=se)
        w = 1.0 / s**2
        sw = np.sqrt(w)
        y_w, X_w = y * sw, X * sw[:, None]
    else:
        y_w, X_w = y, X
    fit = ols_fit(y_w, X_w)
    groups = [complete[c].to_numpy() for c in clusters]
    cov = covariance(fit, cov_type, groups)
    n, k = fit.n, fit.k
    n_clusters = tuple(_group_codes(g)[1] for g in groups)
    df_resid = float(n - k)
    df_inf = float(min(n_clusters) - 1) if cov_type == "cluster" else df_resid
    has_const = bool(np.any(np.all(X[0:1, :] == X, axis=0) & (X[0] != 0)))
    ssr = float(fit.resid @ fit.resid)
    if has_const:
        ybar = float(np.average(y, weights=w))
        tss = float(np.sum((w if w is not None else 1.0) * (y - ybar) ** 2))
    else:
        tss = float(y_w @ y_w)
    rsq = 1.0 - ssr / tss
    df_model = float(k - 1 if has_const else k)
    rsq_adj = 1.0 - (n - (1 if has_const else 0)) / df_resid * (1.0 - rsq)
    keep_cols = list(dict.fromkeys([*clusters, *keep]))
    return CrossSectionResult(
        formula=formula,
        method="WLS (w = 1/se^2)" if se is not None else "OLS",
        cov_type=cov_type,
        cluster=clusters,
        table=CoefficientTable(names=tuple(names), estimates=fit.beta, cov=cov, df=df_inf),
        nobs=n,
        n_dropped=n_dropped,
        dropped_by=dropped_by,
        df_model=df_model,
        df_resid=df_resid,
        rsquared=rsq,
        rsquared_adj=rsq_adj,
        n_clusters=n_clusters,
        fit_arrays=fit,
        cluster_values={c: complete[c].to_numpy() for c in keep_cols},
        dropped_rows=dropped_rows,
    )
