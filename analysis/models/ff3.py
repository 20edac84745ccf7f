"""Fama-French three factors: r - rf = alpha + b1 mkt_rf + b2 smb + b3 hml + e (the shipped daily
factors, :mod:`analysis.factors`); expected raw return = rf + X b."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.models.base import LinearModel
from analysis.prediction_error import Plane

FF3_FACTORS = ("mkt_rf", "smb", "hml")


@dataclass(frozen=True)
class FamaFrench3(LinearModel):
    """Excess returns on the three factors; days without factors exclude the firm-event."""

    name: ClassVar[str] = "ff3"
    aliases: ClassVar[tuple[str, ...]] = ("ff", "fama_french")
    reads_benchmark_returns: ClassVar[bool] = False
    needs_factors: ClassVar[bool] = True

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("alpha", *(f"beta_{f}" for f in FF3_FACTORS))

    def series(self) -> tuple[str, ...]:
        return (*FF3_FACTORS, "rf")

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [None, *(series[f] for f in FF3_FACTORS)], series["rf"]
