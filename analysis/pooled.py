"""Pool the results of several estimation groups into one event-study result.

Why: a study specification may estimate some listings with another model (9984.T on SPY and SPY[-1],
see :mod:`analysis.spec`), but the cross-sectional tests, the CAAR and every table are about one sample
of firm-events. Each group is fitted by the engine on the same relative-day grid (same estimation and
event windows, same trading-day grid), so its panel rows can be stacked: every per-firm quantity (AR,
sigma, M_i, prediction-error factors, the regressors and (X'X)^-1 for the CAR variance) belongs to its
row, and a smaller design is padded with zero regressors, which add nothing to x'(X'X)^-1x. The number
of parameters k becomes per row where the groups differ (Patell's (M_i-k)/(M_i-k-2) uses each row's k).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.panel import ARPanel, EstimationBlock
from analysis.results import EventStudyResult


def _pad(a: np.ndarray, k: int, axes: tuple[int, ...]) -> np.ndarray:
    width = [(0, 0)] * a.ndim
    for ax in axes:
        width[ax] = (0, k - a.shape[ax])
    return np.pad(a, width)


def pool_results(parts: Sequence[EventStudyResult]) -> EventStudyResult:
    """One result whose rows are the union of ``parts``' firm-events, sorted by event_id.

    The first part's model names the pooled result (it is the default group); ``params``/``bse`` carry
    every group's parameter columns (null where a row's model has no such parameter). ValueError if the
    parts differ in grid, windows, estimation window, conventions or method, or share a firm-event.
    """
    if not parts:
        raise ValueError("nothing to pool")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for p in parts[1:]:
        same = (
            p.estimation == first.estimation
            and tuple(p.windows) == tuple(first.windows)
            and p.method == first.method
            and p.conventions == first.conventions
            and p.mask_other_events == first.mask_other_events
            and np.array_equal(p.panel.rel_days, first.panel.rel_days)
            and np.array_equal(p.panel.is_est, first.panel.is_est)
        )
        if not same:
            raise ValueError("results to pool must share windows, estimation, method and conventions")
    ids = pl.concat([p.panel.keys["event_id"] for p in parts])
    if ids.n_unique() != ids.len():
        raise ValueError("a firm-event appears in two groups")
    order = np.argsort(ids.to_numpy(), kind="stable")
    k = max(p.panel.x_event.shape[-1] for p in parts)
    panels = [p.panel for p in parts]
    n_params = np.concatenate([np.broadcast_to(np.asarray(q.n_params, dtype=np.int64), (q.n,)) for q in panels])
    panel = ARPanel(
        keys=pl.concat([q.keys for q in panels], how="vertical_relaxed")[order],
        rel_days=first.panel.rel_days.copy(),
        is_est=first.panel.is_est.copy(),
        ar=np.concatenate([q.ar for q in panels])[order],
        sigma=np.concatenate([q.sigma for q in panels])[order],
        n_est=np.concatenate([q.n_est for q in panels])[order],
        n_params=int(n_params[0]) if np.all(n_params == n_params[0]) else n_params[order],
        pe_factor=np.concatenate([q.pe_factor for q in panels])[order],
        x_event=np.concatenate([_pad(q.x_event, k, (2,)) for q in panels])[order],
        xtx_inv=np.concatenate([_pad(q.xtx_inv, k, (1, 2)) for q in panels])[order],
        estimation=EstimationBlock(
            compute=lambda: np.concatenate([q.estimation_residuals() for q in panels])[order]
        ),
        conventions=first.panel.conventions,
    )

    def stack(name: str) -> pl.DataFrame:
        frames = [getattr(p, name) for p in parts]
        return pl.concat(frames, how="diagonal_relaxed").sort("event_id", maintain_order=True)

    return EventStudyResult(
        model=first.model,
        method=first.method,
        estimation=first.estimation,
        windows=first.windows,
        conventions=first.conventions,
        panel=panel,
        params=stack("params"),
        bse=stack("bse"),
        sigma=stack("sigma"),
        car=stack("car"),
        excluded=stack("excluded"),
        mask_other_events=first.mask_other_events,
    )
