"""The main results table: CAAR, its SE and 95% interval agree with statsmodels' OLS of the CARs on a
constant; every test's p-value is the battery's; windows in numeric order; the appendix footnotes
every blank CAR with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.maintable import (
    TEST_NAMES,
    appendix_summary,
    appendix_table,
    main_results,
    main_summary,
)
from analysis.significance import TESTS
from analysis.spec import StudySpec
from analysis.study import load_inputs, run_spec
from carousel.db import connect
from ledger.load import import_file
from market.snapshot import load_snapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with connect(tmp_path_factory.mktemp("m") / "m.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        load_snapshot(con)
        deals, returns = load_inputs(con, ["SPY"])
    return run_spec(deals, returns, StudySpec())


def test_caar_se_and_interval_are_statsmodels_ols_on_a_constant(res) -> None:  # type: ignore[no-untyped-def]
    frame = main_results(res)
    assert frame["window"].to_list() == ["[-5,+5]", "[-1,+1]", "[0,0]", "[0,+10]"]
    for row in frame.iter_rows(named=True):
        car = res.car.filter(window=row["window"])["car"].drop_nulls().to_numpy()
        ols = sm.OLS(car, np.ones((car.size, 1))).fit()
        lo, hi = ols.conf_int(0.05)[0]
        assert row["n"] == car.size
        assert row["caar"] == pytest.approx(ols.params[0], rel=1e-12)
        assert row["se"] == pytest.approx(ols.bse[0], rel=1e-12)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))
        assert row["cross_sectional_t_p"] == pytest.approx(ols.pvalues[0], rel=1e-9)
        assert row["pct_positive"] == pytest.approx(100 * (car > 0).mean())
        battery = res.tests((int(row["window"].strip("[]").split(",")[0]),
                             int(row["window"].strip("[]").split(",")[1])), daily=False).to_frame()
        battery = battery.filter(window=row["window"])
        for name in TESTS:
            want = battery.filter(test=name)
            assert row[name] == pytest.approx(want["statistic"].item(), rel=1e-12)
            assert row[f"{name}_p"] == pytest.approx(want["p_value"].item(), rel=1e-12)
    # the shipped [-1,+1] numbers (README): CAAR 2.95%, 39 firm-events, cross-sectional p 0.044
    m1 = frame.filter(window="[-1,+1]").row(0, named=True)
    assert (m1["n"], round(m1["caar"] * 100, 2), round(m1["cross_sectional_t_p"], 3)) == (39, 2.95, 0.044)


def test_the_page_shows_every_test_and_stars(res) -> None:  # type: ignore[no-untyped-def]
    text = main_summary(main_results(res)).to_markdown()
    for label in TEST_NAMES.values():
        assert f"| {label} |" in text
    assert "| CAAR % | 3.45\\* | 2.95\\*\\* | 3.34\\*\\* | 4.36\\*\\* |" in text
    assert "| 95% interval % | [-0.66, 7.57] | [0.08, 5.83] | [0.71, 5.98] | [0.35, 8.38] |" in text


def test_appendix_orders_windows_and_footnotes_blanks(res) -> None:  # type: ignore[no-untyped-def]
    t = appendix_table(res)
    first = t.filter(deal_id="msft-openai-2019-07-22")["window"].to_list()
    assert first == ["[-5,+5]", "[-1,+1]", "[0,0]", "[0,+10]"]
    blank = t.filter(pl.col("car_pct").is_null())
    assert blank.height == res.car["car"].null_count() > 0
    assert blank["note"].null_count() == 0 and t.filter(pl.col("car_pct").is_not_null())["note"].null_count() == t.height - blank.height
    latex = appendix_summary(t, res.excluded).to_latex("x", "tab:x", longtable=True)
    assert r"\begin{longtable}" in latex and latex.count(r"\textsuperscript{a}") >= 2
    assert "no announcement date" in latex


def test_caar_path_band_is_the_cross_sectional_se(res) -> None:  # type: ignore[no-untyped-def]
    from analysis.plots import caar_path

    path = caar_path(res.panel, -1, 1)
    last = path.filter(rel_day=1).row(0, named=True)
    car = res.car.filter(window="[-1,+1]")["car"].drop_nulls().to_numpy()
    ols = sm.OLS(car, np.ones((car.size, 1))).fit()
    assert last["n"] == car.size
    assert last["caar"] == pytest.approx(ols.params[0], rel=1e-12)
    assert last["se"] == pytest.approx(ols.bse[0], rel=1e-12)
    assert path["rel_day"].to_list() == [-1, 0, 1]


def test_appendix_markdown_shows_p_and_the_adjusted_p_values(res) -> None:  # type: ignore[no-untyped-def]
    from statsmodels.stats.multitest import multipletests

    t = appendix_table(res)
    md = appendix_summary(t, res.excluded, wide=True).to_markdown()
    assert "| Holm p | BH p |" in md and "Benjamini-Hochberg" in md
    # ORCL's contract day: its adjusted p-values are those of statsmodels over the [0,0] family
    part = t.filter((pl.col("window") == "[0,0]") & pl.col("p").is_not_null())
    holm = multipletests(part["p"].to_numpy(), method="holm")[1]
    row = part.with_row_index("i").filter(pl.col("deal_id") == "openai-orcl-2025-09-10").row(0, named=True)
    assert row["p_holm"] == holm[row["i"]]
