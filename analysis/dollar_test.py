"""Tests on the cross-section of dollar abnormal returns (market value at t0-1 times CAR).

A journalist's question is "how many dollars of market value did the announcements move?", not "what
was the average percentage CAR?". The two differ in weighting: a dollar test weights each firm-event by
its market capitalisation, so Nvidia's 1% counts for a hundred times a small cap's 1%. Saha and Ferrell
(2011) argued that the significance of a dollar effect need not follow from that of the return, and
derived a t statistic for the dollar effect; Duarte-Silva and Tripolski Kimel (2014) showed that, once
the market value before the event is treated as known (it is observed at t0-1), a single firm's dollar
t equals its return t, and attributed the difference to a biased estimator and the delta method.

What carousel implements (docs/conventions.md, "Dollar abnormal returns") follows that resolution:
the dollar CAR of firm-event i is D_i = V_i CAR_i with V_i the market value at t0-1, its standard
error s_i = V_i se(CAR_i) (conditional on V_i); both are computed upstream and passed in. Over the
cross-section:

* **aggregate dollar test** (the total value moved): D = sum_i D_i, se(D) = sqrt(sum_i s_i^2) under
  independent firm-events, z = D / se(D), standard normal. This is the value-weighted CAR test:
  D / sum_i V_i has the same z.
* **cross-sectional dollar t** (robust to misestimated s_i and event-induced variance, as the
  cross-sectional t of CARs is): mean_i D_i / (sd_i(D_i) / sqrt(n)), Student t(n-1).

* **aggregate test with estimation-window dollar SEs** (optional, ``estimation_se=``): the same total
  D over the firm-events that also have s_i^est, the SE from the estimation window's dollar abnormal
  returns V_{s-1} AR_s (``analysis.dollar.estimation_dollar_se``), se = sqrt(sum_i (s_i^est)^2), z against
  N(0,1). This is the approach attributed to Saha and Ferrell (2011); their published formula could not
  be obtained, so it is not checked against the paper and the term is named for what it computes
  (``total_dollar_car_est``), not for them (docs/conventions.md).

All assume independent firm-events; for several firms on one announcement day, cluster
(``analysis.crosssection.fit_crosssection(frame, "dollar_car ~ 1", cov_type="cluster", cluster="t0")``)
or use ``analysis.common_shock``.

Entry point: :func:`dollar_test`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.coefficients import CoefficientResults, CoefficientTable, render_latex, render_text
from core.errors import InputError


@dataclass(frozen=True)
class DollarTestResult(CoefficientResults):
    """The aggregate (z) and cross-sectional (t) tests on dollar CARs.

    ``params``/``bse``/``tvalues``/``pvalues`` describe the aggregate test (term
    ``total_dollar_car``); ``mean_test`` holds the cross-sectional t on the mean dollar CAR;
    ``est_test`` (when ``estimation_se`` was given) the total with estimation-window dollar SEs
    (term ``total_dollar_car_est``) over its own ``nobs_est`` firm-events (``n_dropped_est`` without one).
    """

    table: CoefficientTable
    mean_test: CoefficientTable
    nobs: int
    n_dropped: int
    total_value: float | None
    units: str
    est_test: CoefficientTable | None = None
    nobs_est: int = 0
    n_dropped_est: int = 0

    def term_nobs(self) -> dict[str, int]:
        """Firm-events behind each term (the estimation-window test may use fewer)."""
        out = {"total_dollar_car": self.nobs, "mean_dollar_car": self.nobs}
        if self.est_test is not None:
            out["total_dollar_car_est"] = self.nobs_est
        return out

    def _tables(self) -> list[CoefficientTable]:
        return [self.table, self.mean_test, *([self.est_test] if self.est_test is not None else [])]

    @property
    def df_resid(self) -> float:
        """Degrees of freedom of the cross-sectional t (n - 1)."""
        assert self.mean_test.df is not None
        return self.mean_test.df

    @property
    def value_weighted_car(self) -> float | None:
        """Total dollar CAR over total market value at t0-1 (None without market values)."""
        if self.total_value is None:
            return None
        return self.table.estimates[0] / self.total_value

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        return pl.concat([t.conf_int(alpha) for t in self._tables()])

    def to_frame(self, alpha: float = 0.05) -> pl.DataFrame:
        """term, coef, se, t, p, lower, upper, dist ('normal' or 't(n-1)')."""
        est = [] if self.est_test is None else [
            self.est_test.to_frame(alpha).with_columns(pl.lit("normal").alias("dist"))]
        return pl.concat(
            [
                self.table.to_frame(alpha).with_columns(pl.lit("normal").alias("dist")),
                self.mean_test.to_frame(alpha).with_columns(pl.lit(f"t({self.df_resid:g})").alias("dist")),
                *est,
            ]
        )

    def _notes(self) -> list[str]:
        notes = [
            f"total_dollar_car: sum of dollar CARs, SE sqrt(sum se_i^2), z against N(0,1); "
            f"mean_dollar_car: cross-sectional t with {self.df_resid:g} df. Units: {self.units}.",
            "Firm-events are taken as independent; cluster by announcement day when they are not.",
        ]
        if self.value_weighted_car is not None:
            notes.append(f"Value-weighted CAR (total dollar CAR / total market value): {self.value_weighted_car:.4%}.")
        notes.append(
            f"{self.n_dropped} firm-event(s) dropped for a missing dollar CAR or SE."
            if self.n_dropped
            else "No firm-events dropped."
        )
        if self.est_test is None and self.n_dropped_est:
            notes.append("total_dollar_car_est: no firm-event has both a dollar CAR and an estimation-window SE.")
        if self.est_test is not None:
            notes.append(
                f"total_dollar_car_est: SE from the estimation window's dollar abnormal returns V(s-1) x AR(s) "
                f"(not Saha-Ferrell's published formula, which could not be obtained), over {self.nobs_est} "
                f"firm-event(s); {self.n_dropped_est} without that SE."
            )
        return notes

    def summary(self) -> str:
        head = [f"Firm-events: {self.nobs}"]
        text = render_text("Dollar abnormal returns: total value moved (z test)", head, self.table, [])
        if self.est_test is not None:
            text += "\n\n" + render_text(
                "Total value moved, SE from estimation-window dollar abnormal returns (z test)",
                [f"Firm-events: {self.nobs_est}"], self.est_test, [])
        return text + "\n\n" + render_text(
            "Cross-sectional t on the mean dollar CAR", [], self.mean_test, self._notes()
        )

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        return render_latex(self._tables(), self._notes(), caption=caption, label=label)


def dollar_test_arrays(d: np.ndarray, s: np.ndarray) -> tuple[CoefficientTable, CoefficientTable]:
    """The two tests on arrays of dollar CARs ``d`` and their standard errors ``s`` (complete)."""
    n = d.size
    if n < 2:
        raise InputError(f"{n} firm-event(s) with a dollar CAR and SE: the tests need at least 2")
    total = CoefficientTable(
        names=("total_dollar_car",), estimates=np.array([d.sum()]), cov=np.array([[np.sum(s**2)]]), df=None
    )
    var_mean = d.var(ddof=1) / n
    mean = CoefficientTable(
        names=("mean_dollar_car",), estimates=np.array([d.mean()]), cov=np.array([[var_mean]]), df=float(n - 1)
    )
    return total, mean


def dollar_test(
    frame: pl.DataFrame,
    *,
    dollar_car: str = "dollar_car",
    se: str = "dollar_se",
    market_value: str | None = None,
    units: str = "USD",
    estimation_se: str | None = None,
) -> DollarTestResult:
    """Test the cross-section of dollar CARs: the total value moved (z) and the mean (t(n-1)).

    ``frame`` holds one row per firm-event with the dollar CAR (V_{t0-1} x CAR) and its standard
    error (V_{t0-1} x se(CAR)); ``market_value`` optionally names V_{t0-1} to report the
    value-weighted CAR. Rows missing either value are dropped and counted. ``estimation_se``
    optionally names a column of estimation-window dollar SEs (``analysis.dollar.estimation_dollar_se``,
    ``dollar_se_est``): the total is then also tested with them, over the rows that have both.

    Example:

    >>> from analysis.dollar_test import dollar_test
    >>> res = dollar_test(frame, dollar_car="dollar_car", se="dollar_se", market_value="mcap")  # doctest: +SKIP
    >>> res.params["total_dollar_car"], res.pvalues["total_dollar_car"]  # doctest: +SKIP
    >>> print(res.summary())  # doctest: +SKIP
    """
    cols = [dollar_car, se, *([market_value] if market_value else []), *([estimation_se] if estimation_se else [])]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InputError(f"column(s) not in the frame: {', '.join(missing)}", field=missing[0])
    sub = frame.select(pl.col(c).cast(pl.Float64) for c in cols)
    main_cols = [c for c in cols if c != estimation_se]
    ok = pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in main_cols)
    complete = sub.filter(ok)
    d = complete[dollar_car].to_numpy()
    s = complete[se].to_numpy()
    if np.any(s <= 0):
        raise InputError(f"column {se!r} must hold positive standard errors", field=se)
    total, mean = dollar_test_arrays(d, s)
    total_value = None
    if market_value:
        v = complete[market_value].to_numpy()
        if np.any(v <= 0):
            raise InputError(f"column {market_value!r} must hold positive market values", field=market_value)
        total_value = float(v.sum())
    est_test, nobs_est, n_dropped_est = None, 0, 0
    if estimation_se:
        both = sub.filter(pl.col(dollar_car).is_not_null() & pl.col(dollar_car).is_finite()
                          & pl.col(estimation_se).is_not_null() & pl.col(estimation_se).is_finite())
        s_est = both[estimation_se].to_numpy()
        if np.any(s_est <= 0):
            raise InputError(f"column {estimation_se!r} must hold positive standard errors", field=estimation_se)
        # None, not an error, when no firm-event has one (counts that do not reach back over the
        # estimation windows): the other two tests stand without it, and the notes say so.
        est_test = estimation_total(both[dollar_car].to_numpy(), s_est) if both.height else None
        nobs_est, n_dropped_est = both.height, sub.height - both.height
    return DollarTestResult(
        table=total,
        mean_test=mean,
        nobs=int(d.size),
        n_dropped=sub.height - complete.height,
        total_value=total_value,
        units=units,
        est_test=est_test,
        nobs_est=nobs_est,
        n_dropped_est=n_dropped_est,
    )


def estimation_total(d: np.ndarray, s_est: np.ndarray) -> CoefficientTable:
    """The total dollar CAR with estimation-window dollar SEs: sum d, SE sqrt(sum s_est^2), normal."""
    return CoefficientTable(names=("total_dollar_car_est",), estimates=np.array([d.sum()]),
                            cov=np.array([[np.sum(s_est**2)]]), df=None)
