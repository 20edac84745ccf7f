"""Cross-sectional significance tests over an :class:`analysis.panel.ARPanel`.

Every function is a whole-array NumPy computation (no per-event Python loop) and takes either a single
relative event day (``day=d``) or a CAR window (``window=(a, b)``, inclusive). Each returns a
:class:`TestStat` with arrays ``statistic``, ``p_value`` and ``n`` (one entry per requested day, or one
entry for a window).

Formula conventions follow ``panel.conventions`` unless a ``conventions`` argument overrides them; the
differences between the textbook set and the estudy2 set are documented in ``docs/conventions.md``.

Why the estudy2 variants exist at all: users check our numbers against R's estudy2, so the conformance
path must reproduce its (sometimes non-textbook) arithmetic exactly; the textbook set is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.coefficients import two_sided_p
from analysis.conventions import Conventions
from analysis.panel import ARPanel
from analysis.prediction_error import car_variance_factor
from analysis.window import EventWindow

__all__ = [
    "TestStat",
    "TestBattery",
    "aar",
    "cross_sectional_t",
    "patell_z",
    "bmp_t",
    "cross_correlation",
    "kolari_pynnonen_t",
    "corrado_rank",
    "generalized_sign",
    "skewness_adjusted_t",
    "brown_warner_1985",
    "lamb",
    "battery",
    "TESTS",
]


@dataclass(frozen=True)
class TestStat:
    """One test's statistic(s): arrays aligned with the requested days (or length 1 for a window)."""

    __test__ = False  # not a pytest class

    test: str
    label: list[str]
    statistic: np.ndarray
    p_value: np.ndarray
    n: np.ndarray


# ---------------------------------------------------------------------------------------- helpers


def _label(a: int, b: int) -> str:
    return EventWindow(a, b).label


def _conv(panel: ARPanel, conventions: Conventions | None) -> Conventions:
    return conventions if conventions is not None else panel.conventions


def _cols(panel: ARPanel, day: int | None, window: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
    """Event-day columns (of ``panel.ar``) of the requested days and whether they form a CAR window."""
    if (day is None) == (window is None):
        raise ValueError("give exactly one of day= or window=")
    if window is not None:
        a, b = int(window[0]), int(window[1])
        if a > b:
            raise ValueError(f"window {window} is empty")
        return panel.window_cols(a, b), True
    return np.array([panel.day_index(int(day))]), False  # type: ignore[arg-type]


def _labels(panel: ARPanel, cols: np.ndarray, is_window: bool) -> list[str]:
    rd = panel.event_days[cols]
    if is_window:
        return [_label(int(rd[0]), int(rd[-1]))]
    return [_label(int(d), int(d)) for d in rd]


def _car(panel: ARPanel, cols: np.ndarray) -> np.ndarray:
    """(N,) CAR over ``cols``; NaN unless every day of the window has an AR (as the engine does)."""
    return panel.ar[:, cols].sum(axis=1)


def _car_var_factor(panel: ARPanel, cols: np.ndarray) -> np.ndarray:
    """(N,) L + 1'X_w (X'X)^-1 X_w'1: Var(CAR) / sigma^2 including the cross-day covariance term."""
    s = panel.x_event[:, cols, :].sum(axis=1)  # (N, k)
    # n_params is per row when groups with different models are pooled (analysis.pooled); their
    # designs are zero-padded to one width, and zero regressors add nothing to the quadratic form.
    planes = [s[:, j, None] for j in range(s.shape[1])] if np.any(np.asarray(panel.n_params)) else []
    return car_variance_factor(panel.xtx_inv, planes, float(cols.shape[0]))[:, 0]


def _standardized(panel: ARPanel, cols: np.ndarray, is_window: bool) -> np.ndarray:
    """Standardized ARs (N, D) for single days or the standardized CAR (N, 1) for a window."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if is_window:
            car = _car(panel, cols)
            return (car / (panel.sigma * np.sqrt(_car_var_factor(panel, cols))))[:, None]
        return panel.ar[:, cols] / (panel.sigma[:, None] * np.sqrt(panel.pe_factor[:, cols]))


def _values(panel: ARPanel, cols: np.ndarray, is_window: bool) -> np.ndarray:
    """Raw ARs (N, D) on single days or the CAR (N, 1) of a window."""
    return _car(panel, cols)[:, None] if is_window else panel.ar[:, cols]


def _t_cols(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise one-sample t on NaN-masked data: (t, two-sided p with n-1 df, n)."""
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.where(ok, x, 0.0)
        mean = xm.sum(axis=0) / n
        dev = np.where(ok, x - mean, 0.0)
        sd = np.sqrt((dev**2).sum(axis=0) / (n - 1))
        t = mean / (sd / np.sqrt(n))
        t = np.where(n >= 2, t, np.nan)
        p = two_sided_p(t, np.maximum(n - 1, 1))
    return t, np.where(np.isfinite(t), p, np.nan), n


def _p_norm(z: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(z), two_sided_p(z, None), np.nan)


def _est_block(panel: ARPanel) -> np.ndarray:
    """(N, L_est) estimation residuals, column-major: each day's cross-sectional sum is then numpy's
    pairwise sum down a contiguous column (more accurate than a running sum over rows, and the order
    in which the published statistics were computed; a row-major copy changes the last bit)."""
    return np.asfortranarray(panel.estimation_residuals())


# ---------------------------------------------------------------------------------------- tests


def aar(panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None) -> TestStat:
    """AAR on a day (or CAAR over a window) with no test: statistic is the mean, p_value NaN."""
    cols, is_w = _cols(panel, day, window)
    x = _values(panel, cols, is_w)
    n = np.isfinite(x).sum(axis=0)
    with np.errstate(invalid="ignore"):
        m = np.nansum(x, axis=0) / n
    return TestStat("aar" if not is_w else "caar", _labels(panel, cols, is_w), m, np.full(m.shape, np.nan), n)


def cross_sectional_t(
    panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None
) -> TestStat:
    """Cross-sectional t: mean AR (CAR) over its cross-sectional standard error, Student t(n-1)."""
    cols, is_w = _cols(panel, day, window)
    t, p, n = _t_cols(_values(panel, cols, is_w))
    return TestStat("cross_sectional_t", _labels(panel, cols, is_w), t, p, n)


def patell_z(
    panel: ARPanel,
    *,
    day: int | None = None,
    window: tuple[int, int] | None = None,
    conventions: Conventions | None = None,
) -> TestStat:
    """Patell (1976) Z: sum of standardized ARs (or CARs) over sqrt(sum (M_i-k)/(M_i-k-2)).

    The window form standardizes each CAR with its full variance sigma^2 (L + 1'X_w(X'X)^-1X_w'1).
    Textbook: the denominator sums over the firm-events present on the day; estudy2 sums over every
    firm in the panel (it divides a row *sum* computed as mean times the number of columns).
    """
    conv = _conv(panel, conventions)
    cols, is_w = _cols(panel, day, window)
    sar = _standardized(panel, cols, is_w)
    ok = np.isfinite(sar)
    # k per row when groups with different models are pooled (analysis.pooled); 0 counts as 1.
    k = np.maximum(np.asarray(panel.n_params), 1)
    m = panel.n_est.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # (M-k)/(M-k-2) is the variance of a t(M-k) standardized AR; estudy2's (M-2)/(M-4) is k = 2.
        var_i = (m - k) / (m - k - 2)
        n = ok.sum(axis=0)
        if conv.patell_over == "all_firms":
            denom = np.full(sar.shape[1], np.sqrt(var_i.sum()))
            num = np.nanmean(sar, axis=0) * sar.shape[0]
        else:
            denom = np.sqrt((np.where(ok, var_i[:, None], 0.0)).sum(axis=0))
            num = np.where(ok, sar, 0.0).sum(axis=0)
        z = np.where(n > 0, num / denom, np.nan)
    return TestStat("patell_z", _labels(panel, cols, is_w), z, _p_norm(z), n)


def bmp_t(
    panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None
) -> TestStat:
    """Boehmer-Musumeci-Poulsen (1991): cross-sectional t of the standardized ARs (CARs), t(n-1)."""
    cols, is_w = _cols(panel, day, window)
    t, p, n = _t_cols(_standardized(panel, cols, is_w))
    return TestStat("bmp_t", _labels(panel, cols, is_w), t, p, n)


def _pair_correlations(panel: ARPanel, min_overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) uncentred pairwise correlations of the estimation residuals with the diagonal and pairs
    sharing fewer than ``min_overlap`` days zeroed, and the (N, N) 0/1 matrix of the pairs that count."""
    e = _est_block(panel)
    ok = np.isfinite(e)
    ez = np.where(ok, e, 0.0)
    okf = ok.astype(float)
    cross = ez @ ez.T
    sq = (ez**2) @ okf.T  # sq[i, j] = sum of e_i^2 over days where j is valid
    overlap = okf @ okf.T
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cross / np.sqrt(sq * sq.T)
    use = (overlap >= min_overlap) & np.isfinite(r)
    np.fill_diagonal(use, False)
    return np.where(use, r, 0.0), use.astype(float)


def cross_correlation(panel: ARPanel, min_overlap: int = 30, rows: np.ndarray | None = None) -> float:
    """Average pairwise correlation r-bar of the estimation-window residuals (Kolari-Pynnonen 2010).

    Residuals are aligned on relative days, so events sharing a t0 (one announcement moving several
    firms) are aligned on calendar days; pairs with fewer than ``min_overlap`` common observations are
    left out. Pairwise-complete, uncentred (OLS residuals with an intercept have mean zero). O(N^2 L).
    ``rows`` (bool, N) restricts the pairs to those firm-events (a test's own; default all).
    """
    if panel.n < 2:
        return 0.0
    r, use = _pair_correlations(panel, min_overlap)
    w = np.ones(panel.n) if rows is None else rows.astype(float)
    cnt = w @ use @ w
    return float((w @ r @ w) / cnt) if cnt > 0 else 0.0


def kolari_pynnonen_t(
    panel: ARPanel,
    *,
    day: int | None = None,
    window: tuple[int, int] | None = None,
    r_bar: float | None = None,
) -> TestStat:
    """Kolari-Pynnonen (2010) adjusted BMP: t_BMP * sqrt((1 - r) / (1 + (n - 1) r)), t(n-1).

    r-bar is taken over the test's own firm-events (those with a standardized AR on the day, or a full
    window CAR), as n is: a day or window where some firm-events are missing uses their pairs only.
    ``r_bar`` overrides it (one value for every column)."""
    b = bmp_t(panel, day=day, window=window)
    if r_bar is None:
        cols, is_w = _cols(panel, day, window)
        inc = np.isfinite(_standardized(panel, cols, is_w)).astype(float)  # (N, D)
        if panel.n < 2:
            r = np.zeros(inc.shape[1])
        else:
            rm, use = _pair_correlations(panel, 30)
            num = np.einsum("ic,ij,jc->c", inc, rm, inc)
            cnt = np.einsum("ic,ij,jc->c", inc, use, inc)
            r = np.where(cnt > 0, num / np.where(cnt > 0, cnt, 1.0), 0.0)
    else:
        r = np.full(b.statistic.shape, float(r_bar))
    n = b.n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = np.sqrt((1.0 - r) / (1.0 + (n - 1.0) * r))
        t = b.statistic * adj
        p = np.where(np.isfinite(t), two_sided_p(t, np.maximum(n - 1, 1)), np.nan)
    return TestStat("kolari_pynnonen_t", b.label, t, p, b.n)


def _ranks(panel: ARPanel) -> tuple[np.ndarray, np.ndarray]:
    """Per-firm average ranks (1-based, ties averaged) of the ARs over estimation + event days; NaN kept."""
    full = panel.full_ar()
    return average_ranks(full), np.isfinite(full).sum(axis=1)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Row-wise ranks, 1-based, ties given their average rank, NaN left NaN and not counted: exactly
    ``scipy.stats.rankdata(x, axis=1, nan_policy="omit")``, without importing scipy.stats.

    A tie group at sorted positions ``a..b`` (0-based) gets ``(a + b + 2) / 2``, the mean of ranks
    ``a+1..b+1``: small integers and halves, so the same bits as scipy's ``0.5 * (count + count + 1)``."""
    x = np.asarray(x, dtype=float)  # (N, T)
    n_cols = x.shape[1]
    order = np.argsort(x, axis=1, kind="stable")  # NaN sort last
    v = np.take_along_axis(x, order, axis=1)
    pos = np.broadcast_to(np.arange(n_cols), v.shape)
    starts = np.ones(v.shape, dtype=bool)
    starts[:, 1:] = v[:, 1:] != v[:, :-1]  # NaN != NaN: never tied
    ends = np.ones(v.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, n_cols - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty_like(v)
    np.put_along_axis(ranks, order, (first + last + 2) * 0.5, axis=1)
    ranks[np.isnan(x)] = np.nan
    return ranks


def corrado_rank(
    panel: ARPanel,
    *,
    day: int | None = None,
    window: tuple[int, int] | None = None,
    conventions: Conventions | None = None,
) -> TestStat:
    """Corrado (1989) rank test on a day; Cowan (1992) / Campbell-Wasley form for a window.

    Ranks run over each firm-event's valid ARs on the whole panel grid (estimation and event days).
    Textbook: U_it = K_it - (M_i + 1)/2, S = sqrt(1/T sum_t Ubar_t^2) over T = mean_i M_i
    (the grid length with no missing data), day statistic Ubar_0 / S, window statistic sqrt(L) * mean_w(Ubar_t) / S.
    estudy2: cross-sectional sums are taken as row means times the number of firms (inflated on days with
    missing firms), and the window test
    uses the raw mean event rank minus the mean average rank (estudy2 ``car_rank_test``).
    """
    conv = _conv(panel, conventions)
    cols, is_w = _cols(panel, day, window)
    g = panel.event_cols[cols]  # the requested days' columns on the whole grid, where ranks live
    ranks, m = _ranks(panel)
    u = ranks - ((m + 1.0) / 2.0)[:, None]
    ok = np.isfinite(u)
    n_t = ok.sum(axis=0)
    N = panel.n
    with np.errstate(invalid="ignore", divide="ignore"):
        row_mean = np.where(ok, u, 0.0).sum(axis=0) / n_t
        if conv.rank_variant == "estudy2":
            row_sum = row_mean * N  # estudy2: rowMeans(...) * ncol(...)
            ubar = row_sum / n_t
            s = np.sqrt(np.nansum(ubar**2) / np.mean(m))
            if is_w:
                r_ev = ranks[:, g]
                mean_rank = np.mean((m + 1.0) / 2.0)
                full_rm = np.nanmean(ranks, axis=0)
                s_w = np.sqrt(np.nansum((full_rm - mean_rank) ** 2) / np.mean(m))
                stat = np.array([np.sqrt(cols.shape[0]) * (np.nanmean(r_ev) - mean_rank) / s_w])
                n = np.array([int(np.isfinite(r_ev).all(axis=1).sum())])
            else:
                stat = ubar[g] / s
                n = n_t[g]
        else:
            has = n_t > 0
            ubar = np.where(has, row_mean, np.nan)
            # T = mean number of ranked observations per firm-event: the grid length when nothing is
            # missing (Corrado 1989), and the value that reproduces the textbook 0.8165955 of the README.
            s = np.sqrt(np.nansum(ubar**2) / np.mean(m))
            if is_w:
                # Only firm-events with a rank on every window day, as in every other window test (the
                # reported n is theirs): a firm with a gap would enter some days' means and not others.
                # S from the same firm-events too: the variance of a mean rank depends on how many firms
                # it averages, and S over all firms misstates it for the subset (a simulation with half
                # the firms missing one window day rejected 18.6% at the 5% level; 4.9% this way).
                full = np.isfinite(u[:, g]).all(axis=1)
                if full.any():
                    u_f = u[full]
                    ok_f = np.isfinite(u_f)
                    n_f = ok_f.sum(axis=0)
                    ubar_f = np.where(n_f > 0, np.where(ok_f, u_f, 0.0).sum(axis=0) / n_f, np.nan)
                    s_f = np.sqrt(np.nansum(ubar_f**2) / np.mean(m[full]))
                    stat = np.array([np.sqrt(cols.shape[0]) * np.mean(ubar_f[g]) / s_f])
                else:
                    stat = np.array([np.nan])
                n = np.array([int(full.sum())])
            else:
                stat = ubar[g] / s
                n = n_t[g]
    return TestStat("corrado_rank", _labels(panel, cols, is_w), stat, _p_norm(stat), n)


def generalized_sign(
    panel: ARPanel,
    *,
    day: int | None = None,
    window: tuple[int, int] | None = None,
    conventions: Conventions | None = None,
) -> TestStat:
    """Cowan (1992) generalized sign test: Z = (w - n p) / sqrt(n p (1 - p)).

    p is the expected share of positive ARs from the estimation window: the mean over firm-events of
    each one's share (Cowan; ``sign_phat='per_firm_mean'``) or the pooled share of all firm-days
    (estudy2). Some estudy2 source revisions put w (the number of positives) where n belongs in the
    denominator; the published vignette values use n, and so do we.
    """
    conv = _conv(panel, conventions)
    cols, is_w = _cols(panel, day, window)
    e = _est_block(panel)
    ok_e = np.isfinite(e)
    pos_e = ((e > 0) & ok_e).sum(axis=1).astype(float)
    n_e = ok_e.sum(axis=1).astype(float)
    x = _values(panel, cols, is_w)
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    # p-hat over the test's own firm-events (those with a value in the column), as n is.
    inc = ok.astype(float)  # (N, D)
    with np.errstate(invalid="ignore", divide="ignore"):
        if conv.sign_phat == "pooled":
            p = (pos_e @ inc) / (n_e @ inc)
        else:
            share = pos_e / n_e
            has = np.isfinite(share)[:, None] & ok
            p = np.where(has, share[:, None], 0.0).sum(axis=0) / has.sum(axis=0)
    w = ((x > 0) & ok).sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(n > 0, (w - n * p) / np.sqrt(n * p * (1.0 - p)), np.nan)
    return TestStat("generalized_sign", _labels(panel, cols, is_w), z, _p_norm(z), n)


def skewness_adjusted_t(
    panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None
) -> TestStat:
    """Hall (1992) skewness-adjusted t (Neuhierl-Wacker): sqrt(n)(S + g S^2/3 + g^2 S^3/27 + g/(6n)).

    S = mean / sd (ddof 1) and g = n / ((n-1)(n-2)) sum((x - mean)^3) / sd^3; p-value standard normal.
    """
    cols, is_w = _cols(panel, day, window)
    x = _values(panel, cols, is_w)
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, x, 0.0).sum(axis=0) / n
        dev = np.where(ok, x - mean, 0.0)
        sd = np.sqrt((dev**2).sum(axis=0) / (n - 1))
        s = mean / sd
        g = n / ((n - 1.0) * (n - 2.0)) * (dev**3).sum(axis=0) / sd**3
        t = np.sqrt(n) * (s + g * s**2 / 3.0 + g**2 * s**3 / 27.0 + g / (6.0 * n))
        t = np.where(n >= 3, t, np.nan)
    return TestStat("skewness_adjusted_t", _labels(panel, cols, is_w), t, _p_norm(t), n)


def _bw_sd(panel: ARPanel) -> float:
    """Time-series sd (ddof 1) of the daily cross-sectional mean estimation-window AR (Brown-Warner 1985)."""
    e = _est_block(panel)
    ok = np.isfinite(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        rm = np.where(ok, e, 0.0).sum(axis=0) / ok.sum(axis=0)
    return float(np.nanstd(rm[np.isfinite(rm)], ddof=1))


def _daily_combine(name: str, panel: ARPanel, cols: np.ndarray, is_w: bool, daily: np.ndarray,
                   n: np.ndarray) -> TestStat:
    """Days: the daily statistics; window: sum of daily statistics / sqrt(L) (estudy2 CAR form)."""
    if is_w:
        z = np.array([np.nansum(daily) / np.sqrt(cols.shape[0])])
        return TestStat(name, _labels(panel, cols, True), z, _p_norm(z), np.array([int(n.min())]))
    return TestStat(name, _labels(panel, cols, False), daily, _p_norm(daily), n)


def brown_warner_1985(
    panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None
) -> TestStat:
    """Brown-Warner (1985) crude-dependence test: AAR_t / sd of the estimation-window mean ARs.

    Window: the sum of the daily statistics over sqrt(L), as estudy2's ``car_brown_warner_1985`` does
    (equal to CAAR / (sqrt(L) sd) when no firm is missing). p-values standard normal.
    """
    cols, is_w = _cols(panel, day, window)
    x = panel.ar[:, cols]
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        daily = np.where(ok, x, 0.0).sum(axis=0) / n / _bw_sd(panel)
    return _daily_combine("brown_warner_1985", panel, cols, is_w, daily, n)


def lamb(
    panel: ARPanel, *, day: int | None = None, window: tuple[int, int] | None = None
) -> TestStat:
    """Lamb (1995) test as estudy2 computes it: AAR_t / (sd_BW * sqrt(1 + 1/mean(M) + q_t)).

    q_t is the market term of the prediction-error factor, (m_t - m-bar)^2 / SS_m, recovered from the
    panel as the cross-sectional mean of pe_factor_it - 1 - 1/M_i (exact for a model with an intercept
    and one common regressor). Window: sum of daily statistics over sqrt(L).
    """
    cols, is_w = _cols(panel, day, window)
    x = panel.ar[:, cols]
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    m = panel.n_est.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.nanmean(panel.pe_factor[:, cols] - 1.0 - (1.0 / m)[:, None], axis=0)
        factor = np.sqrt(1.0 + 1.0 / m.mean() + q)
        daily = np.where(ok, x, 0.0).sum(axis=0) / n / (_bw_sd(panel) * factor)
    return _daily_combine("lamb", panel, cols, is_w, daily, n)


TESTS: dict[str, Callable[..., TestStat]] = {
    "cross_sectional_t": cross_sectional_t,
    "patell_z": patell_z,
    "bmp_t": bmp_t,
    "kolari_pynnonen_t": kolari_pynnonen_t,
    "corrado_rank": corrado_rank,
    "generalized_sign": generalized_sign,
    "skewness_adjusted_t": skewness_adjusted_t,
    "brown_warner_1985": brown_warner_1985,
    "lamb": lamb,
}
_CONV_TESTS = {"patell_z", "corrado_rank", "generalized_sign"}


@dataclass(frozen=True)
class TestBattery:
    """All tests for one CAR window (and, optionally, each of its days) as a Polars frame."""

    __test__ = False

    frame: pl.DataFrame
    conventions: str

    def to_frame(self) -> pl.DataFrame:
        return self.frame

    def stat(self, test: str, label: str) -> float:
        row = self.frame.filter((pl.col("test") == test) & (pl.col("window") == label))
        if row.height != 1:
            raise KeyError(f"no single row for {test} {label}")
        return float(row["statistic"][0])


def battery(
    panel: ARPanel,
    window: tuple[int, int],
    *,
    daily: bool = True,
    conventions: Conventions | None = None,
) -> TestBattery:
    """Every test for the CAR ``window`` and (``daily=True``) for each day of it.

    Rows: test, window (label like ``[-1,+1]``; single days are ``[d,d]``), kind ('day'|'window'),
    statistic, p_value, n; sorted by kind, window position and test name (deterministic).
    """
    conv = _conv(panel, conventions)
    a, b = int(window[0]), int(window[1])
    res: list[TestStat] = []
    days = list(range(a, b + 1)) if daily else []
    for name, fn in TESTS.items():
        kw = {"conventions": conv} if name in _CONV_TESTS else {}
        res.append(fn(panel, window=(a, b), **kw))
        for d in days:
            res.append(fn(panel, day=d, **kw))
    rows_t, rows_w, rows_k, rows_s, rows_p, rows_n, rows_o = [], [], [], [], [], [], []
    for r in res:
        kind = "window" if len(r.label) == 1 and (r.label[0] == _label(a, b)) and a != b else "day"
        for i, lab in enumerate(r.label):
            rows_t.append(r.test)
            rows_w.append(lab)
            rows_k.append(kind)
            rows_s.append(float(r.statistic[i]))
            rows_p.append(float(r.p_value[i]))
            rows_n.append(int(r.n[i]))
            rows_o.append(0 if kind == "window" else 1 + EventWindow.parse(lab).start - a)
    frame = (
        pl.DataFrame(
            {
                "test": rows_t,
                "window": rows_w,
                "kind": rows_k,
                "statistic": rows_s,
                "p_value": rows_p,
                "n": rows_n,
                "_o": rows_o,
            },
            schema={
                "test": pl.Utf8,
                "window": pl.Utf8,
                "kind": pl.Utf8,
                "statistic": pl.Float64,
                "p_value": pl.Float64,
                "n": pl.Int64,
                "_o": pl.Int64,
            },
        )
        .unique(subset=["test", "window"], keep="first", maintain_order=True)
        .sort("_o", "test")
        .drop("_o")
        .with_columns(pl.col("statistic").fill_nan(None), pl.col("p_value").fill_nan(None))
    )
    return TestBattery(frame=frame, conventions=conv.name)
