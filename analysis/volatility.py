"""Abnormal volatility: the squared-abnormal-return variance ratio, and a GARCH(1,1) market model.

Why two routes. A deal can move a stock's risk rather than (or as well as) its level. (a) The
variance ratio asks whether the event-window abnormal returns of an ordinary market model are larger
than the estimation window says they should be. (b) The GARCH(1,1) market model asks a different
question: is the event-window return abnormal *given* the volatility regime the stock was in (a
leak or a sector sell-off raises conditional volatility for days; a constant-variance model then
over-rejects). Both are documented in docs/conventions.md.

(a) Variance ratio (per firm-event i and window W of L days, on an :class:`ARPanel`)::

    SAR_it = AR_it / (sigma_i sqrt(pe_it))       (prediction-error standardised, as Patell)
    V_iW   = (1/L) sum_{t in W} SAR_it^2

H0: the event-window abnormal return variance equals the estimation-window variance. Under iid
normal errors each SAR_it^2 is the square of a t(M_i - k) variable, and V_iW is referred to
F(L, M_i - k) (exact for L = 1; for L > 1 the days share the estimation error of the fitted line, a
term of order 1/M_i that the F ignores). Pooled over the N firm-events: Q = sum_i L_i V_iW, referred
to chi2(sum_i L_i) (sigma treated as known; firm-events independent).

(b) GARCH(1,1) market model (``arch``: ``arch_model(y, x=m, mean='LS', vol='GARCH')``, normal
quasi-likelihood), fitted per firm-event on the estimation window::

    r_t = c + b m_t + e_t,   e_t = s_t z_t,   s_t^2 = omega + alpha e_{t-1}^2 + beta s_{t-1}^2

Event days: AR_t = r_t - c - b m_t, and s_t is the one-step forecast filtered forward from the last
estimation day with the estimation parameters and the realised ARs of the days in between (each day's
variance uses information up to the day before; a missing return contributes its expectation s_t^2).
SAR_t = AR_t / s_t; CAR_W = sum AR_t with se sqrt(sum s_t^2) (z, normal p; the mean parameters'
estimation error is ignored, as in the GARCH event-study literature). The test battery runs on the
GARCH-standardised residuals and ARs (unit variance under the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.special import chdtrc, fdtrc, ndtr

from analysis.conventions import TEXTBOOK, Conventions
from analysis.models.garch import GARCH_PARAMS, GarchMarketModel
from analysis.panel import ARPanel
from analysis.results import EventStudyResult
from analysis.window import DEFAULT_WINDOWS, window_label
from core.errors import InputError

#: arch is fitted on returns in percent (its optimiser's scale); reported parameters are in decimals.
_SCALE = 100.0


# --------------------------------------------------------------------------- (a) variance ratio


@dataclass(frozen=True)
class VarianceRatioResult:
    """Squared-AR variance ratio per firm-event (``frame``) and pooled (``pooled``) for one window."""

    window: tuple[int, int]
    frame: pl.DataFrame  # event_id, deal_id?, ticker, t0, window, var_ratio, df1, df2, p
    pooled: pl.DataFrame  # window, n, mean_ratio, chi2, df, p

    def to_frame(self) -> pl.DataFrame:
        return self.frame

    def summary(self) -> str:
        p = self.pooled.row(0, named=True)
        lines = [
            f"Variance ratio (squared standardised ARs / 1), window {p['window']}: "
            f"N = {p['n']}, mean ratio {p['mean_ratio']:.3f}, chi2({p['df']}) = {p['chi2']:.2f}, "
            f"p = {p['p']:.4g}",
            f"{'event_id':<40} {'ratio':>8} {'df1':>4} {'df2':>5} {'p':>8}",
        ]
        for r in self.frame.iter_rows(named=True):
            ratio = "" if r["var_ratio"] is None else f"{r['var_ratio']:.3f}"
            pv = "" if r["p"] is None else f"{r['p']:.4f}"
            lines.append(f"{r['event_id']:<40} {ratio:>8} {r['df1']:>4} {r['df2']:>5} {pv:>8}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def variance_ratio(panel: ARPanel, window: tuple[int, int]) -> VarianceRatioResult:
    """The squared-AR variance ratio of every firm-event of ``panel`` over ``window``.

    Pure. A firm-event without an AR on every day of the window gets a null ratio (as a CAR does) and
    is left out of the pooled statistic.
    """
    a, b = int(window[0]), int(window[1])
    if a > b:
        raise InputError(f"event window ({a}, {b}) is empty", field="--window")
    try:
        cols = panel.window_cols(a, b)
    except KeyError as exc:
        raise InputError(f"window [{a},{b}]: {exc.args[0]}", field="--window") from None
    except ValueError:
        raise InputError(f"window [{a},{b}] overlaps the estimation window", field="--window") from None
    with np.errstate(invalid="ignore", divide="ignore"):
        sar = panel.ar[:, cols] / (panel.sigma[:, None] * np.sqrt(panel.pe_factor[:, cols]))
    L = cols.shape[0]
    complete = np.isfinite(sar).all(axis=1)
    ratio = np.where(complete, np.nanmean(np.where(complete[:, None], sar, 0.0) ** 2, axis=1), np.nan)
    df2 = (panel.n_est - panel.n_params).astype(np.float64)
    p = np.where(complete, fdtrc(float(L), df2, np.where(complete, ratio, 0.0)), np.nan)
    keys = [c for c in ("event_id", "deal_id", "ticker", "t0") if c in panel.keys.columns]
    label = window_label((a, b))
    frame = panel.keys.select(keys).with_columns(
        pl.lit(label).alias("window"),
        pl.Series("var_ratio", ratio).fill_nan(None),
        pl.lit(L, dtype=pl.Int64).alias("df1"),
        pl.Series("df2", df2.astype(np.int64)),
        pl.Series("p", p).fill_nan(None),
    )
    n = int(complete.sum())
    q = float(L * ratio[complete].sum())
    dfq = L * n
    pooled = pl.DataFrame(
        {
            "window": [label],
            "n": [n],
            "mean_ratio": [float(ratio[complete].mean()) if n else float("nan")],
            "chi2": [q],
            "df": [dfq],
            "p": [float(chdtrc(dfq, q)) if n else float("nan")],
        }
    )
    return VarianceRatioResult(window=(a, b), frame=frame, pooled=pooled)


# --------------------------------------------------------------------------- (b) GARCH(1,1)


@dataclass(frozen=True)
class GarchFit:
    """One GARCH(1,1) market-model fit (decimal units) and its filtered post-estimation path."""

    params: dict[str, float]  # alpha, beta_market, omega, arch_alpha, garch_beta
    bse: dict[str, float]  # arch's robust (QMLE) standard errors, same units
    loglik: float
    converged: bool
    n_est: int
    last_resid: float  # e_T (decimal) on the last valid estimation day
    last_sigma: float  # s_T (decimal) on that day
    est_std_resid: np.ndarray  # (M,) e_t / s_t over the valid estimation days


def fit_garch_market(y: np.ndarray, m: np.ndarray) -> GarchFit:
    """Fit r_t = c + b m_t + e_t with GARCH(1,1) errors on the valid days of (y, m) (decimals).

    Missing days are dropped (the recursion runs over the observed sequence). Fitted with ``arch``
    on percent returns (``rescale=False``), the scale its optimiser is tuned for; parameters are
    returned in decimals (c / 100, omega / 100^2; b, alpha, beta are scale free).
    """
    from arch import arch_model  # heavy import, only when a GARCH fit is asked for

    ok = np.isfinite(y) & np.isfinite(m)
    ys, ms = y[ok] * _SCALE, m[ok] * _SCALE
    am = arch_model(ys, x=ms[:, None], mean="LS", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    res = am.fit(disp="off", show_warning=False)
    prm = res.params.to_numpy()
    se = res.std_err.to_numpy()
    scale = np.array([_SCALE, 1.0, _SCALE**2, 1.0, 1.0])
    cvol = np.asarray(res.conditional_volatility, dtype=np.float64)
    resid = np.asarray(res.resid, dtype=np.float64)
    return GarchFit(
        params=dict(zip(GARCH_PARAMS, (prm / scale).tolist(), strict=True)),
        bse=dict(zip(GARCH_PARAMS, (se / scale).tolist(), strict=True)),
        loglik=float(res.loglikelihood),
        converged=int(res.convergence_flag) == 0,
        n_est=int(ok.sum()),
        last_resid=float(resid[-1] / _SCALE),
        last_sigma=float(cvol[-1] / _SCALE),
        est_std_resid=resid / cvol,
    )


def garch_event_path(fit: GarchFit, y: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AR_t, s_t) on the days after the estimation window (decimals), filtered one step at a time.

    s_{t}^2 = omega + alpha e_{t-1}^2 + beta s_{t-1}^2 starting from the last estimation day; a day
    without a return has AR NaN and feeds its expected square s_t^2 into the next day's variance.
    """
    p = fit.params
    ar = y - p["alpha"] - p["beta_market"] * m
    n = ar.shape[0]
    s2 = np.empty(n)
    e_prev2, s_prev2 = fit.last_resid**2, fit.last_sigma**2
    for t in range(n):  # a recursion over the ~20 post-estimation days of one firm-event
        s2[t] = p["omega"] + p["arch_alpha"] * e_prev2 + p["garch_beta"] * s_prev2
        e_prev2 = ar[t] ** 2 if np.isfinite(ar[t]) else s2[t]
        s_prev2 = s2[t]
    return ar, np.sqrt(s2)


def _grid_returns(
    returns: pl.DataFrame, tickers: list[str], benchmark: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid dates, benchmark returns (T,), firm returns (n_tickers, T)) on the benchmark's sessions.

    A firm return on an off-grid date is compounded into the next grid day, (1 + r_off)(1 + r) - 1,
    as the return engine does (so a Tokyo-only session's move is not lost).
    """
    bench = returns.filter(pl.col("ticker") == benchmark).select("date", "ret").drop_nulls().sort("date")
    if bench.height == 0:
        raise InputError(f"no returns for the benchmark {benchmark!r}", field="--benchmark")
    grid = bench.select(pl.col("date").alias("gdate"))
    firms = (
        returns.filter(pl.col("ticker").is_in(tickers))
        .select("ticker", "date", "ret")
        .sort("date")
        .join_asof(grid, left_on="date", right_on="gdate", strategy="forward")
        .drop_nulls("gdate")
        .group_by("ticker", "gdate")
        .agg(
            pl.when(pl.col("ret").null_count() == 0)
            .then((pl.col("ret") + 1.0).product() - 1.0)
            .otherwise(None)
            .alias("ret")
        )
    )
    dates = grid["gdate"].to_numpy()
    r = np.full((len(tickers), dates.shape[0]), np.nan)
    if firms.height:
        ti = firms["ticker"].replace_strict({t: i for i, t in enumerate(tickers)}, return_dtype=pl.Int64)
        di = np.searchsorted(dates, firms["gdate"].to_numpy())
        r[ti.to_numpy(), di] = firms["ret"].fill_null(np.nan).to_numpy()
    return dates, bench["ret"].to_numpy(), r


def garch_study(
    returns: pl.DataFrame,
    events: pl.DataFrame,
    *,
    benchmark: str = "SPY",
    estimation: tuple[int, int] = (-250, -11),
    windows: tuple[tuple[int, int], ...] = DEFAULT_WINDOWS,
    min_obs: int = 120,
    conventions: Conventions = TEXTBOOK,
) -> EventStudyResult:
    """The GARCH(1,1) market model for every firm-event of ``events`` (event_id, deal_id, ticker, t0).

    Pure (``arch`` fits in memory). Returns an :class:`EventStudyResult` with model name ``garch``:
    ``params``/``bse`` hold the five GARCH parameters per firm-event (decimals), ``sigma`` the last
    estimation-day conditional sigma, ``car`` the raw CAR with se sqrt(sum s_t^2), z and normal p, and
    ``panel`` the GARCH-standardised residuals and ARs (sigma 1, no prediction-error term), so that
    ``tests(window)`` is the battery on conditional-sigma standardised ARs. Other events in the
    estimation window are not masked: the variance recursion runs over the observed sequence, and
    an announcement's shock is part of the volatility history the model has to explain.
    """
    est = (int(estimation[0]), int(estimation[1]))
    wins = tuple((int(a), int(b)) for a, b in windows)
    if est[0] > est[1]:
        raise InputError(f"estimation window {estimation} is empty", field="--estimation")
    if not wins:
        raise InputError("at least one event window is needed", field="--window")
    for a, b in wins:
        if a > b:
            raise InputError(f"event window ({a}, {b}) is empty", field="--window")
        if a <= est[1]:
            raise InputError(
                f"event window ({a}, {b}) must start after the estimation window {est} "
                "(the GARCH variance is filtered forward from its end)",
                field="--window",
            )
    for col in ("event_id", "ticker", "t0"):
        if col not in events.columns:
            raise InputError(f"events frame lacks column {col!r}", field=col)
    if "deal_id" not in events.columns:
        events = events.with_columns(pl.lit(None, dtype=pl.String).alias("deal_id"))
    events = events.sort("event_id")
    tickers = sorted(set(events["ticker"].drop_nulls().to_list()))
    dates, mret, r = _grid_returns(returns, tickers, benchmark)
    grid_days = dates.astype("datetime64[D]").tolist()
    present = set(returns.filter(pl.col("ticker").is_in(tickers))["ticker"].unique().to_list())
    last = max(b for _, b in wins)
    rel = np.arange(est[0], last + 1)
    n_est_days = est[1] - est[0] + 1
    is_est = rel <= est[1]
    post = rel[~is_est]
    # days inside at least one event window (the engine's no_event_returns test looks only there)
    in_window = np.zeros(rel.shape[0], dtype=bool)
    for a, b in wins:
        in_window |= (rel >= a) & (rel <= b)

    keys: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    fits: list[GarchFit] = []
    ars: list[np.ndarray] = []
    sigs: list[np.ndarray] = []
    est_z: list[np.ndarray] = []
    t0_days = np.array(
        [np.datetime64(t, "D") if t is not None else np.datetime64("NaT") for t in events["t0"].to_list()]
    )
    for i, ev in enumerate(events.iter_rows(named=True)):  # one optimisation per firm-event
        reason = None
        if ev["t0"] is None:
            reason = "no_t0"
        elif ev["ticker"] not in present:
            reason = "ticker_not_found"
        if reason is None:
            i0 = int(np.searchsorted(dates, t0_days[i].astype(dates.dtype)))
            idx = i0 + rel
            inside = (idx >= 0) & (idx < dates.shape[0])
            y = np.full(rel.shape[0], np.nan)
            m = np.full(rel.shape[0], np.nan)
            y[inside] = r[tickers.index(ev["ticker"]), idx[inside]]
            m[inside] = mret[idx[inside]]
            if not np.isfinite(y[in_window]).any():
                reason = "no_event_returns"
            elif int((np.isfinite(y[is_est]) & np.isfinite(m[is_est])).sum()) < min_obs:
                reason = "insufficient_estimation_obs"
        if reason is not None:
            excluded.append({"event_id": ev["event_id"], "deal_id": ev["deal_id"], "ticker": ev["ticker"],
                             "t0": ev["t0"], "reason": reason})
            continue
        fit = fit_garch_market(y[is_est], m[is_est])
        ar, s = garch_event_path(fit, y[~is_est], m[~is_est])
        ok = np.isfinite(y[is_est]) & np.isfinite(m[is_est])
        z_est = np.full(n_est_days, np.nan)
        z_est[ok] = fit.est_std_resid
        keys.append({"event_id": ev["event_id"], "deal_id": ev["deal_id"], "ticker": ev["ticker"],
                     "t0": ev["t0"], "t0_grid": grid_days[i0] if i0 < len(grid_days) else None})
        fits.append(fit)
        ars.append(ar)
        sigs.append(s)
        est_z.append(z_est)

    n = len(fits)
    ne = post.shape[0]
    ar_m = np.vstack(ars) if n else np.empty((0, ne))
    s_m = np.vstack(sigs) if n else np.empty((0, ne))
    key_frame = pl.DataFrame(
        keys,
        schema={"event_id": pl.String, "deal_id": pl.String, "ticker": pl.String, "t0": pl.Date,
                "t0_grid": pl.Date},
    )
    with np.errstate(invalid="ignore"):
        z_event = ar_m / s_m
    panel_ar = np.hstack([np.vstack(est_z) if n else np.empty((0, n_est_days)), z_event])
    pe = np.full((n, rel.shape[0]), np.nan)
    pe[:, ~is_est] = 1.0
    panel = ARPanel.from_grid(
        keys=key_frame,
        rel_days=rel,
        is_est=is_est,
        ar=panel_ar,
        sigma=np.ones(n),
        n_est=np.array([f.n_est for f in fits], dtype=np.int64),
        n_params=0,
        pe_factor=pe,
        x_event=np.empty((n, ne, 0)),
        xtx_inv=np.empty((n, 0, 0)),
        conventions=conventions,
    )
    base = key_frame.select("event_id", "deal_id", "ticker", "t0")
    params = base.with_columns(
        *(pl.Series(k, [f.params[k] for f in fits], dtype=pl.Float64) for k in GARCH_PARAMS),
        pl.Series("converged", [f.converged for f in fits], dtype=pl.Boolean),
    )
    bse = base.with_columns(
        *(pl.Series(k, [f.bse[k] for f in fits], dtype=pl.Float64) for k in GARCH_PARAMS)
    )
    sigma = key_frame.select("event_id").with_columns(
        pl.Series("sigma", [f.last_sigma for f in fits], dtype=pl.Float64),
        pl.Series("n_est", [f.n_est for f in fits], dtype=pl.Int64),
        pl.Series("loglik", [f.loglik for f in fits], dtype=pl.Float64),
    )
    car_parts: list[pl.DataFrame] = []
    for a, b in wins:
        cols = (post >= a) & (post <= b)
        w_ar = ar_m[:, cols]
        complete = np.isfinite(w_ar).all(axis=1)
        car = np.where(complete, w_ar.sum(axis=1), np.nan)
        se = np.sqrt((s_m[:, cols] ** 2).sum(axis=1))
        z = car / se
        car_parts.append(
            base.with_columns(
                pl.lit(window_label((a, b))).alias("window"),
                pl.Series("car", car).fill_nan(None),
                pl.Series("se", np.where(complete, se, np.nan)).fill_nan(None),
                pl.Series("t", z).fill_nan(None),
                pl.Series("p", 2.0 * ndtr(-np.abs(z))).fill_nan(None),
                pl.lit(None, dtype=pl.Float64).alias("bhar"),
                pl.Series("n_days", np.isfinite(w_ar).sum(axis=1).astype(np.int64)),
                pl.lit(len(car_parts), dtype=pl.Int64).alias("_w"),
            )
        )
    car_frame = (
        pl.concat(car_parts).sort("event_id", "_w").drop("_w")
        if car_parts
        else pl.DataFrame()
    )
    exc = pl.DataFrame(
        excluded,
        schema={"event_id": pl.String, "deal_id": pl.String, "ticker": pl.String, "t0": pl.Date,
                "reason": pl.String},
    )
    res = GarchStudyResult(
        model=GarchMarketModel((benchmark,)),
        method="arch",
        estimation=est,
        windows=wins,
        conventions=conventions,
        panel=panel,
        params=params,
        bse=bse,
        sigma=sigma,
        car=car_frame,
        excluded=exc,
        mask_other_events=False,
    )
    ar_long = pl.DataFrame(
        {
            "event_id": np.repeat(key_frame["event_id"].to_numpy(), ne),
            "rel_day": np.tile(post, n).astype(np.int32),
            "ar": ar_m.ravel(),
            "se": s_m.ravel(),
            "sar": z_event.ravel(),
        },
        schema={"event_id": pl.String, "rel_day": pl.Int32, "ar": pl.Float64, "se": pl.Float64,
                "sar": pl.Float64},
    ).with_columns(pl.col("ar").fill_nan(None), pl.col("sar").fill_nan(None))
    res._cache["ar"] = ar_long
    return res


@dataclass(frozen=True)
class GarchStudyResult(EventStudyResult):
    """An :class:`EventStudyResult` of the GARCH(1,1) market model.

    ``ar`` holds the raw AR with its conditional sigma (``se``) and the standardised AR (``sar``);
    ``panel`` (and so ``tests``) holds the standardised values.
    """

    def _header(self) -> list[str]:
        head = super()._header()
        head[0] = (
            f"model=garch(1,1) market model on {', '.join(self.model.benchmarks)} (arch, normal QMLE); "
            "CAR se = sqrt(sum of one-step conditional variances), z with normal p"
        )
        head[1] = head[1].replace("other events masked", "other events not masked")
        head[1] = head[1].replace("other events flagged", "other events not masked")
        return head


__all__ = [
    "GARCH_PARAMS",
    "GarchFit",
    "GarchStudyResult",
    "VarianceRatioResult",
    "fit_garch_market",
    "garch_event_path",
    "garch_study",
    "variance_ratio",
]
