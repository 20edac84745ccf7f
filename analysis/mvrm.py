"""Multivariate regression model (MVRM) for a cluster of firms sharing one event date.

Why: when several firms are hit on the same day (Stargate moved ORCL, 9984.T, MSFT, NVDA and ARM on
2025-01-22), their abnormal returns share that day's market-wide news, so they are cross-correlated and
the usual tests, which treat firm-events as independent, misstate the variance of any sum or average.
Binder (1985, 1998) writes the cluster as a system of seemingly unrelated regressions with event-day
dummies and tests hypotheses across equations with the full residual covariance.

Model, for firm j = 1..N on the common dates t = 1..T (estimation period plus event window)::

    R_jt = a_j + b_j R_mt + sum_{d in window} g_jd D_dt + e_jt,   Cov(e_t) = Sigma (N x N), iid over t

D_dt = 1 on event-window day d. All equations share the regressors X = [1, R_m, D] (k = 2 + L columns),
so SUR/GLS equals equation-by-equation OLS; the covariance of vec(B) is Sigma kron (X'X)^-1.
Sigma is estimated by E'E / (T - k) (linearmodels' ``debiased=True``). A firm's event effect is its
CAR over the window, CAR_j = sum_d g_jd = l'B e_j with l the indicator of the dummies.

Hypotheses, all of the form l'B M = 0 with M an N x p matrix:
(a) ``all_zero``: every firm's CAR is zero (M = I_N, p = N);
(b) ``sum_zero``: the firms' CARs sum to zero (M = 1_N, p = 1);
(c) ``equal``: the CARs are equal across firms (M = N x (N-1) contrasts, p = N - 1).

Wald statistic W = theta' V^-1 theta, theta = l'BM, V = (l'(X'X)^-1 l) M' Sigma M. Two forms:
- chi2: W ~ chi2(p) asymptotically;
- F: F = (nu - p + 1) / (nu p) W ~ F(p, nu - p + 1), nu = T - k. Because l'BM is a single row of
  coefficients, W is Hotelling's T^2 and this F is *exact* under iid normal errors (the small-sample
  choice; Binder's F = W/p with (p, N(T-k)) df is only approximate).

Hein and Westfall (2004) residual bootstrap, for small samples and fat tails: draw T whole date-rows
(N-vectors) with replacement from the estimation-period residual rows (the event rows' residuals are
identically zero under the dummies and are not drawn), so the cross-correlation of a date is kept; build
Y* = X B0 + E* with any B0 satisfying the null; refit; recompute W. Since W* depends on Y* only through
(X'X)^-1 X'E* and the residuals of E*, B0 drops out and W* is computed from E* directly (the null is
imposed exactly). p = (1 + #{W* >= W}) / (n_boot + 1). W is scale invariant, so the residuals need no
degrees-of-freedom rescaling. Size under t(4) noise (bench/bench_inference_size.py): 4.6-5.1% with 240
estimation days where the F form rejects 6.9-7.0% and chi2 7.4-7.9%; with 100 days 4.8-6.5% (F up to
8.7%). The bootstrap cannot reproduce tails heavier than those of the residuals it resamples.

Firms with their own regressors and days (:func:`fit_equations`, the report's route through
:func:`analysis.clustered.study_mvrm`): the study estimates 9984.T on SPY and SPY[-1] and each firm on its
own valid days, so the equations need not share X. Each is OLS on its own rows; CAR_j = w_j'y_j and
V = Sigma o W'W with Sigma = D R D (:class:`EquationsFit`), which is the MVRM above when X and the days
are common. The F form is then approximate; the bootstrap is the reference.

Calendars: relative days count trading days of the benchmark (SPY: NYSE sessions); a t0 that is not one
moves to the next (the engine's rule, :func:`analysis.grid.locate`).
A firm on another calendar (9984.T, Tokyo) enters only on the dates where *every* series of the cluster
and the benchmark has a return: the intersection. Its return on such a date runs from its own previous
session, so after a Tokyo-only session (a US holiday) the Tokyo-only day's move is left out, and a US
date that is a Tokyo holiday drops out of the sample for all firms. Window days lost this way are listed
in ``dropped_window_days`` and the CAR runs over the remaining window days.

Example:
    >>> from analysis.mvrm import mvrm
    >>> res = mvrm(returns, ["ORCL", "9984.T", "MSFT", "NVDA", "ARM"], date(2025, 1, 22),
    ...            window=(-1, 1), n_boot=999, rng=15)                        # doctest: +SKIP
    >>> res.wald                                # chi2, F and bootstrap p of (a), (b), (c)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from scipy import special

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from analysis.least_squares import ols_fit
from core.errors import InputError

HYPOTHESES = ("all_zero", "sum_zero", "equal")
#: Bootstrap draws are processed in blocks of this many to bound memory (block x T x N floats).
_BOOT_BLOCK = 500


@dataclass(frozen=True)
class ClusterData:
    """The aligned cluster on its dates t = 1..T (estimation rows and the event window's rows).

    Each firm j has its own regressors ``x[j]`` (T x k_j: the constant and its benchmark series, e.g.
    SPY and SPY[-1] for a Tokyo listing, as the study estimates it) and its own estimation rows
    ``use[:, j]`` (the days its regression uses); every firm has a return on every event row.
    """

    tickers: tuple[str, ...]
    dates: list[date]
    rel_days: np.ndarray
    y: np.ndarray
    market: np.ndarray
    is_event: np.ndarray
    dropped_window_days: tuple[int, ...]
    #: per firm: its regressors (T x k_j), NaN where a series has no value
    x: tuple[np.ndarray, ...] = ()
    #: per firm: the names of its regressor columns (``const``, benchmark names)
    regressors: tuple[tuple[str, ...], ...] = ()
    #: (T, N) bool: the estimation rows firm j's regression uses (event rows are False)
    use: np.ndarray | None = None
    #: the benchmark trading day the cluster's t0 was mapped to (the engine's rule: the next grid day)
    t0_grid: date | None = None

    def __post_init__(self) -> None:
        n = len(self.tickers)
        if not self.x:  # the common design [1, R_m] of the balanced cluster
            common = np.column_stack([np.ones(self.market.size), self.market])
            object.__setattr__(self, "x", tuple(common for _ in range(n)))
            object.__setattr__(self, "regressors", tuple(("const", "market") for _ in range(n)))
        if self.use is None:
            object.__setattr__(self, "use", np.repeat(~self.is_event[:, None], n, axis=1))


def align_cluster(
    returns: pl.DataFrame,
    tickers: Sequence[str],
    t0: date,
    *,
    benchmark: str = "SPY",
    estimation: tuple[int, int] = (-250, -11),
    window: tuple[int, int] = (-1, 1),
    exclude: Sequence[date] = (),
    lagged: Sequence[str] = (),
) -> ClusterData:
    """Returns of the cluster on the dates where all series have one (see the module docstring).

    ``t0`` is mapped to the benchmark's next trading day when it is not one (the engine's rule,
    :func:`analysis.grid.locate`). ``exclude``: dates to leave out of the estimation period (other
    announcements of the cluster's firms, as the engine masks other events); dates inside the event
    window are never excluded. ``lagged``: tickers whose design also holds the benchmark one trading day
    earlier (Dimson; the study's model for listings that close before New York opens, e.g. 9984.T).
    """
    from analysis.grid import locate

    tickers = tuple(tickers)
    if not tickers:
        raise InputError("the cluster needs at least one ticker", field="tickers")
    if len(set(tickers)) != len(tickers):
        raise InputError(f"a ticker appears twice in the cluster: {tickers}", field="tickers")
    if benchmark in tickers:
        raise InputError(f"the benchmark {benchmark} is also a cluster ticker", field="tickers")
    unknown_lag = sorted(set(lagged) - set(tickers))
    if unknown_lag:
        raise InputError(f"lagged ticker(s) not in the cluster: {', '.join(unknown_lag)}", field="lagged")
    for c in ("ticker", "date", "ret"):
        if c not in returns.columns:
            raise InputError("returns frame lacks a column", field=c)
    (e0, e1), (w0, w1) = estimation, window
    if e0 > e1 or w0 > w1:
        raise InputError(f"a window runs backwards: estimation {estimation}, event {window}",
                         field="window")
    if e1 >= w0:
        raise InputError(f"the estimation window {estimation} must end before the event window "
                         f"{window} starts", field="estimation")
    known = set(returns.get_column("ticker").unique().to_list())
    for t in (benchmark, *tickers):
        if t not in known:
            raise InputError(f"no returns for ticker {t!r}", field="ticker")
    # the lag is the benchmark's previous trading day (its grid), taken before any date drops out
    bench = (returns.filter(pl.col("ticker") == benchmark).select("date", pl.col("ret").alias("_m"))
             .drop_nulls().filter(pl.col("_m").is_finite()).sort("date")
             .with_columns(pl.col("_m").shift(1).alias("_m_lag")))
    bdates = bench.get_column("date")
    _, i0 = locate(pl.Series([t0], dtype=pl.Date), bdates.to_numpy().astype("datetime64[D]"))
    pos = int(i0[0])
    if pos >= bench.height:
        raise InputError(f"t0 {t0} is after the last trading day of the benchmark {benchmark}", field="t0")
    lo, hi = pos + e0, pos + w1
    if lo < 0 or hi >= bench.height:
        raise InputError(f"the benchmark {benchmark} has no trading day at relative day "
                         f"{e0 if lo < 0 else w1} around t0 {t0}", field="estimation" if lo < 0 else "window")
    span = bench.with_row_index("_i").with_columns(rel=pl.col("_i").cast(pl.Int64) - pos).filter(
        pl.col("rel").is_between(e0, e1) | pl.col("rel").is_between(w0, w1)
    )
    if lagged:
        span = span.drop_nulls("_m_lag")
    wide = (returns.filter(pl.col("ticker").is_in(tickers) & pl.col("ret").is_finite())
            .select("ticker", "date", "ret")
            .pivot(on="ticker", index="date", values="ret", aggregate_function=None))
    joined = (span.join(wide, on="date", how="inner").drop_nulls(list(tickers))
              .filter(~(pl.col("date").is_in(list(exclude)) & pl.col("rel").is_between(e0, e1)))
              .sort("date"))
    rel = joined.get_column("rel").to_numpy()
    is_event = (rel >= w0) & (rel <= w1)
    dropped = tuple(sorted(set(range(w0, w1 + 1)) - set(rel[is_event].tolist())))
    if not is_event.any():
        raise InputError(f"no event-window day {window} has a return for every ticker of {tickers}",
                         field="window")
    market = joined.get_column("_m").to_numpy().astype(float)
    ones = np.ones(market.size)
    lag = joined.get_column("_m_lag").to_numpy().astype(float)
    xs = tuple(np.column_stack([ones, market, lag]) if t in lagged else np.column_stack([ones, market])
               for t in tickers)
    names = tuple(("const", benchmark, f"{benchmark}[-1]") if t in lagged else ("const", benchmark)
                  for t in tickers)
    return ClusterData(
        tickers=tickers,
        dates=joined.get_column("date").to_list(),
        rel_days=rel,
        y=joined.select(tickers).to_numpy().astype(float),
        market=market,
        is_event=is_event,
        dropped_window_days=dropped,
        x=xs,
        regressors=names,
        t0_grid=bdates[pos],
    )


# ---------------------------------------------------------------------------------- pure maths


def design(market: np.ndarray, is_event: np.ndarray) -> np.ndarray:
    """X = [1, R_m, one dummy per event row] (T x (2 + L))."""
    ev = np.flatnonzero(is_event)
    dummies = np.zeros((market.size, ev.size))
    dummies[ev, np.arange(ev.size)] = 1.0
    return np.column_stack([np.ones(market.size), market, dummies])


def hypothesis_matrices(n: int) -> dict[str, np.ndarray]:
    """The M matrices (N x p) of the three cross-firm hypotheses on the CAR vector."""
    out = {"all_zero": np.eye(n), "sum_zero": np.ones((n, 1))}
    if n >= 2:
        # e_1 - e_j, j = 2..N: any basis of the contrasts gives the same W (W is invariant to M -> MA).
        c = np.zeros((n, n - 1))
        c[0, :] = 1.0
        c[np.arange(1, n), np.arange(n - 1)] = -1.0
        out["equal"] = c
    return out


def wald_stats(coef: np.ndarray, sigma: np.ndarray, c: float, lvec: np.ndarray,
               m: np.ndarray) -> np.ndarray:
    """W = theta' V^-1 theta for theta = l'BM, V = c M'SM; broadcasts over leading axes of coef/sigma.

    coef: (..., k, N), sigma: (..., N, N), c = l'(X'X)^-1 l.
    """
    theta = np.einsum("k,...kn,np->...p", lvec, coef, m)
    v = c * np.einsum("np,...nq,qr->...pr", m, sigma, m)
    sol = np.linalg.solve(v, theta[..., None])[..., 0]
    return np.einsum("...p,...p->...", theta, sol)


@dataclass(frozen=True)
class MVRMFit:
    """Equation-by-equation OLS of the system: coefficients (k x N), Sigma, (X'X)^-1, residuals, nu."""

    coef: np.ndarray
    sigma: np.ndarray
    xtx_inv: np.ndarray
    resid: np.ndarray
    nu: int
    lvec: np.ndarray


def fit_system(y: np.ndarray, market: np.ndarray, is_event: np.ndarray) -> MVRMFit:
    """OLS of every column of y on the shared design; Sigma = E'E / (T - k)."""
    x = design(market, is_event)
    t, k = x.shape
    nu = t - k
    if nu < y.shape[1]:
        raise InputError(f"{t} common dates leave {nu} residual degrees of freedom for "
                         f"{y.shape[1]} firms: Sigma cannot be estimated (widen the estimation window)",
                         field="estimation")
    ols = ols_fit(y, x)
    lvec = np.r_[0.0, 0.0, np.ones(k - 2)]
    return MVRMFit(coef=ols.beta, sigma=ols.resid.T @ ols.resid / nu, xtx_inv=ols.xtx_inv,
                   resid=ols.resid, nu=nu, lvec=lvec)


def bootstrap_wald(fit: MVRMFit, x: np.ndarray, is_event: np.ndarray, ms: dict[str, np.ndarray],
                   n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hein-Westfall draws of W under the null for each hypothesis (same resampled rows for all)."""
    pool = fit.resid[~is_event]  # event rows have zero residuals by construction
    t = x.shape[0]
    hat = fit.xtx_inv @ x.T  # (k, T)
    c = float(fit.lvec @ fit.xtx_inv @ fit.lvec)
    out: dict[str, list[np.ndarray]] = {h: [] for h in ms}
    done = 0
    while done < n_boot:
        b = min(_BOOT_BLOCK, n_boot - done)
        e_star = pool[rng.integers(0, pool.shape[0], size=(b, t))]  # (b, T, N) whole date-rows
        g = np.einsum("kt,btn->bkn", hat, e_star)
        r_star = e_star - np.einsum("tk,bkn->btn", x, g)
        s_star = np.einsum("btn,btm->bnm", r_star, r_star) / fit.nu
        for h, m in ms.items():
            out[h].append(wald_stats(g, s_star, c, fit.lvec, m))
        done += b
    return {h: np.concatenate(v) for h, v in out.items()}


@dataclass(frozen=True)
class EquationsFit:
    """The system fitted equation by equation, each firm on its own regressors and estimation rows.

    Why a second form beside :class:`MVRMFit`: the study estimates a Tokyo listing on SPY and SPY[-1]
    and every firm on its own valid days (other announcements masked per ticker, its own holidays), so
    the equations of a cluster need not share X. Each CAR is then linear in its firm's returns,
    CAR_j = w_j'y_j with w_j = 1 on the event rows and -X_j (X_j'X_j)^-1 s_j on its estimation rows
    (s_j = the sum of its event-row regressors), so Cov(CAR_i, CAR_j) = Sigma_ij w_i'w_j under
    Cov(e_it, e_jt) = Sigma_ij on a common date: V = Sigma o G (elementwise), G = W'W. Sigma = D R D with
    D_j = sqrt(SSR_j / (M_j - k_j)) (the study's own sigma, so each CAR's se is the car view's) and R
    the residual correlation over the estimation rows every firm uses (a correlation matrix, so Sigma
    and, by the Schur product theorem, V stay positive semi-definite). With one design and one sample
    for all firms, V = (l'(X'X)^-1 l) E'E/(T - k): Binder's MVRM exactly (linearmodels' SUR).
    """

    car: np.ndarray  # (N,)
    weights: np.ndarray  # (T, N) w_j, zero off firm j's rows
    resid: np.ndarray  # (T, N) estimation residuals, zero off firm j's estimation rows
    sigma: np.ndarray  # (N, N) D R D
    gram: np.ndarray  # (N, N) W'W
    beta: tuple[np.ndarray, ...]  # per firm (k_j,)
    xtx_inv: tuple[np.ndarray, ...]  # per firm (k_j, k_j)
    hat: tuple[np.ndarray, ...]  # per firm (k_j, M_j): (X_j'X_j)^-1 X_j' on its estimation rows
    dof: np.ndarray  # (N,) M_j - k_j
    common: np.ndarray  # (T,) bool: estimation rows every firm uses
    nu: int

    @property
    def cov(self) -> np.ndarray:
        """Cov of the CAR vector, Sigma o G."""
        return self.sigma * self.gram


def fit_equations(data: ClusterData) -> EquationsFit:
    """OLS of each firm's returns on its regressors over its estimation rows; CARs over the event rows.

    nu (the F form's denominator degrees of freedom) = common estimation rows - max_j k_j: T - k of the
    MVRM when all firms share one design and sample (then the F is exact, Hotelling); otherwise an
    approximation, since Sigma's elements come from residuals of different projections.
    """
    y, ev = data.y, data.is_event
    t, n = y.shape
    assert data.use is not None
    weights, resid = np.zeros((t, n)), np.zeros((t, n))
    car, dof, ks = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
    betas, invs, hats = [], [], []
    for j in range(n):  # one regression per firm of the cluster (a handful), whole columns each
        est = data.use[:, j] & ~ev
        xe = data.x[j][est]
        ols = ols_fit(y[est, j], xe)
        s = data.x[j][ev].sum(axis=0)
        weights[ev, j] = 1.0
        weights[est, j] = -(xe @ (ols.xtx_inv @ s))
        resid[est, j] = ols.resid
        car[j] = y[ev, j].sum() - s @ ols.beta
        dof[j] = est.sum() - xe.shape[1]
        ks[j] = xe.shape[1]
        betas.append(ols.beta)
        invs.append(ols.xtx_inv)
        hats.append(ols.xtx_inv @ xe.T)
    common = data.use.all(axis=1) & ~ev
    nu = int(common.sum()) - int(ks.max())
    if nu < n:
        raise InputError(f"{int(common.sum())} common estimation dates leave {nu} residual degrees of "
                         f"freedom for {n} firms: Sigma cannot be estimated (widen the estimation window)",
                         field="estimation")
    sigma = _sigma(resid, common, dof)
    return EquationsFit(car=car, weights=weights, resid=resid, sigma=sigma, gram=weights.T @ weights,
                        beta=tuple(betas), xtx_inv=tuple(invs), hat=tuple(hats), dof=dof, common=common,
                        nu=nu)


def _sigma(resid: np.ndarray, common: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """D R D over the last two axes: D from each firm's SSR / dof, R over the common rows."""
    d = np.sqrt(np.einsum("...tn,...tn->...n", resid, resid) / dof)
    rc = resid[..., common, :]
    cross = np.einsum("...tn,...tm->...nm", rc, rc)
    norm = np.sqrt(np.einsum("...nn->...n", cross))
    return cross / (norm[..., :, None] * norm[..., None, :]) * (d[..., :, None] * d[..., None, :])


def bootstrap_equations(fit: EquationsFit, data: ClusterData, ms: dict[str, np.ndarray], n_boot: int,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hein-Westfall draws of W under the null, equation by equation (same resampled rows for all).

    Whole date-rows of the residuals are drawn from the estimation rows every firm uses, one per row of
    the cluster; firm j reads the draws on its own rows. CAR*_j = w_j'e*_j and the residuals of e*_j on
    its estimation rows are all W* needs (the null's B0 drops out, as in :func:`bootstrap_wald`).
    """
    assert data.use is not None
    pool = fit.resid[fit.common]
    t, n = data.y.shape
    ests = [data.use[:, j] & ~data.is_event for j in range(n)]
    out: dict[str, list[np.ndarray]] = {h: [] for h in ms}
    done = 0
    while done < n_boot:
        b = min(_BOOT_BLOCK, n_boot - done)
        e_star = pool[rng.integers(0, pool.shape[0], size=(b, t))]  # (b, T, N) whole date-rows
        theta = np.einsum("btn,tn->bn", e_star, fit.weights)
        r_star = np.zeros_like(e_star)
        for j in range(n):  # per firm: its own projection (a handful of firms)
            e = e_star[:, ests[j], j]
            xe = data.x[j][ests[j]]
            r_star[:, ests[j], j] = e - (e @ fit.hat[j].T) @ xe.T
        v = _sigma(r_star, fit.common, fit.dof) * fit.gram
        for h, m in ms.items():
            out[h].append(wald_stats(theta[:, None, :], v, 1.0, np.ones(1), m))
        done += b
    return {h: np.concatenate(v) for h, v in out.items()}


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MVRMResult(CoefficientResults):
    """Per-firm CARs of the cluster and the joint Wald tests (frame ``wald``)."""

    data: ClusterData
    fit: EquationsFit
    table: CoefficientTable
    wald: pl.DataFrame
    benchmark: str
    t0: date
    estimation: tuple[int, int]
    window: tuple[int, int]
    n_boot: int

    def equation_params(self) -> pl.DataFrame:
        """Every coefficient of every equation: ticker, term (const, benchmarks, d<rel day>), coef, se.

        The event-day dummy of day d is that day's abnormal return, se sigma_j sqrt(1 + x_d'(X'X)^-1 x_d).
        """
        d, f = self.data, self.fit
        ev = np.flatnonzero(d.is_event)
        frames = []
        for j, t in enumerate(d.tickers):
            s2 = float(f.sigma[j, j])
            xd = d.x[j][ev]
            ar = d.y[ev, j] - xd @ f.beta[j]
            pe = 1.0 + np.einsum("ik,kl,il->i", xd, f.xtx_inv[j], xd)
            names = [*d.regressors[j], *[f"d{int(r):+d}" for r in d.rel_days[ev]]]
            frames.append(pl.DataFrame({
                "ticker": [t] * len(names), "term": names,
                "coef": np.r_[f.beta[j], ar], "se": np.sqrt(s2 * np.r_[np.diag(f.xtx_inv[j]), pe]),
            }))
        return pl.concat(frames)

    def _header(self) -> list[str]:
        d = self.data
        lagged = [t for t, r in zip(d.tickers, d.regressors, strict=True) if len(r) > 2]
        return [
            f"tickers={','.join(d.tickers)} benchmark={self.benchmark} t0={self.t0}"
            + (f" (trading day {d.t0_grid})" if d.t0_grid is not None and d.t0_grid != self.t0 else "")
            + f" window=[{self.window[0]},{self.window[1]}] estimation=[{self.estimation[0]},"
            f"{self.estimation[1]}]",
            f"common dates T={len(d.dates)} (estimation {int((~d.is_event).sum())}, event "
            f"{int(d.is_event.sum())}), residual df nu={self.fit.nu}, bootstrap draws={self.n_boot}"
            + (f", window days without a common return: {list(d.dropped_window_days)}"
               if d.dropped_window_days else "")
            + (f", lagged benchmark (Dimson) for {','.join(lagged)}" if lagged else ""),
        ]

    def summary(self) -> str:
        return render_text("MVRM (SUR with event-day dummies), CAR per firm", self._header(),
                           self.table, extra=[("Wald tests (chi2 asymptotic, F exact Hotelling, "
                                               "bootstrap Hein-Westfall)", self.wald)])

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        note = "; ".join(
            f"{r['hypothesis']}: W={r['chi2']:.3f} (p={r['p_chi2']:.4f}), F({r['df_num']},"
            f"{r['df_den']})={r['F']:.3f} (p={r['p_F']:.4f}), bootstrap p={r['p_boot']:.4f}"
            for r in self.wald.iter_rows(named=True)
        )
        return render_latex(self.table, [note], caption=caption, label=label)


def mvrm(
    returns: pl.DataFrame,
    tickers: Sequence[str],
    t0: date,
    *,
    benchmark: str = "SPY",
    estimation: tuple[int, int] = (-250, -11),
    window: tuple[int, int] = (-1, 1),
    n_boot: int = 999,
    rng: np.random.Generator | int = 0,
    exclude: Sequence[date] = (),
    lagged: Sequence[str] = (),
) -> MVRMResult:
    """Fit the MVRM to a cluster sharing t0 and run the three Wald tests (module docstring).

    ``returns``: ``market.returns.compute_returns`` output (ticker, date, ret, ...). ``estimation`` and
    ``window`` are in trading days of the benchmark relative to ``t0``. ``n_boot`` = 0 skips the
    bootstrap (p_boot NaN). ``rng``: a Generator or a seed for ``numpy.random.default_rng``.
    ``exclude``: estimation-period dates to leave out (e.g. other announcements of these firms).
    ``lagged``: tickers estimated with the benchmark and its one-day lag (Dimson), as the study does.
    """
    data = align_cluster(returns, tickers, t0, benchmark=benchmark, estimation=estimation,
                         window=window, exclude=exclude, lagged=lagged)
    return mvrm_on(data, t0=t0, benchmark=benchmark, estimation=estimation, window=window, n_boot=n_boot,
                   rng=rng)


def mvrm_on(
    data: ClusterData,
    *,
    t0: date,
    benchmark: str,
    estimation: tuple[int, int],
    window: tuple[int, int],
    n_boot: int = 999,
    rng: np.random.Generator | int = 0,
) -> MVRMResult:
    """The MVRM of an aligned cluster (:func:`align_cluster`, or a study's own samples and designs)."""
    if n_boot < 0:
        raise InputError("n_boot must be >= 0", field="n_boot")
    fit = fit_equations(data)
    n = len(data.tickers)
    car = fit.car
    # The CARs and their mean are linear in the firms' returns: Cov = L V L', L = [I_N; 1'/N], so
    # cov_params() carries the cross-firm correlation that makes the joint tests necessary.
    lmat = np.vstack([np.eye(n), np.full((1, n), 1.0 / n)])
    label = f"CAR[{window[0]:+d},{window[1]:+d}]"
    table = CoefficientTable(names=(*[f"{t} {label}" for t in data.tickers], f"mean {label}"),
                             estimates=np.r_[car, car.mean()], cov=lmat @ fit.cov @ lmat.T,
                             df=float(fit.nu))
    ms = hypothesis_matrices(n)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    boot = bootstrap_equations(fit, data, ms, n_boot, gen) if n_boot else {}
    rows = []
    for h in HYPOTHESES:
        if h not in ms:
            continue
        p = ms[h].shape[1]
        w = float(wald_stats(car[None, :], fit.cov, 1.0, np.ones(1), ms[h]))
        df_den = fit.nu - p + 1
        f = (fit.nu - p + 1) / (fit.nu * p) * w
        p_boot = float((1 + np.sum(boot[h] >= w)) / (n_boot + 1)) if n_boot else float("nan")
        rows.append({"hypothesis": h, "chi2": w, "df": p, "p_chi2": float(special.chdtrc(p, w)),
                     "F": f, "df_num": p, "df_den": df_den,
                     "p_F": float(special.fdtrc(p, df_den, f)), "p_boot": p_boot})
    return MVRMResult(data=data, fit=fit, table=table, wald=pl.DataFrame(rows), benchmark=benchmark,
                      t0=t0, estimation=estimation, window=window, n_boot=n_boot)
