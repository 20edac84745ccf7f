"""The GARCH(1,1) market model: r = alpha + beta r_m + e, e with GARCH(1,1) conditional variance.

Registered so that ``--model garch`` resolves, is listed and is validated like every other model,
but it is not estimated by the batch engine. Why: the engine's variance contract is
sigma^2 x f(A, x_t), fixed by the regressors, while GARCH's event-day variance s_t^2 is filtered from
the realised abnormal returns of the days before (s_t^2 = omega + a e_{t-1}^2 + b s_{t-1}^2), and
its quasi-likelihood fit is a per-firm-event optimisation over an unbroken sequence of days (the
engine masks other events' days out of the estimation window). :func:`analysis.study.run_study`
hands ``garch`` to :func:`analysis.volatility.garch_study`, which returns the same result type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import BatchFit, NormalReturnModel, RowFit
from analysis.prediction_error import Plane

#: Parameter names (decimals): mean intercept and market beta, then omega, ARCH and GARCH terms.
GARCH_PARAMS = ("alpha", "beta_market", "omega", "arch_alpha", "garch_beta")

_ROUTE = (
    "model 'garch' is fitted per firm-event by analysis.volatility.garch_study "
    "(analysis.study.run_study dispatches there), not by the batch engine"
)


@dataclass(frozen=True)
class GarchMarketModel(NormalReturnModel):
    """The market model with GARCH(1,1) errors on one benchmark (``arch``, normal QMLE)."""

    name: ClassVar[str] = "garch"
    aliases: ClassVar[tuple[str, ...]] = ("garch_market", "garch11")
    #: Estimated outside the batch engine (see the module docstring).
    batch_engine: ClassVar[bool] = False

    @classmethod
    def check_benchmarks(cls, benchmarks: tuple[str, ...]) -> None:
        if len(benchmarks) != 1:
            raise ValueError(f"model {cls.name!r} takes exactly one benchmark, got {len(benchmarks)}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return GARCH_PARAMS

    def design(self, series: Mapping[str, np.ndarray]) -> tuple[list[Plane], np.ndarray | None]:
        return [None, series[self.benchmarks[0]]], None

    def fit(
        self, planes: list[Plane], y: np.ndarray, use: np.ndarray, ok: np.ndarray, ddof: int
    ) -> BatchFit:
        raise ValueError(_ROUTE)

    def fit_one(self, x: np.ndarray, y: np.ndarray) -> RowFit:
        raise ValueError(_ROUTE)
