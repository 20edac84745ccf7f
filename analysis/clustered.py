"""Inference that survives clustered events, run over a whole study: one call, three views.

Why: the AI deal announcements cluster (Stargate moved five firms on one day; three Anthropic reports fell
on 2025-11-18), so the cross-sectional tests of the battery, which treat firm-events as independent,
misstate the variance of an average. This module runs, for every window of a study:

* the MVRM / SUR Wald tests (:mod:`analysis.mvrm`) of every date cluster (one t0, two or more firms):
  all the firms' CARs zero, their sum zero, all equal - F form and Hein-Westfall bootstrap p;
* the calendar-time portfolio test (:mod:`analysis.calendar_time`) of the mean daily abnormal return of
  the firms inside their windows, with Newey-West errors;
* the CAAR resampling tests (:mod:`analysis.resampling`): bootstrap-t and sign-flip, each resampling
  whole date clusters, so firm-events on one day move together;

and adds Holm and Benjamini-Hochberg adjusted p-values per window to the per-event table
(:func:`analysis.multiplicity.adjusted_car_pvalues`, re-exported here). The maths live in those modules; this one only chooses the inputs the same
way for every view (the study's own firm-events and windows) and lays the results out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from analysis.calendar_time import calendar_time
from analysis.grid import ReturnGrid, returns_on_grid
from analysis.models import lagged, parse_benchmark
from analysis.multiplicity import (
    adjusted_car_pvalues as adjusted_car_pvalues,  # its home; kept importable here
)
from analysis.mvrm import ClusterData, MVRMResult, mvrm_on
from analysis.resampling import caar_test
from analysis.summary import Column, Summary, Table, fixed, integer, percent, pvalue
from analysis.window import EventWindow
from core.errors import InputError

if TYPE_CHECKING:
    from analysis.results import EventStudyResult

_CAR_COLUMNS = ("event_id", "deal_id", "ticker", "t0", "window", "car", "p")


@dataclass(frozen=True)
class ClusteredInference:
    """The three views of :func:`clustered_inference`, one tidy Polars frame each."""

    #: per date cluster x window x hypothesis: t0, deals, tickers, n_firms, window, hypothesis, chi2, df,
    #: F, df_num, df_den, p_F, p_boot, dropped_window_days
    joint: pl.DataFrame
    #: per window: alpha (mean daily AR of the portfolio), se, t, p, days, mean firms per day
    calendar_time: pl.DataFrame
    #: per window x method: caar, se, t, p, n, clusters
    caar: pl.DataFrame
    n_boot: int
    seed: int
    #: what the section must say beside the tables: firm-events whose t0 moved to the grid's next
    #: session, views that could not be computed and why
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pl.DataFrame:
        """The joint tests (the view with a row per hypothesis), as the statsmodels-style frame."""
        return self.joint

    def summary_tables(self) -> Summary:
        """The views computed (a view without rows is left out; ``notes`` say why)."""
        jf = self.joint
        for c, dtype in (("tickers", pl.String), ("F", pl.Float64), ("df_num", pl.Int64),
                         ("df_den", pl.Int64), ("p_F", pl.Float64), ("p_boot", pl.Float64)):
            if c not in jf.columns:
                jf = jf.with_columns(pl.lit(None, dtype).alias(c))
        joint = None if not jf.height else Table(
            jf,
            (
                Column("t0"), Column("tickers", "firms"), Column("window"),
                Column("hypothesis", "H0"), Column("F", "F", fixed(2)),
                Column("df_num", "df1", integer()), Column("df_den", "df2", integer()),
                Column("p_F", "p (F)", pvalue()), Column("p_boot", "p (bootstrap)", pvalue()),
            ),
            title="Joint tests of date clusters (MVRM, Binder 1985)",
            notes=(
                "H0 all_zero: every firm's CAR is zero; sum_zero: the CARs sum to zero; equal: the CARs "
                "are equal. Each firm is fitted as in the study (its own estimation days and model). F is "
                "exact under iid normal errors (Hotelling) when the firms share regressors and days, "
                "otherwise approximate; the bootstrap resamples whole "
                f"estimation-period date rows (Hein and Westfall 2004), {self.n_boot} draws, seed "
                f"{self.seed}.",
            ),
        )
        cal = None if not self.calendar_time.height else Table(
            self.calendar_time,
            (
                Column("window"), Column("alpha", "alpha (daily AR) %", percent(3)),
                Column("se", "se %", percent(3)), Column("t", "t", fixed(2)),
                Column("p", "p", pvalue()), Column("days", "days", integer()),
                Column("firms_per_day", "firms/day", fixed(2)),
            ),
            title="Calendar-time portfolio (Jaffe 1974; Mitchell and Stafford 2000)",
            notes=("Equal-weighted portfolio of the firms inside their event window each day, regressed "
                   "on SPY; Newey-West standard errors, t(T-k).",),
        )
        caar = None if not self.caar.height else Table(
            self.caar,
            (
                Column("window"), Column("method"), Column("caar", "CAAR %", percent(2)),
                Column("se", "se %", percent(2)), Column("p", "p", pvalue()),
                Column("n", "N", integer()), Column("clusters", "date clusters", integer()),
            ),
            title="CAAR resampling tests (whole date clusters resampled)",
            notes=("bootstrap: bootstrap-t over date clusters; sign_flip: random signs per date cluster "
                   "(exact enumeration up to 12 clusters).",),
        )
        tables = tuple(t for t in (joint, cal, caar) if t is not None)
        return Summary(tables, title="Inference for clustered events", notes=self.notes)

    def summary(self) -> str:
        return self.summary_tables().to_text()

    def to_latex(self) -> str:
        return self.summary_tables().to_latex()

    def __str__(self) -> str:
        return self.summary()


def date_clusters(car: pl.DataFrame) -> pl.DataFrame:
    """t0 dates shared by two or more distinct tickers: t0, tickers (sorted), deals (sorted)."""
    _require(car)
    return (
        car.filter(pl.col("t0").is_not_null())
        .group_by("t0")
        .agg(pl.col("ticker").unique().sort().alias("tickers"),
             pl.col("deal_id").unique().sort().alias("deals"))
        .filter(pl.col("tickers").list.len() >= 2)
        .sort("t0")
    )


def clustered_inference(
    res: EventStudyResult,
    returns: pl.DataFrame,
    windows: tuple[tuple[int, int], ...] | None = None,
    *,
    n_boot: int = 999,
    n_resamples: int = 9999,
    seed: int = 20250122,
) -> ClusteredInference:
    """The joint, calendar-time and resampling views of a study (``analysis.study.run_spec``'s result).

    ``returns`` is the study's returns frame (``market.returns.compute_returns``); ``windows`` default to
    the study's. Every view takes the study's own firm-events on the engine's trading-day grid: a t0 off
    the benchmark's calendar (a Tokyo session on a US holiday) is the study's ``t0_grid``, the next
    benchmark session. The MVRM of a date cluster fits each firm exactly as the study did (its model's
    regressors, e.g. SPY and SPY[-1] for 9984.T; its own estimation days, other announcements masked),
    so its per-firm CARs are the car view's. A view that cannot be computed (too few firm-events) is
    named with its reason in ``notes`` and the others are still reported. Deterministic: every
    resampling draws from ``numpy.random.default_rng(seed)`` streams fixed per cluster and window.
    """
    car = res.car
    _require(car)
    wins = tuple(EventWindow.of(w) for w in (windows if windows is not None else res.windows))
    keys = res.panel.keys.select("event_id", "ticker", "t0", "t0_grid").with_row_index("_row")
    # The study's firm-events on its grid: t0_grid is where the engine put day 0.
    car_g = car.join(keys.select("event_id", "t0_grid", "_row"), on="event_id", how="inner")
    notes: list[str] = []
    moved = keys.filter(pl.col("t0_grid").is_not_null() & (pl.col("t0_grid") != pl.col("t0"))).sort("event_id")
    for r in moved.iter_rows(named=True):
        notes.append(f"{r['event_id']}: t0 {r['t0']} is not a {_grid_ticker(res)} session; day 0 is the next "
                     f"one, {r['t0_grid']}, as in every table of the study.")

    joint = _empty_joint()
    try:
        joint = _joint_view(res, returns, car_g, wins, n_boot=n_boot, seed=seed)
    except InputError as exc:
        notes.append(f"Joint tests not computed: {exc}")
    cal = pl.DataFrame()
    try:
        cal = _calendar_view(returns, car_g, wins, benchmark=_grid_ticker(res))
    except InputError as exc:
        notes.append(f"Calendar-time portfolio not computed: {exc}")
    caar = pl.DataFrame()
    try:
        caar = _caar_view(car_g, wins, n_resamples=n_resamples, seed=seed)
    except InputError as exc:
        notes.append(f"CAAR resampling not computed: {exc}")
    return ClusteredInference(joint=joint, calendar_time=cal, caar=caar, n_boot=n_boot, seed=seed,
                              notes=tuple(notes))


def _grid_ticker(res: EventStudyResult) -> str:
    """The ticker whose trading days are the study's grid (its first benchmark)."""
    return parse_benchmark(res.model.benchmarks[0])[0]


def _empty_joint() -> pl.DataFrame:
    return pl.DataFrame(schema={"t0": pl.Date, "window": pl.Utf8, "hypothesis": pl.Utf8})


def _joint_view(res: EventStudyResult, returns: pl.DataFrame, car_g: pl.DataFrame,
                wins: tuple[EventWindow, ...], *, n_boot: int, seed: int) -> pl.DataFrame:
    """MVRM Wald tests per date cluster (t0_grid shared by two or more tickers) and window."""
    clusters = date_clusters(car_g.with_columns(pl.col("t0_grid").alias("t0")))
    if clusters.height == 0:
        return _empty_joint()
    members = car_g.filter(pl.col("t0_grid").is_in(clusters["t0"].to_list()))
    regs = study_regressors(res, members["event_id"].unique().to_list())
    grid_ticker = _grid_ticker(res)
    rg = _study_grid(res, returns, members["ticker"].to_list(), regs)
    est_resid = res.panel.estimation_residuals()
    rows: list[dict[str, object]] = []
    for ci, cl in enumerate(clusters.iter_rows(named=True)):
        t0 = cl["t0"]
        base = {"t0": t0, "deals": ", ".join(cl["deals"]), "tickers": ", ".join(cl["tickers"]),
                "n_firms": len(cl["tickers"])}
        for wi, w in enumerate(wins):
            part = (members.filter((pl.col("t0_grid") == t0) & (pl.col("window") == w.label))
                    .sort("ticker", "event_id").unique("ticker", keep="first", maintain_order=True))
            have = part.filter(pl.col("car").is_not_null())
            lacking = sorted(set(part["ticker"].to_list()) - set(have["ticker"].to_list()))
            try:
                if have.height < 2:
                    raise InputError(f"fewer than two firms with a CAR over {w.label} (no CAR: "
                                     f"{', '.join(lacking) or 'none'})", field="window")
                data = study_cluster(res, rg, est_resid, have, regs, w, t0)
                fit = mvrm_on(data, t0=t0, benchmark=grid_ticker, estimation=res.estimation,
                              window=(w.start, w.end), n_boot=n_boot, rng=seed + 1000 * ci + wi)
            except InputError as exc:
                # A cluster the MVRM cannot estimate is reported with its reason, never dropped silently.
                rows.append({**base, "window": w.label, "hypothesis": "not_estimated", "reason": str(exc)})
                continue
            reason = f"no CAR over {w.label}: {', '.join(lacking)} (tested without)" if lacking else None
            for r in fit.wald.iter_rows(named=True):
                rows.append({**base, "tickers": ", ".join(data.tickers), "n_firms": len(data.tickers),
                             "window": w.label, **r, "dropped_window_days": 0, "reason": reason})
    return pl.DataFrame(rows, infer_schema_length=None) if rows else _empty_joint()


def study_mvrm(res: EventStudyResult, returns: pl.DataFrame, t0_grid: date, window: tuple[int, int], *,
               n_boot: int = 999, rng: np.random.Generator | int = 0) -> MVRMResult:
    """The MVRM of the study's firm-events on trading day ``t0_grid`` that have a CAR over ``window``,
    each fitted as the study fitted it (:func:`study_cluster`): the row of the joint table, in full."""
    w = EventWindow.of(window)
    keys = res.panel.keys.select("event_id", "t0_grid").with_row_index("_row")
    firms = (res.car.join(keys, on="event_id", how="inner")
             .filter((pl.col("t0_grid") == t0_grid) & (pl.col("window") == w.label) & pl.col("car").is_not_null())
             .sort("ticker", "event_id").unique("ticker", keep="first", maintain_order=True))
    if firms.height < 1:
        raise InputError(f"no firm-event of the study with a CAR over {w.label} on {t0_grid}", field="t0")
    regs = study_regressors(res, firms["event_id"].to_list())
    grid_ticker = _grid_ticker(res)
    rg = _study_grid(res, returns, firms["ticker"].to_list(), regs)
    data = study_cluster(res, rg, res.panel.estimation_residuals(), firms, regs, w, t0_grid)
    return mvrm_on(data, t0=t0_grid, benchmark=grid_ticker, estimation=res.estimation, window=(w.start, w.end),
                   n_boot=n_boot, rng=rng)


def _study_grid(res: EventStudyResult, returns: pl.DataFrame, tickers: list[str],
                regs: dict[str, tuple[str, ...]]) -> ReturnGrid:
    """The engine's grid returns of ``tickers`` and of the benchmarks their models regress on (lagged ones
    by their ticker), on the study's grid."""
    grid_ticker = _grid_ticker(res)
    wanted = set(tickers) | {parse_benchmark(b)[0] for r in regs.values() for b in r[1:]} | {grid_ticker}
    return returns_on_grid(returns.select("ticker", "date", "ret"), wanted, grid_ticker)


def study_regressors(res: EventStudyResult, event_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """event_id -> the regressors of its normal-return model in the study: ``const`` and benchmark names
    (``SPY``, ``SPY[-1]``), read from the study's own parameters (non-null ``alpha``, ``beta_<name>``).

    InputError for a model the joint test cannot refit (factor models: their betas are on factor series,
    not on benchmark returns; market-adjusted returns: no parameters)."""
    key_cols = {"event_id", "deal_id", "ticker", "t0"}
    params = res.params.filter(pl.col("event_id").is_in(event_ids))
    if res.model.needs_factors:
        raise InputError(f"the joint tests refit market models (alpha, beta_<benchmark>) on benchmark returns; "
                         f"the study's model {res.model.name!r} regresses on factor series", field="model")
    out: dict[str, tuple[str, ...]] = {}
    for r in params.iter_rows(named=True):  # one row per firm-event of the clusters (a few dozen)
        names = [c for c in params.columns if c not in key_cols and r[c] is not None]
        other = [c for c in names if c != "alpha" and not c.startswith("beta_")]
        if other or not names:
            raise InputError(f"the joint tests refit market models (alpha, beta_<benchmark>); the study's "
                             f"model {res.model.name!r} has {', '.join(other) or 'no parameters'}",
                             field="model")
        out[r["event_id"]] = tuple("const" if c == "alpha" else c.removeprefix("beta_") for c in names)
    return out


def study_cluster(res: EventStudyResult, rg: ReturnGrid, est_resid: np.ndarray, firms: pl.DataFrame,
                  regs: dict[str, tuple[str, ...]], w: EventWindow, t0_grid: date) -> ClusterData:
    """The firms of one date cluster as the study estimated them, on its relative-day grid.

    Rows: the estimation days any firm uses plus the window's days. Firm j's returns are the engine's
    grid returns (off-grid sessions compounded into the next grid day), its estimation rows the days on
    which the study has a residual for it (its own holidays and its other announcements' spans left
    out), its regressors its model's series (lagged ones shifted along the grid).
    """
    p = res.panel
    rel = p.rel_days
    i0 = int(np.searchsorted(rg.grid, np.datetime64(t0_grid, "D")))
    in_win = (rel >= w.start) & (rel <= w.end)
    est_cols = np.flatnonzero(p.is_est)
    rows_ = firms["_row"].to_list()
    used = np.isfinite(est_resid[rows_])  # (N, L_est)
    keep_est = used.any(axis=0)
    sel = np.r_[est_cols[keep_est], np.flatnonzero(in_win)]
    pos = i0 + rel[sel]
    if pos.min() < 0 or pos.max() >= rg.grid.shape[0]:
        raise InputError(f"the cluster of {t0_grid} reaches past the returns' trading days", field="window")
    n_est = int(keep_est.sum())
    is_event = np.r_[np.zeros(n_est, dtype=bool), np.ones(int(in_win.sum()), dtype=bool)]
    use = np.zeros((sel.shape[0], len(rows_)), dtype=bool)
    use[:n_est] = used[:, keep_est].T
    row_of = {t: i for i, t in enumerate(rg.tickers)}
    tickers = tuple(firms["ticker"].to_list())
    xs, names = [], []
    for eid in firms["event_id"].to_list():
        cols = []
        for r in regs[eid]:
            if r == "const":
                cols.append(np.ones(sel.shape[0]))
            else:
                b, lag = parse_benchmark(r)
                cols.append(lagged(rg.r[row_of[b]], lag)[pos])
        xs.append(np.column_stack(cols))
        names.append(regs[eid])
    y = np.column_stack([rg.r[row_of[t], pos] for t in tickers])
    grid_dates = rg.grid[pos].astype("datetime64[D]").astype(object)
    return ClusterData(tickers=tickers, dates=list(grid_dates), rel_days=rel[sel], y=y,
                       market=rg.r[row_of[_grid_ticker(res)], pos], is_event=is_event, dropped_window_days=(),
                       x=tuple(xs), regressors=tuple(names), use=use, t0_grid=t0_grid)


def _calendar_view(returns: pl.DataFrame, car_g: pl.DataFrame, wins: tuple[EventWindow, ...], *,
                   benchmark: str) -> pl.DataFrame:
    events = (car_g.filter(pl.col("t0_grid").is_not_null() & pl.col("car").is_not_null())
              .select("ticker", pl.col("t0_grid").alias("t0")).unique().sort("ticker", "t0"))
    cal_rows = []
    for w in wins:
        ct = calendar_time(returns, events, window=(w.start, w.end), benchmark=benchmark)
        frame = ct.to_frame().filter(pl.col("term") == "alpha").row(0, named=True)
        cal_rows.append({"window": w.label, "alpha": frame["coef"], "se": frame["se"], "t": frame["t"],
                         "p": frame["p"], "days": ct.nobs,
                         "firms_per_day": float(ct.portfolio["n_firms"].mean())})  # type: ignore[arg-type]
    return pl.DataFrame(cal_rows)


def _caar_view(car_g: pl.DataFrame, wins: tuple[EventWindow, ...], *, n_resamples: int,
               seed: int) -> pl.DataFrame:
    caar_rows = []
    for wi, w in enumerate(wins):
        part = car_g.filter((pl.col("window") == w.label) & pl.col("car").is_not_null()).sort("event_id")
        if part.height < 2:
            continue
        cars = part["car"].to_numpy()
        cl_ids = part["t0_grid"].rank("dense").to_numpy().astype(np.int64)
        for mi, method in enumerate(("bootstrap", "sign_flip")):
            rt = caar_test(cars, method=method, clusters=cl_ids, n_resamples=n_resamples,  # type: ignore[arg-type]
                           rng=seed + 7 * wi + mi)
            row = rt.to_frame().row(0, named=True)
            caar_rows.append({"window": w.label, "method": method, "caar": row["coef"], "se": row["se"],
                              "t": row["t"], "p": row["p"], "n": rt.n, "clusters": rt.n_clusters})
    if not caar_rows:
        raise InputError("no window has two firm-events with a CAR", field="window")
    return pl.DataFrame(caar_rows)


def _require(car: pl.DataFrame) -> None:
    missing = [c for c in _CAR_COLUMNS if c not in car.columns]
    if missing:
        raise InputError(f"the CAR frame lacks column(s): {', '.join(missing)}", field="car")
