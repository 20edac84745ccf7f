"""Multi-factor model on any benchmarks: X = [1, r_b1, ..., r_bB] (e.g. SPY and SOXX, or Dimson's
SPY and SPY[-1] for a Tokyo listing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import LinearModel
from analysis.prediction_error import Plane


@dataclass(frozen=True)
class MultiFactor(LinearModel):
    """OLS of the firm's return on several benchmark returns (lags allowed)."""

    name: ClassVar[str] = "multifactor"
    aliases: ClassVar[tuple[str, ...]] = ("factor", "multi")

    @classmethod
    def check_benchmarks(cls, benchmarks: tuple[str, ...]) -> None:
        if not benchmarks:
            raise ValueError("model 'multifactor' needs at least one benchmark")
        if len(set(benchmarks)) != len(benchmarks):
            raise ValueError("duplicate benchmark tickers")

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("alpha", *(f"beta_{b}" for b in self.benchmarks))

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [None, *(series[b] for b in self.benchmarks)], None
