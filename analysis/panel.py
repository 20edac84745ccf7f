"""The abnormal-return panel: the hand-off between estimation and significance testing.

The estimation engine (:mod:`analysis.engine`) produces one :class:`ARPanel`; the test battery
(:mod:`analysis.significance`) consumes it. Per-day arrays are held only on the event days (the
non-estimation days of the relative-day grid), where every window and every daily test reads them.

Why the estimation-window residuals are not a plain array: they are 245 of 261 columns, 2 GB at a
million firm-events, and only the tests that look at the estimation window (ranks, the sign test's
p-hat, the Brown-Warner and Kolari-Pynnonen dependence adjustments) read them. They sit in an
:class:`EstimationBlock`, which either holds them (reference routes, small panels built elsewhere) or
computes them on first use from the engine's return grid (the batch engine: the same arithmetic as
the fit, so the same bits) and then keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from analysis.conventions import TEXTBOOK, Conventions


class EstimationBlock:
    """Residuals of N firm-events on the L_est estimation days, (N, L_est), NaN where unused.

    Either ``values`` (held) or ``compute`` (called once, on first use, then held).
    """

    def __init__(
        self, values: np.ndarray | None = None, compute: Callable[[], np.ndarray] | None = None
    ) -> None:
        if (values is None) == (compute is None):
            raise ValueError("give exactly one of values= or compute=")
        self._values = values
        self._compute = compute

    @property
    def held(self) -> bool:
        """True once the residuals are in memory (held from the start or computed)."""
        return self._values is not None

    def array(self) -> np.ndarray:
        if self._values is None:
            assert self._compute is not None
            self._values = self._compute()
            self._compute = None
        return self._values

    def __getstate__(self) -> dict[str, object]:
        # A closure does not pickle (a result sent to another process): send the residuals themselves.
        return {"_values": self.array(), "_compute": None}


@dataclass(frozen=True)
class ARPanel:
    """Abnormal returns of N firm-events on a common grid of L relative days.

    Attributes:
        keys: N rows, in panel row order; at least ``event_id``, ``ticker``, ``t0`` (Date).
        rel_days: (L,) int, contiguous relative days covering the estimation and event windows.
        is_est: (L,) bool, True on estimation-window days.
        ar: (N, Le) prediction errors (ARs) on the Le event days ``event_days`` (the non-estimation
            days); NaN where the firm has no return (or the day is masked).
        sigma: (N,) residual standard deviation (ddof per ``conventions.sigma_ddof``).
        n_est: (N,) number of valid estimation observations M_i.
        n_params: number of regression parameters k (incl. intercept; 0 for market-adjusted,
            1 for mean-adjusted); an (N,) array per row when groups with different models are pooled
            (:mod:`analysis.pooled`).
        pe_factor: (N, Le) diagonal prediction-error factor 1 + x_t'(X'X)^-1 x_t on the event days
            (Var(AR_t) = sigma^2 * pe_factor).
        x_event: (N, Le, k) regressors on the event days, for the cross-day covariance term of CAR
            variances; may have k = 0.
        xtx_inv: (N, k, k) (X'X)^-1 of each firm-event's estimation regression.
        estimation: the estimation-window residuals (N, L_est) (see :class:`EstimationBlock`).
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
    estimation: EstimationBlock
    conventions: Conventions = TEXTBOOK
    _event_cols: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_event_cols", np.flatnonzero(~np.asarray(self.is_est, dtype=bool)))
        le = self._event_cols.shape[0]
        if self.ar.ndim != 2 or self.ar.shape[1] != le or self.pe_factor.shape != self.ar.shape:
            raise ValueError(
                f"ar and pe_factor must be (N, {le}) arrays on the event days; got {self.ar.shape} "
                f"and {self.pe_factor.shape}"
            )

    @classmethod
    def from_grid(cls, *, ar: np.ndarray, pe_factor: np.ndarray, **fields: object) -> ARPanel:
        """A panel from (N, L) arrays on the whole grid (estimation residuals in ``ar``'s estimation
        columns; ``pe_factor`` is read on the event days only). For small panels built outside the
        engine (reference implementations, GARCH)."""
        is_est = np.asarray(fields["is_est"], dtype=bool)
        return cls(
            ar=np.ascontiguousarray(ar[:, ~is_est]),
            pe_factor=np.ascontiguousarray(pe_factor[:, ~is_est]),
            estimation=EstimationBlock(values=np.ascontiguousarray(ar[:, is_est])),
            **fields,  # type: ignore[arg-type]
        )

    @property
    def n(self) -> int:
        return int(self.ar.shape[0])

    @property
    def event_days(self) -> np.ndarray:
        """(Le,) the relative days of ``ar``'s columns."""
        return self.rel_days[self._event_cols]

    @property
    def event_cols(self) -> np.ndarray:
        """(Le,) grid column of each event-day column (positions in ``rel_days``)."""
        return self._event_cols

    def estimation_residuals(self) -> np.ndarray:
        """(N, L_est) residuals on the estimation days (computed on first use for engine panels)."""
        return self.estimation.array()

    def full_ar(self) -> np.ndarray:
        """(N, L) residuals and ARs on the whole grid, in grid order (what the rank tests rank)."""
        out = np.empty((self.n, self.rel_days.shape[0]))
        out[:, self.is_est] = self.estimation_residuals()
        out[:, self._event_cols] = self.ar
        return out

    def day_index(self, rel_day: int) -> int:
        """Column of a relative event day in ``ar`` / ``pe_factor`` / ``x_event``.

        KeyError for a day outside the grid, ValueError for an estimation-window day."""
        idx = int(rel_day - int(self.rel_days[0]))
        if not 0 <= idx < self.rel_days.shape[0]:
            raise KeyError(f"relative day {rel_day} is outside the panel grid")
        if self.is_est[idx]:
            raise ValueError("requested days overlap the estimation window")
        return int(np.searchsorted(self._event_cols, idx))

    def window_cols(self, start: int, end: int) -> np.ndarray:
        """Event-day columns of the relative days ``start..end`` (inclusive); the errors of
        :meth:`day_index`, the estimation-window overlap checked over the whole range first."""
        lo, hi = int(self.rel_days[0]), int(self.rel_days[-1])
        for d in (start, end):
            if not lo <= d <= hi:
                raise KeyError(f"relative day {d} is outside the panel grid")
        if self.is_est[start - lo : end - lo + 1].any():
            raise ValueError("requested days overlap the estimation window")
        return np.searchsorted(self._event_cols, np.arange(start - lo, end - lo + 1))
