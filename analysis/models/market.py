"""The market model: r = alpha + beta r_m + e on one benchmark (default SPY), X = [1, r_m]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import LinearModel
from analysis.prediction_error import Plane


@dataclass(frozen=True)
class MarketModel(LinearModel):
    """OLS of the firm's return on one benchmark's (possibly lagged: ``SPY[-1]``) return."""

    name: ClassVar[str] = "market"
    aliases: ClassVar[tuple[str, ...]] = ("market_model",)

    @classmethod
    def check_benchmarks(cls, benchmarks: tuple[str, ...]) -> None:
        if len(benchmarks) != 1:
            raise ValueError(f"model {cls.name!r} takes exactly one benchmark, got {len(benchmarks)}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("alpha", f"beta_{self.benchmarks[0]}")

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [None, series[self.benchmarks[0]]], None
