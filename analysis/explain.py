"""``carousel explain``'s core: regress one window's CARs on the firm-events' graph characteristics.

Why a module between the study and the regression: the CARs come from the same study every command
runs (:func:`analysis.study.run_study`), the characteristics from the ledger as known at each
announcement (:mod:`analysis.features`), and the regression from :func:`analysis.crosssection.fit_crosssection`.
Joining them (which window, which firm-events, which names the user may cluster by) is what this module
holds, so the CLI, the report and a notebook ask the same question the same way.

Cluster names: ``date`` is the firm-event's t0 (one announcement day's CARs share the market's news),
``firm`` the company (GOOGL and GOOG are one firm), ``ticker`` the listed line; any other column of the
frame may be named too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import polars as pl

from analysis.crosssection import CrossSectionResult, WildBootstrapResult, fit_crosssection
from analysis.dollar_columns import market_caps_at_t0 as dollar_caps_at_t0
from analysis.results import EventStudyResult
from analysis.spec import CLUSTER_ALIASES as CLUSTER_ALIASES  # their home: the specification
from analysis.spec import DEFAULT_SPEC, StudySpec
from analysis.spec import parse_cov as parse_cov
from analysis.window import EventWindow
from core.errors import InputError


def explain_frame(res: EventStudyResult, features: pl.DataFrame, window: EventWindow | tuple[int, int] | str) -> pl.DataFrame:
    """One row per firm-event with a CAR in ``window``: the study's car, se, t, p, n_days joined with the
    characteristics (:func:`analysis.features.graph_features`) by event_id."""
    w = EventWindow.of(window)
    car = res.car.filter(pl.col("window") == w.label)
    if car.height == 0:
        have = ", ".join(sorted(set(res.car["window"].to_list())))
        raise InputError(f"the study has no window {w.label} (it has {have})", field="--window")
    feats = features.drop([c for c in ("deal_id", "ticker", "t0") if c in features.columns])
    return car.select("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "n_days").join(
        feats, on="event_id", how="left"
    ).sort("event_id")


@dataclass(frozen=True)
class ExplainResult:
    """The second-stage regression with, optionally, wild cluster bootstrap p-values per term."""

    window: str
    fit: CrossSectionResult
    bootstrap: dict[str, WildBootstrapResult] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, float]:
        return self.fit.params

    @property
    def bse(self) -> dict[str, float]:
        return self.fit.bse

    @property
    def tvalues(self) -> dict[str, float]:
        return self.fit.tvalues

    @property
    def pvalues(self) -> dict[str, float]:
        return self.fit.pvalues

    @property
    def nobs(self) -> int:
        return self.fit.nobs

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        return self.fit.conf_int(alpha)

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """term, coef, se, t, p, lower, upper, boot_p (null where not bootstrapped)."""
        boot = {k: v.pvalue for k, v in self.bootstrap.items()}
        return self.fit.to_frame(alpha).with_columns(
            pl.col("term").replace_strict(boot, default=None, return_dtype=pl.Float64).alias("boot_p")
        )

    def _boot_lines(self) -> list[str]:
        return [b.summary() for b in self.bootstrap.values()]

    def summary(self) -> str:
        return "\n".join([f"CAR window {self.window}", self.fit.summary(), *self._boot_lines()])

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        tex = self.fit.to_latex(caption=caption or f"Cross-section of CAR {self.window}", label=label)
        if not self.bootstrap:
            return tex
        note = " ".join(
            f"Wild cluster bootstrap p ({b.term}): {b.pvalue:.4f}." for b in self.bootstrap.values()
        )
        return tex.replace(r"\end{table}", r"\par " + _tex(note) + "\n" + r"\end{table}")

    def to_json(self) -> str:
        rows = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
            for r in self.to_frame().iter_rows(named=True)
        ]
        doc: dict[str, Any] = {
            "window": self.window,
            "formula": self.fit.formula,
            "method": self.fit.method,
            "cov_type": self.fit.cov_type,
            "cluster": list(self.fit.cluster),
            "nobs": self.fit.nobs,
            "n_dropped": self.fit.n_dropped,
            "dropped": [{"row": r, "missing": list(c)} for r, c in self.fit.dropped_rows],
            "df_resid": self.fit.df_resid,
            "df_inference": self.fit.df_inference,
            "rsquared": self.fit.rsquared,
            "rsquared_adj": self.fit.rsquared_adj,
            "coefficients": rows,
            "bootstrap": [
                {"term": b.term, "t": b.tstat, "p": b.pvalue, "reps": b.reps, "weights": b.weights,
                 "enumerated": b.enumerated, "cluster": b.cluster, "n_clusters": b.n_clusters}
                for b in self.bootstrap.values()
            ],
        }
        return json.dumps(doc, indent=2)

    def __str__(self) -> str:
        return self.summary()


def _tex(s: str) -> str:
    from analysis.summary import tex_escape

    return tex_escape(s)


def explain(
    frame: pl.DataFrame,
    formula: str,
    *,
    weights: str = "ols",
    cov: str = "hc3",
    bootstrap: int = 0,
    boot_weights: str = "webb",
    seed: int | np.random.Generator = 0,
    window: str = "",
) -> ExplainResult:
    """Fit ``formula`` on ``frame`` (:func:`explain_frame`): OLS or WLS (1/se^2), covariance ``cov``
    (:func:`parse_cov`), and with ``bootstrap`` > 0 a restricted wild cluster bootstrap p-value for every
    term but the intercept, clustered by the first cluster variable (by date when ``cov`` is not
    clustered). Seeded: the same seed gives the same p-values."""
    if weights not in ("ols", "wls"):
        raise InputError(f"unknown weights {weights!r}; choose ols or wls", field="--weights")
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or a positive number of draws, got {bootstrap}", field="--bootstrap")
    cov_type, clusters = parse_cov(cov)
    boot_cluster = clusters[0] if clusters else "t0"
    fit = fit_crosssection(
        frame,
        formula,
        se="se" if weights == "wls" else None,
        cov_type=cov_type,  # type: ignore[arg-type]
        cluster=list(clusters) or None,
        keep=[boot_cluster] if bootstrap else [],
    )
    boots: dict[str, WildBootstrapResult] = {}
    if bootstrap:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        for term in fit.table.names:
            if term == "Intercept":
                continue
            boots[term] = fit.wild_bootstrap(
                term, cluster=boot_cluster, weights=boot_weights, reps=bootstrap, seed=rng  # type: ignore[arg-type]
            )
    if not window and "window" in frame.columns and frame.height:
        window = str(frame["window"][0])
    return ExplainResult(window=window, fit=fit, bootstrap=boots)


def study_features(con: duckdb.DuckDBPyConnection, deals: pl.DataFrame, spec: StudySpec = DEFAULT_SPEC,
                   *, recorded_by: dt.datetime | None = None) -> pl.DataFrame:
    """The characteristics of a study's firm-events as known at each t0: the firm-events ``spec`` makes
    of ``deals`` (its date basis and unknown-time policy, collapsed per ticker and day as every command
    does), each valued at t0-1 by :func:`market_caps_at_t0`. One home, so ``carousel explain`` and the
    main job's second stage join the same characteristics to the same CARs."""
    from analysis.date_basis import apply_date_basis
    from analysis.events import collapse_same_day, firm_events
    from analysis.features import firm_event_features

    events = collapse_same_day(firm_events(apply_date_basis(deals, spec.date_basis),
                                           unknown_policy=spec.unknown_policy))
    return firm_event_features(con, events, market_caps=market_caps_at_t0(con, events), recorded_by=recorded_by)


def study_frame(
    con: duckdb.DuckDBPyConnection,
    window: EventWindow | tuple[int, int] | str,
    spec: StudySpec = DEFAULT_SPEC,
    *,
    recorded_by: dt.datetime | None = None,
) -> pl.DataFrame:
    """The :func:`explain_frame` of the database's study as ``spec`` defines it (``carousel study``'s,
    ``run``'s and ``report``'s: :func:`analysis.study.run_spec`, so 9984.T gets its lagged benchmark as
    there), estimated on ``spec.windows`` plus ``window``, so a window's CARs equal the stored ``car``
    view's; characteristics from :func:`study_features`."""
    from analysis.study import load_inputs, run_spec

    w = EventWindow.of(window)
    if w not in spec.windows:
        spec = spec.with_(windows=(*spec.windows, w))
    deals, returns = load_inputs(con, spec.extra_tickers())
    res = run_spec(deals, returns, spec)
    return explain_frame(res, study_features(con, deals, spec, recorded_by=recorded_by), w)


def market_caps_at_t0(con: duckdb.DuckDBPyConnection, events: pl.DataFrame) -> pl.DataFrame | None:
    """ticker, t0, price_date, mcap_usd, mcap_reason: the market value at t0-1 the dollar CARs use
    (:func:`analysis.dollar_columns.market_caps_at_t0`, one home for the idea), or None when the
    database holds no share counts (``amount_to_mcap`` then says ``no_market_cap_frame``)."""
    return dollar_caps_at_t0(con, events)


__all__ = [
    "CLUSTER_ALIASES",
    "ExplainResult",
    "explain",
    "explain_frame",
    "market_caps_at_t0",
    "parse_cov",
    "study_features",
    "study_frame",
]
