"""estudy2 vignette conformance: every published value in data/conformance/estudy2/README.md."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from estudy2_reference import EST_START, EVENT_END, estudy2_panel, load_rates

from analysis import significance as S
from analysis.conventions import ESTUDY2, TEXTBOOK
from analysis.panel import ARPanel

DAYS = range(5)  # 2020-03-16 .. 2020-03-20 are relative days 0..4
PUBLISHED = {
    "aar": [0.02329740, -0.03157867, -0.01617850, 0.07672027, 0.05840545],
    "patell_z": [2.5507399, -2.9495613, 0.3283654, 8.4216222, 6.3196352],
    "bmp_t": [1.20471169, -1.17531339, 0.07606284, 2.16657728, 8.65212561],
    "cross_sectional_t": [1.3941497, -1.2769075, -0.4023135, 1.7958275, 5.1233281],
    "generalized_sign": [1.1516761, 0.3957301, 1.1516761, 1.9076220, 2.6635680],
    "corrado_rank": [0.7962064, -0.1857202, 1.0205417, 2.1127972, 2.9255529],
}


@pytest.fixture(scope="module")
def panel() -> ARPanel:
    return estudy2_panel(conventions=ESTUDY2)


def test_panel_setup(panel: ARPanel) -> None:
    n_est = dict(zip(panel.keys["ticker"].to_list(), panel.n_est.tolist(), strict=True))
    assert n_est == {
        "AMZN": 240,
        "ZM": 227,
        "UBER": 212,
        "NFLX": 240,
        "SHOP": 240,
        "FB": 240,
        "UPWK": 240,
    }
    assert int(panel.is_est.sum()) == 240 and int((~panel.is_est).sum()) == 5
    assert panel.keys["t0"].unique().to_list() == [dt.date(2020, 3, 16)]


@pytest.mark.parametrize("test", sorted(PUBLISHED))
def test_daily_published_values(panel: ARPanel, test: str) -> None:
    fn = S.aar if test == "aar" else S.TESTS[test]
    got = np.array([fn(panel, day=d).statistic[0] for d in DAYS])
    # Published figures are rounded to 7-8 decimals: 1e-6 absolute is the requested agreement.
    np.testing.assert_allclose(got, PUBLISHED[test], rtol=0, atol=1e-6)


def test_car_tests_published(panel: ARPanel) -> None:
    w = (0, 4)
    assert S.lamb(panel, window=w).statistic[0] == pytest.approx(3.846464, abs=1e-6)
    assert S.brown_warner_1985(panel, window=w).statistic[0] == pytest.approx(3.948093, abs=1e-6)
    # Published to 4 decimals only.
    assert S.corrado_rank(panel, window=w).statistic[0] == pytest.approx(3.0537, abs=5e-5)


def test_textbook_corrado_day1() -> None:
    p = estudy2_panel(conventions=ESTUDY2)
    tb = S.corrado_rank(p, day=0, conventions=TEXTBOOK).statistic[0]
    assert tb == pytest.approx(0.8165955, abs=1e-6)
    # and the estudy2 inflation is what separates the two
    assert S.corrado_rank(p, day=0).statistic[0] == pytest.approx(0.7962064, abs=1e-6)


def test_battery_frame_carries_published_values(panel: ARPanel) -> None:
    b = S.battery(panel, (0, 4))
    f = b.to_frame()
    assert f.columns == ["test", "window", "kind", "statistic", "p_value", "n"]
    assert b.stat("patell_z", "[+1,+1]") == pytest.approx(-2.9495613, abs=1e-6)
    assert b.stat("lamb", "[0,+4]") == pytest.approx(3.846464, abs=1e-6)
    assert b.stat("corrado_rank", "[+4,+4]") == pytest.approx(2.9255529, abs=1e-6)
    assert f.height == len(S.TESTS) * 6
    # deterministic: same inputs give an identical frame
    assert S.battery(panel, (0, 4)).to_frame().equals(f)


def _engine_panel() -> ARPanel:
    engine = pytest.importorskip("analysis.engine")
    wide = load_rates().filter(pl.col("date") >= EST_START, pl.col("date") <= EVENT_END)
    long = wide.unpivot(index="date", variable_name="ticker", value_name="ret").drop_nulls("ret")
    tickers = [c for c in wide.columns if c not in ("date", "GSPC")]
    events = pl.DataFrame(
        {
            "event_id": [f"estudy2-{t}" for t in tickers],
            "ticker": tickers,
            "t0": [dt.date(2020, 3, 16)] * 7,
        }
    )
    study = engine.EventStudy(
        long,
        events,
        model="market",
        benchmarks=("GSPC",),
        estimation=(-240, -1),
        windows=[(0, 4)],
        min_obs=100,
        conventions=ESTUDY2,
    )
    panel: ARPanel = study.fit().panel
    return panel


def _aligned(ref: ARPanel, other: ARPanel) -> np.ndarray:
    ids = ref.keys["event_id"].to_list()
    return np.array([ids.index(e) for e in other.keys["event_id"].to_list()])


def test_engine_matches_reference_estimates(panel: ARPanel) -> None:
    eng = _engine_panel()
    idx = _aligned(panel, eng)
    np.testing.assert_array_equal(eng.rel_days, panel.rel_days)
    np.testing.assert_array_equal(eng.n_est, panel.n_est[idx])
    np.testing.assert_allclose(eng.full_ar(), panel.full_ar()[idx], rtol=0, atol=1e-10)
    np.testing.assert_allclose(eng.sigma, panel.sigma[idx], rtol=0, atol=1e-10)


def test_engine_matches_reference_prediction_error(panel: ARPanel) -> None:
    eng = _engine_panel()
    idx = _aligned(panel, eng)
    np.testing.assert_allclose(eng.pe_factor, panel.pe_factor[idx], rtol=0, atol=1e-10)
    np.testing.assert_allclose(eng.xtx_inv, panel.xtx_inv[idx], rtol=0, atol=1e-10)
    np.testing.assert_allclose(eng.x_event, panel.x_event[idx], rtol=0, atol=1e-12)


@pytest.mark.parametrize("test", sorted(PUBLISHED))
def test_engine_panel_reproduces_published_values(test: str) -> None:
    eng = _engine_panel()
    fn = S.aar if test == "aar" else S.TESTS[test]
    got = np.array([fn(eng, day=d).statistic[0] for d in DAYS])
    np.testing.assert_allclose(got, PUBLISHED[test], rtol=0, atol=1e-6)
    assert S.lamb(eng, window=(0, 4)).statistic[0] == pytest.approx(3.846464, abs=1e-6)
    assert S.brown_warner_1985(eng, window=(0, 4)).statistic[0] == pytest.approx(3.948093, abs=1e-6)
