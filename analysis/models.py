"""Normal-return models as design matrices on the relative-day grid.

Every model is written in one form so that a single batched OLS serves them all::

    y_model = r - offset            (offset: rf for FF3, the benchmark for market-adjusted, else 0)
    y_model = X b + e               (X: (N, L, k); k = 0 for market-adjusted)
    expected raw return = offset + X b,   AR = r - expected

==================  ===================================  ===========================================
model               X                                    offset
==================  ===================================  ===========================================
``mean``            [1]                                  0
``market_adjusted`` (none, k = 0)                        benchmark return
``market``          [1, r_m]                             0
``multifactor``     [1, r_b1, ..., r_bB] (any tickers)   0
``ff3``             [1, mkt_rf, smb, hml]                rf (so y is the excess return r - rf)
==================  ===================================  ===========================================

A benchmark may carry a lag in trading days of the grid: ``SPY[-1]`` is SPY's return on the previous
grid day. Why: markets that close before New York opens (Tokyo's session ends at 01:00-02:00 ET) price
a US day's news on their next session, so a same-day market model understates their beta
(non-synchronous trading). ``multifactor`` on ``SPY[-1]`` (or on ``SPY`` and ``SPY[-1]``, Dimson 1979)
is the model for 9984.T.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MODELS = ("mean", "market_adjusted", "market", "multifactor", "ff3")
_ALIASES = {
    "mean_adjusted": "mean",
    "constant_mean": "mean",
    "market_model": "market",
    "factor": "multifactor",
    "multi": "multifactor",
    "ff": "ff3",
    "fama_french": "ff3",
}
FF3_FACTORS = ("mkt_rf", "smb", "hml")
_LAGGED = re.compile(r"^(?P<ticker>.+)\[(?P<lag>[+-]?\d{1,3})\]$")


def parse_benchmark(name: str) -> tuple[str, int]:
    """``'SPY'`` -> ('SPY', 0); ``'SPY[-1]'`` -> ('SPY', -1): the ticker and its lag in grid days."""
    m = _LAGGED.match(name)
    if m is None:
        return name, 0
    return m["ticker"], int(m["lag"])


def benchmark_tickers(benchmarks: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The distinct tickers behind ``benchmarks`` (lags removed), in first-seen order."""
    return tuple(dict.fromkeys(parse_benchmark(b)[0] for b in benchmarks))


def lagged(series: np.ndarray, lag: int) -> np.ndarray:
    """``series`` shifted by ``lag`` grid days (negative: earlier days), NaN where no day exists."""
    out = np.full(series.shape, np.nan)
    if lag == 0:
        out[:] = series
    elif lag < 0 and -lag < series.shape[0]:
        out[-lag:] = series[:lag]
    elif lag > 0 and lag < series.shape[0]:
        out[:-lag] = series[lag:]
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: its name, the benchmark tickers it reads, and its parameter names."""

    name: str
    benchmarks: tuple[str, ...]
    param_names: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.param_names)

    @property
    def uses_factors(self) -> bool:
        return self.name == "ff3"

    @property
    def series(self) -> tuple[str, ...]:
        """Grid series the design needs (benchmark tickers or factor columns)."""
        if self.name == "ff3":
            return (*FF3_FACTORS, "rf")
        if self.name == "mean":
            return ()
        return self.benchmarks


def model_spec(model: str, benchmarks: tuple[str, ...] | list[str] = ("SPY",)) -> ModelSpec:
    """Resolve a model name (aliases allowed) and its benchmarks; ValueError on a bad combination."""
    name = _ALIASES.get(model.lower(), model.lower())
    bench = tuple(benchmarks)
    if name not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if name in ("market", "market_adjusted"):
        if len(bench) != 1:
            raise ValueError(f"model {name!r} takes exactly one benchmark, got {len(bench)}")
        params: tuple[str, ...] = ("alpha", f"beta_{bench[0]}") if name == "market" else ()
    elif name == "multifactor":
        if not bench:
            raise ValueError("model 'multifactor' needs at least one benchmark")
        if len(set(bench)) != len(bench):
            raise ValueError("duplicate benchmark tickers")
        params = ("alpha", *(f"beta_{b}" for b in bench))
    elif name == "ff3":
        params = ("alpha", *(f"beta_{f}" for f in FF3_FACTORS))
    else:  # mean
        params = ("alpha",)
    return ModelSpec(name=name, benchmarks=bench, param_names=params)


Plane = np.ndarray | None


def design(
    spec: ModelSpec, series: Mapping[str, np.ndarray], shape: tuple[int, int]
) -> tuple[list[Plane], np.ndarray | None]:
    """Regressor planes and the offset (N, L) for ``spec`` from grid-gathered series (each (N, L)).

    The design is returned as k planes (one (N, L) array per regressor) rather than one (N, L, k)
    array: the batch engine reduces plane by plane, and ``None`` stands for the intercept's column of
    ones so that it is never materialised. NaN in a series propagates; the engine treats such days as
    unusable. The offset is ``None`` when it is zero (no copy of y is needed then).
    """
    if spec.name == "mean":
        return [None], None
    if spec.name == "market_adjusted":
        return [], series[spec.benchmarks[0]]
    if spec.name in ("market", "multifactor"):
        return [None, *(series[b] for b in spec.benchmarks)], None
    # ff3: excess returns on the three factors
    return [None, *(series[f] for f in FF3_FACTORS)], series["rf"]


def stack(planes: list[Plane], shape: tuple[int, int]) -> np.ndarray:
    """The (N, L, k) design array of ``planes`` (ones for the intercept)."""
    if not planes:
        return np.empty((*shape, 0))
    return np.stack([np.ones(shape) if p is None else p for p in planes], axis=2)
