"""analysis.models: models are found by name, and a new model is one class plus one registration."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis import models
from analysis.engine import EventStudy
from analysis.models import REGISTRY, LinearModel, lagged, model_spec, register
from analysis.prediction_error import Plane
from tests.analysis.test_engine import synthetic


def test_registry_resolves_names_and_aliases() -> None:
    assert list(REGISTRY) == ["mean", "market_adjusted", "market", "multifactor", "ff3"]
    assert model_spec("Market_Model", ["SPY"]).name == "market"
    assert model_spec("fama_french").param_names == ("alpha", "beta_mkt_rf", "beta_smb", "beta_hml")
    assert model_spec("multi", ["SPY", "SPY[-1]"]).param_names == ("alpha", "beta_SPY", "beta_SPY[-1]")
    assert model_spec("market_adjusted").k == 0 and not model_spec("market_adjusted").has_intercept
    assert [m.reads_benchmark_returns for m in (model_spec(n) for n in REGISTRY)] == [
        False, True, True, True, False]
    with pytest.raises(ValueError, match="unknown model 'garch'; choose one of mean, market_adjusted"):
        model_spec("garch")
    with pytest.raises(ValueError, match="exactly one benchmark, got 2"):
        model_spec("market", ["SPY", "QQQ"])
    with pytest.raises(ValueError, match="already registered"):
        register(type(model_spec("market")))


@dataclass(frozen=True)
class Dimson(LinearModel):
    """Dimson (1979) market model: the benchmark today and yesterday, r = a + b0 r_m,t + b1 r_m,t-1."""

    name: ClassVar[str] = "dimson_test"

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("alpha", "beta_0", "beta_lag")

    def series(self) -> tuple[str, ...]:
        return (self.benchmarks[0], f"{self.benchmarks[0]}[-1]")

    def design(
        self, series: Mapping[str, np.ndarray], shape: tuple[int, int]
    ) -> tuple[list[Plane], np.ndarray | None]:
        return [None, *(series[s] for s in self.series())], None


@pytest.fixture
def dimson() -> Iterator[None]:
    register(Dimson)
    yield
    del REGISTRY[Dimson.name]


def test_a_new_model_is_one_class_and_one_registration(dimson: None) -> None:
    ret, events, _ = synthetic(6, seed=4, inject=0.02)
    study = EventStudy(ret, events, model="dimson_test", benchmarks=("MKT",))
    batch, ref = study.fit("batch"), study.fit("statsmodels")
    assert batch.params.columns[-3:] == ["alpha", "beta_0", "beta_lag"]
    np.testing.assert_allclose(batch.car["car"].to_numpy(), ref.car["car"].to_numpy(), atol=1e-10)
    np.testing.assert_allclose(batch.car["se"].to_numpy(), ref.car["se"].to_numpy(), rtol=1e-8)
    # Independent route: statsmodels OLS of the first firm on [1, m_t, m_t-1] over its estimation days.
    m = ret.filter(pl.col("ticker") == "MKT")["ret"].to_numpy()
    y = ret.filter(pl.col("ticker") == "F0000")["ret"].to_numpy()
    est = np.arange(400 - 250, 400 - 10)
    x = np.column_stack([np.ones(est.shape[0]), m[est], lagged(m, -1)[est]])
    ols = sm.OLS(y[est], x).fit()
    got = batch.params.filter(pl.col("event_id") == "e0000").select("alpha", "beta_0", "beta_lag").row(0)
    np.testing.assert_allclose(got, ols.params, rtol=1e-9)
    ar0 = y[400] - np.array([1.0, m[400], m[399]]) @ ols.params
    car0 = batch.car.filter((pl.col("event_id") == "e0000") & (pl.col("window") == "[0,0]"))
    assert car0["car"].item() == pytest.approx(ar0, rel=1e-9)
    x0 = np.array([1.0, m[400], m[399]])
    se0 = np.sqrt(ols.scale * (1 + x0 @ ols.normalized_cov_params @ x0))
    assert car0["se"].item() == pytest.approx(se0, rel=1e-9)
    # The same design through the built-in multifactor model on a lagged benchmark gives the same numbers.
    multi = EventStudy(ret, events, model="multifactor", benchmarks=("MKT", "MKT[-1]")).fit()
    np.testing.assert_allclose(multi.car["se"].to_numpy(), batch.car["se"].to_numpy(), rtol=1e-12)
    assert models.MODELS == ("mean", "market_adjusted", "market", "multifactor", "ff3")
