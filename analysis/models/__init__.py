"""Normal-return models, registered by name.

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

Adding a model: write ``analysis/models/<name>.py`` with a :class:`NormalReturnModel` subclass (a
:class:`LinearModel` when it is OLS on its design: only ``name``, ``param_names`` and ``design``), then
add one :func:`register` line below. The engine, the CLI's ``--model`` and the results find it by name.
"""

from __future__ import annotations

from analysis.models.base import (
    BatchFit,
    LinearModel,
    NormalReturnModel,
    RowFit,
    benchmark_tickers,
    lagged,
    parse_benchmark,
    stack,
)
from analysis.models.ff3 import FF3_FACTORS, FamaFrench3
from analysis.models.market import MarketModel
from analysis.models.market_adjusted import MarketAdjusted
from analysis.models.mean import MeanAdjusted
from analysis.models.multifactor import MultiFactor
from analysis.prediction_error import Plane

#: name -> model class, in registration order (the order the CLI lists them).
REGISTRY: dict[str, type[NormalReturnModel]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[NormalReturnModel]) -> type[NormalReturnModel]:
    """Make ``cls`` available by its ``name`` and ``aliases`` (ValueError on a clash)."""
    for key in (cls.name, *cls.aliases):
        if key in REGISTRY or key in _ALIASES:
            raise ValueError(f"model name {key!r} is already registered")
    REGISTRY[cls.name] = cls
    _ALIASES.update({a: cls.name for a in cls.aliases})
    return cls


register(MeanAdjusted)
register(MarketAdjusted)
register(MarketModel)
register(MultiFactor)
register(FamaFrench3)

#: Kept for callers that list the models; the registry is the source.
MODELS = tuple(REGISTRY)

#: A resolved model (the name under which results and the engine have always typed it).
ModelSpec = NormalReturnModel


def model_spec(model: str, benchmarks: tuple[str, ...] | list[str] = ("SPY",)) -> NormalReturnModel:
    """Resolve a model name (aliases allowed) and its benchmarks; ValueError on a bad combination."""
    key = model.lower()
    name = _ALIASES.get(key, key)
    if name not in REGISTRY:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name](tuple(benchmarks))


__all__ = [
    "FF3_FACTORS",
    "MODELS",
    "REGISTRY",
    "BatchFit",
    "LinearModel",
    "ModelSpec",
    "NormalReturnModel",
    "Plane",
    "RowFit",
    "benchmark_tickers",
    "lagged",
    "model_spec",
    "parse_benchmark",
    "register",
    "stack",
]
