"""The event-day robustness table: each of its eight rows per window is statsmodels' OLS of that
specification's CARs on a constant (CAAR, SE, two-sided t(N-1) p); the spec's own row is the main table's
and is marked; the rows really differ (the choice of event day moves some t0s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.maintable import main_results
from analysis.robustness import event_day_robustness, robustness_summary
from analysis.spec import StudySpec
from analysis.study import load_inputs, run_spec
from carousel.db import connect
from ledger.load import import_file
from market.snapshot import load_snapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    with connect(tmp_path_factory.mktemp("rb") / "r.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        import_file(con, REPO / "data" / "events" / "timing_evidence.csv")
        load_snapshot(con)
        return load_inputs(con, ["SPY"])


def test_every_row_is_statsmodels_ols_on_a_constant(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    spec = StudySpec(windows=StudySpec().windows[:2])
    frame = event_day_robustness(deals, returns, spec)
    assert frame.height == 8 * len(spec.windows)
    for r in frame.iter_rows(named=True):
        res = run_spec(deals, returns, spec.with_(unknown_policy=r["unknown_policy"], date_basis=r["date_basis"]))
        cars = res.car.filter(pl.col("window") == r["window"])["car"].drop_nulls().to_numpy()
        ols = sm.OLS(cars, np.ones_like(cars)).fit()
        assert r["n"] == cars.size
        assert r["caar"] == pytest.approx(ols.params[0], rel=1e-12)
        assert r["se"] == pytest.approx(ols.bse[0], rel=1e-10)
        assert r["p"] == pytest.approx(ols.pvalues[0], rel=1e-8)
    # The choice of event day matters somewhere (else the table would test nothing).
    w = frame.filter(pl.col("window") == "[-1,+1]")
    assert w["caar"].n_unique() > 1


def test_the_main_row_is_the_main_table_and_is_marked(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    spec = StudySpec(windows=StudySpec().windows[:1])
    base = run_spec(deals, returns, spec)
    frame = event_day_robustness(deals, returns, spec, base=base)
    main = frame.filter(pl.col("main"))
    assert main.select("unknown_policy", "date_basis").rows() == [("same_day", "official")]
    ref = main_results(base).row(0, named=True)
    assert (main["caar"][0], main["se"][0], main["p"][0]) == (ref["caar"], ref["se"], ref["cross_sectional_t_p"])
    md = robustness_summary(frame).to_markdown()
    assert f"| same day | official | {ref['n']} | {100 * ref['caar']:.2f}" in md and "| main |" in md
