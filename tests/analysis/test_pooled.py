"""Pooling estimation groups (analysis.pooled) and the per-listing benchmark groups of a StudySpec.

Independent routes: a study split into two groups with the same model must equal the unsplit study
(every panel array and every test of the battery); with 9984.T on SPY and SPY[-1], its rows must equal
a standalone multifactor study, and the pooled Patell Z must equal the formula evaluated by hand with
each row's own number of parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis.engine import EventStudy
from analysis.pooled import pool_results
from analysis.spec import BenchmarkGroup, StudySpec, dimson
from analysis.study import load_inputs, run_spec, study_events
from analysis.window import DEFAULT_WINDOWS, EventWindow
from carousel.db import connect
from core.errors import InputError
from ledger.load import import_file
from market.snapshot import load_snapshot

REPO = Path(__file__).resolve().parents[2]
WINDOWS = DEFAULT_WINDOWS  # the masked spans depend on the windows: the README numbers need these


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    with connect(tmp_path_factory.mktemp("p") / "p.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        load_snapshot(con)
        return load_inputs(con, ["SPY"])


def _fit(returns: pl.DataFrame, events: pl.DataFrame, all_events: pl.DataFrame, model: str,
         bench: tuple[str, ...]) -> EventStudy:
    return EventStudy(returns.select("ticker", "date", "ret"), events.select("event_id", "deal_id", "ticker", "t0"),
                      model=model, benchmarks=bench, windows=WINDOWS, other_events=all_events.select("ticker", "t0"))


def test_a_split_with_one_model_pools_back_to_the_unsplit_study(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    ev = study_events(deals)[0]
    whole = _fit(returns, ev, ev, "market", ("SPY",)).fit()
    mask = pl.col("ticker").is_in(["NVDA", "ORCL", "9984.T"])
    parts = [_fit(returns, ev.filter(mask), ev, "market", ("SPY",)).fit(),
             _fit(returns, ev.filter(~mask), ev, "market", ("SPY",)).fit()]
    pooled = pool_results(parts)
    assert pooled.nobs == whole.nobs == 40
    assert pooled.panel.keys["event_id"].to_list() == whole.panel.keys["event_id"].to_list()
    for name in ("ar", "sigma", "n_est", "pe_factor", "x_event", "xtx_inv"):
        np.testing.assert_allclose(getattr(pooled.panel, name), getattr(whole.panel, name), rtol=1e-12, atol=0)
    assert pooled.car.equals(whole.car) and pooled.excluded.equals(whole.excluded)
    for w in WINDOWS:
        a, b = pooled.tests(w).to_frame(), whole.tests(w).to_frame()
        assert a["test"].to_list() == b["test"].to_list()
        np.testing.assert_allclose(a["statistic"].to_numpy(), b["statistic"].to_numpy(), rtol=1e-10)


def test_softbank_gets_the_dimson_regression_by_default(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    spec = StudySpec(windows=WINDOWS)
    tickers = study_events(deals)[0]["ticker"].unique().to_list()
    assert spec.groups(tickers) == (BenchmarkGroup("market", ("SPY",)),
                                    BenchmarkGroup("multifactor", ("SPY", "SPY[-1]"), ("9984.T",)))
    assert spec.with_(lag_non_us_listings=False).groups(tickers) == (BenchmarkGroup("market", ("SPY",)),)
    assert spec.with_(model="ff3").groups(tickers) == (BenchmarkGroup("ff3", ("SPY",)),)
    pooled = run_spec(deals, returns, spec)
    ev = study_events(deals)[0]
    sb = ev.filter(pl.col("ticker") == "9984.T")
    alone = _fit(returns, sb, ev, "multifactor", ("SPY", "SPY[-1]")).fit()
    got = pooled.car.filter(pl.col("ticker") == "9984.T")
    assert got.equals(alone.car)
    # the example: softbank-openai-2025-03-31 [-5,+5] is +8.2% on the lagged model (-10.4% same-day)
    row = got.filter(event_id="softbank-openai-2025-03-31:9984.T", window="[-5,+5]").row(0, named=True)
    assert row["car"] == pytest.approx(0.0823, abs=5e-5)
    assert pooled.params.filter(ticker="9984.T")["beta_SPY[-1]"].min() > 1.0
    assert pooled.params.filter(ticker="NVDA")["beta_SPY[-1]"].null_count() == pooled.params.filter(ticker="NVDA").height
    # Patell Z on [-1,+1] from the pooled panel equals the formula with each row's own k (2 or 3)
    w = EventWindow(-1, 1)
    car = pooled.car.filter(window=w.label).drop_nulls("car")
    k = np.where(car["ticker"].to_numpy() == "9984.T", 3, 2)
    m = car.join(pooled.sigma.select("event_id", "n_est"), on="event_id")["n_est"].to_numpy().astype(float)
    z = (car["car"] / car["se"]).sum() / np.sqrt(((m - k) / (m - k - 2)).sum())
    battery = pooled.tests(w).to_frame().filter(test="patell_z", window=w.label)
    assert battery["statistic"].item() == pytest.approx(z, rel=1e-10)
    assert battery["p_value"].item() == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-8)
    # the cross-sectional t on the pooled CARs: scipy's one-sample t test
    ttest = stats.ttest_1samp(car["car"].to_numpy(), 0.0)
    cs = pooled.tests(w).to_frame().filter(test="cross_sectional_t", window=w.label)
    assert cs["statistic"].item() == pytest.approx(ttest.statistic, rel=1e-10)


def test_spec_rules() -> None:
    assert dimson(("SPY",)) == ("SPY", "SPY[-1]")
    assert dimson(("SPY", "SPY[-1]")) == ("SPY", "SPY[-1]")
    assert dimson(("SPY", "SOXX")) == ("SPY", "SPY[-1]", "SOXX", "SOXX[-1]")
    spec = StudySpec(benchmarks_by_ticker=(("NVDA", ("SOXX",)), ("9984.T", ("QQQ[-1]",))))
    assert spec.groups(["AMD", "NVDA", "9984.T"]) == (
        BenchmarkGroup("market", ("SPY",)),
        BenchmarkGroup("market", ("SOXX",), ("NVDA",)),
        BenchmarkGroup("multifactor", ("QQQ[-1]",), ("9984.T",)),
    )
    assert spec.extra_tickers() == ["QQQ", "SOXX", "SPY"]
    assert StudySpec(windows=(EventWindow(-5, 5),)).main_window == EventWindow(-5, 5)
    with pytest.raises(InputError, match="overlaps the estimation window") as err:
        StudySpec(windows=(EventWindow(-20, 0),))
    assert err.value.field == "windows"
    with pytest.raises(InputError, match="exactly one benchmark"):
        StudySpec(benchmarks=("SPY", "QQQ"))
    with pytest.raises(InputError, match="unknown method"):
        StudySpec(method="ols")
