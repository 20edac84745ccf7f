"""Mean-adjusted returns: the normal return is the firm's own estimation-window mean, X = [1]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import LinearModel
from analysis.prediction_error import Plane


@dataclass(frozen=True)
class MeanAdjusted(LinearModel):
    """AR = r - mean(r over the estimation window). A benchmark only sets the trading-day grid."""

    name: ClassVar[str] = "mean"
    aliases: ClassVar[tuple[str, ...]] = ("mean_adjusted", "constant_mean")
    reads_benchmark_returns: ClassVar[bool] = False

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("alpha",)

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [None], None
