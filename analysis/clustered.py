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

import numpy as np
import polars as pl

from analysis.calendar_time import calendar_time
from analysis.engine import DEFAULT_MASK_SPAN
from analysis.multiplicity import (
    adjusted_car_pvalues as adjusted_car_pvalues,  # its home; kept importable here
)
from analysis.mvrm import mvrm
from analysis.resampling import caar_test
from analysis.summary import Column, Summary, Table, fixed, integer, percent, pvalue
from analysis.window import EventWindow
from core.errors import InputError

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

    def to_frame(self) -> pl.DataFrame:
        """The joint tests (the view with a row per hypothesis), as the statsmodels-style frame."""
        return self.joint

    def summary_tables(self) -> Summary:
        joint = Table(
            self.joint,
            (
                Column("t0"), Column("tickers", "firms"), Column("window"),
                Column("hypothesis", "H0"), Column("F", "F", fixed(2)),
                Column("df_num", "df1", integer()), Column("df_den", "df2", integer()),
                Column("p_F", "p (F)", pvalue()), Column("p_boot", "p (bootstrap)", pvalue()),
            ),
            title="Joint tests of date clusters (MVRM, Binder 1985)",
            notes=(
                "H0 all_zero: every firm's CAR is zero; sum_zero: the CARs sum to zero; equal: the CARs "
                "are equal. F is exact under iid normal errors (Hotelling); the bootstrap resamples whole "
                f"estimation-period date rows (Hein and Westfall 2004), {self.n_boot} draws, seed "
                f"{self.seed}.",
            ),
        )
        cal = Table(
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
        caar = Table(
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
        return Summary((joint, cal, caar), title="Inference for clustered events")

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
    car: pl.DataFrame,
    returns: pl.DataFrame,
    windows: tuple[tuple[int, int], ...],
    *,
    benchmark: str = "SPY",
    estimation: tuple[int, int] = (-250, -11),
    n_boot: int = 999,
    n_resamples: int = 9999,
    seed: int = 20250122,
    mask_span: tuple[int, int] | None = None,
) -> ClusteredInference:
    """The joint, calendar-time and resampling views for a study's CAR table (``EventStudyResult.car``).

    ``returns`` is the study's returns frame (``market.returns.compute_returns``). Every benchmark session
    of another announcement's masking period by a cluster's firm (``mask_span``, default the engine's
    ``DEFAULT_MASK_SPAN``, widened by any window reaching past it) is left out of the cluster's
    estimation period. Deterministic: every
    resampling draws from ``numpy.random.default_rng(seed)`` streams fixed per cluster and window.
    """
    _require(car)
    wins = tuple(EventWindow.of(w) for w in windows)
    # The engine's fixed masking period (widened only by a window that reaches past it), so the
    # clusters' estimation periods leave out the same days as the study's.
    base = mask_span or DEFAULT_MASK_SPAN
    span = (min(base[0], *(w.start for w in wins)), max(base[1], *(w.end for w in wins)))
    clusters = date_clusters(car)
    own_dates = car.filter(pl.col("t0").is_not_null()).group_by("ticker").agg(
        pl.col("t0").unique().sort().alias("dates"))
    dates_of = {r["ticker"]: r["dates"] for r in own_dates.iter_rows(named=True)}
    sessions = returns.filter(pl.col("ticker") == benchmark).sort("date")["date"].to_list()
    position = {d: i for i, d in enumerate(sessions)}
    joint_rows: list[dict[str, object]] = []
    for ci, cl in enumerate(clusters.iter_rows(named=True)):
        # Every session of another announcement's span (the union of the windows, as the engine masks
        # it) leaves the cluster's estimation period: their reaction days are not normal returns.
        other_t0 = {d for t in cl["tickers"] for d in dates_of.get(t, []) if d != cl["t0"]}
        others = sorted({sessions[j] for d in other_t0 if d in position
                         for j in range(position[d] + span[0], position[d] + span[1] + 1)
                         if 0 <= j < len(sessions) and sessions[j] != cl["t0"]})
        for wi, w in enumerate(wins):
            try:
                res = mvrm(returns, cl["tickers"], cl["t0"], benchmark=benchmark, estimation=estimation,
                           window=(w.start, w.end), n_boot=n_boot, rng=seed + 1000 * ci + wi,
                           exclude=others)
            except InputError as exc:
                # A cluster the MVRM cannot estimate (a firm without enough common dates) is reported
                # with its reason, never dropped silently.
                joint_rows.append({"t0": cl["t0"], "deals": ", ".join(cl["deals"]),
                                   "tickers": ", ".join(cl["tickers"]), "n_firms": len(cl["tickers"]),
                                   "window": w.label, "hypothesis": "not_estimated",
                                   "reason": str(exc)})
                continue
            dropped = len(res.data.dropped_window_days)
            for r in res.wald.iter_rows(named=True):
                joint_rows.append({"t0": cl["t0"], "deals": ", ".join(cl["deals"]),
                                   "tickers": ", ".join(cl["tickers"]), "n_firms": len(cl["tickers"]),
                                   "window": w.label, **r, "dropped_window_days": dropped,
                                   "reason": None})
    joint = pl.DataFrame(joint_rows, infer_schema_length=None) if joint_rows else pl.DataFrame(
        schema={"t0": pl.Date, "window": pl.Utf8, "hypothesis": pl.Utf8})

    events = car.filter(pl.col("t0").is_not_null() & pl.col("car").is_not_null()).select(
        "ticker", "t0").unique().sort("ticker", "t0")
    cal_rows = []
    for w in wins:
        ct = calendar_time(returns, events, window=(w.start, w.end), benchmark=benchmark)
        frame = ct.to_frame().filter(pl.col("term") == "alpha").row(0, named=True)
        cal_rows.append({"window": w.label, "alpha": frame["coef"], "se": frame["se"], "t": frame["t"],
                         "p": frame["p"], "days": ct.nobs,
                         "firms_per_day": float(ct.portfolio["n_firms"].mean())})  # type: ignore[arg-type]
    caar_rows = []
    for wi, w in enumerate(wins):
        part = car.filter((pl.col("window") == w.label) & pl.col("car").is_not_null()).sort("event_id")
        if part.height < 2:
            continue
        cars = part["car"].to_numpy()
        cl_ids = part["t0"].rank("dense").to_numpy().astype(np.int64)
        for mi, method in enumerate(("bootstrap", "sign_flip")):
            rt = caar_test(cars, method=method, clusters=cl_ids, n_resamples=n_resamples,  # type: ignore[arg-type]
                           rng=seed + 7 * wi + mi)
            row = rt.to_frame().row(0, named=True)
            caar_rows.append({"window": w.label, "method": method, "caar": row["coef"], "se": row["se"],
                              "t": row["t"], "p": row["p"], "n": rt.n, "clusters": rt.n_clusters})
    return ClusteredInference(joint=joint, calendar_time=pl.DataFrame(cal_rows),
                              caar=pl.DataFrame(caar_rows), n_boot=n_boot, seed=seed)


def _require(car: pl.DataFrame) -> None:
    missing = [c for c in _CAR_COLUMNS if c not in car.columns]
    if missing:
        raise InputError(f"the CAR frame lacks column(s): {', '.join(missing)}", field="car")
