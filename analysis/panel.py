"""The abnormal-return panel: the hand-off between estimation and significance testing.

The estimation engine (:mod:`analysis.engine`) produces one :class:`ARPanel`; the test battery
(:mod:`analysis.significance`) consumes it. Everything is a dense NumPy array on a common grid of
relative trading days so that tests are whole-array operations (no per-event Python loops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.conventions import TEXTBOOK, Conventions


@dataclass(frozen=True)
class ARPanel:
    """Abnormal returns of N firm-events on L relative days.

    Attributes:
        keys: N rows, in panel row order; at least ``event_id``, ``ticker``, ``t0`` (Date).
        rel_days: (L,) int, contiguous relative days covering the estimation and event windows.
        is_est: (L,) bool, True on estimation-window days.
        ar: (N, L) float; residuals on estimation days, prediction errors (AR) on event days;
            NaN where the firm has no return (or the day is masked).
        sigma: (N,) residual standard deviation (ddof per ``conventions.sigma_ddof``).
        n_est: (N,) number of valid estimation observations M_i.
        n_params: number of regression parameters k (incl. intercept; 0 for market-adjusted,
            1 for mean-adjusted); an (N,) array per row when groups with different models are pooled
            (:mod:`analysis.pooled`).
        pe_factor: (N, L) diagonal prediction-error factor 1 + x_t'(X'X)^-1 x_t on event days
            (Var(AR_t) = sigma^2 * pe_factor); NaN on estimation days.
        x_event: (N, Le, k) regressors on the event days (Le = number of non-estimation days),
            for the cross-day covariance term of CAR variances; may have k = 0.
        xtx_inv: (N, k, k) (X'X)^-1 of each firm-event's estimation regression.
        conventions: the formula convention set used.
    """

    keys: pl.DataFrame
    rel_days: np.ndarray
    is_est: np.ndarray
    ar: np.ndarray
    sigma: np.ndarray
    n_est: np.ndarray
    n_params: int | np.ndarray
    pe_factor: np.ndarray
    x_event: np.ndarray
    xtx_inv: np.ndarray
    conventions: Conventions = TEXTBOOK

    @property
    def n(self) -> int:
        return int(self.ar.shape[0])

    def day_index(self, rel_day: int) -> int:
        """Column index of a relative day."""
        idx = int(rel_day - int(self.rel_days[0]))
        if not 0 <= idx < self.rel_days.shape[0]:
            raise KeyError(f"relative day {rel_day} is outside the panel grid")
        return idx
