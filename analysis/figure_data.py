"""The data behind the paper figures: CAR and CAAR paths with their standard errors (pure, no matplotlib).

Why a module of its own: the main job computes each figure's data in its own process and hands only the
data to a worker process that draws and saves the figure (carousel.figure_pool), so this maths must be
importable without matplotlib (about half a second of a cold ``carousel run``). The figures themselves
are in :mod:`analysis.plots`, which re-exports these functions.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.panel import ARPanel
from analysis.prediction_error import car_variance_factor


def car_path(panel: ARPanel, row: int, start: int, end: int) -> pl.DataFrame:
    """CAR from ``start`` to each day up to ``end`` for one firm-event, with the exact prediction-error
    standard error (including the cross-day covariance term): Var = sigma^2 (L + s'(X'X)^-1 s)."""
    ev_days = panel.event_days
    sel = (ev_days >= start) & (ev_days <= end)
    days = ev_days[sel]
    ar = panel.ar[row, sel]
    car = np.cumsum(ar)
    x = panel.x_event[row][sel]  # (L, k)
    s = np.cumsum(x, axis=0)  # s_t = sum of regressor rows up to t
    planes = [s[None, :, j] for j in range(s.shape[1])]
    factor = car_variance_factor(panel.xtx_inv[row][None], planes, np.arange(1, len(days) + 1))[0]
    se = panel.sigma[row] * np.sqrt(factor)
    return pl.DataFrame({"rel_day": days.astype(np.int64), "car": car, "se": se})


def caar_path(panel: ARPanel, start: int, end: int) -> pl.DataFrame:
    """CAAR from ``start`` to each day up to ``end`` with its cross-sectional standard error: for each
    day, the mean and sd/sqrt(n) (ddof 1) of the firm-events' CARs over [start, day], over the
    firm-events with an AR on every day so far (the cross-sectional t test's inputs)."""
    ev_days = panel.event_days
    sel = (ev_days >= start) & (ev_days <= end)
    car = np.cumsum(panel.ar[:, sel], axis=1)  # NaN from the first missing day on
    ok = np.isfinite(car)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, car, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, car - mean, 0.0)
        sd = np.sqrt((dev**2).sum(axis=0) / (n - 1))
        se = np.where(n > 1, sd / np.sqrt(n), np.nan)
    return pl.DataFrame(
        {"rel_day": ev_days[sel].astype(np.int64), "caar": mean, "se": se, "n": n.astype(np.int64)}
    ).with_columns(pl.col("caar").fill_nan(None), pl.col("se").fill_nan(None))


__all__ = ["caar_path", "car_path"]
