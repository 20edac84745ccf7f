"""Market-adjusted returns: AR = r - r_m, nothing estimated (k = 0).

sigma is the sample standard deviation of the estimation-window abnormal returns (demeaned, ddof 1),
and Var(AR) = sigma^2: with no estimated parameters there is no estimation error to add, so the
prediction-error factors are 1 per day and L per window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import BatchFit, NormalReturnModel, RowFit
from analysis.prediction_error import Plane


@dataclass(frozen=True)
class MarketAdjusted(NormalReturnModel):
    """The benchmark's return is the normal return (an offset, no regressors)."""

    name: ClassVar[str] = "market_adjusted"

    @classmethod
    def check_benchmarks(cls, benchmarks: tuple[str, ...]) -> None:
        if len(benchmarks) != 1:
            raise ValueError(f"model {cls.name!r} takes exactly one benchmark, got {len(benchmarks)}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return ()

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [], series[self.benchmarks[0]]

    def fit(
        self, planes: list[Plane], y: np.ndarray, use: np.ndarray, ok: np.ndarray, ddof: int
    ) -> BatchFit:
        n = y.shape[0]
        m = use.sum(axis=1)
        e_est = np.where(use, y, 0.0)
        mean = e_est.sum(axis=1) / np.maximum(m, 1)
        dev = np.where(use, y - mean[:, None], 0.0)
        ssr = np.einsum("nl,nl->n", dev, dev)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma2 = ssr / (m - ddof)
        return BatchFit(
            b=np.empty((n, 0)),
            a=np.empty((n, 0, 0)),
            sigma2=sigma2,
            bse=np.empty((n, 0)),
            fitted=np.zeros(y.shape),
            singular=np.zeros(n, dtype=bool),
        )

    def fit_one(self, x: np.ndarray, y: np.ndarray) -> RowFit:
        return RowFit(
            b=np.empty(0),
            a=np.empty((0, 0)),
            ssr=float(((y - y.mean()) ** 2).sum()),
            resid=y.copy(),
            predict=lambda xe: np.zeros(xe.shape[0]),
        )

    def prediction_matrix_one(self, x_pe: np.ndarray, m_fit: int) -> np.ndarray:
        return np.empty((0, 0))
