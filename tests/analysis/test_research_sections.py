"""The report's research sections: the dollar headline is the z test of the summed dollar CARs computed
independently (numpy + scipy.stats), with its caveat when a firm-event has no value; the appendix's Holm
and Benjamini-Hochberg p-values are statsmodels' multipletests per window; the clustered summaries show
the resampling sizes actually used; the compact LaTeX leaves out only the columns it says it does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.clustered import clustered_inference
from analysis.dollar_outputs import window_tests
from analysis.maintable import appendix_table, main_results
from analysis.research_sections import (
    RUN_N_BOOT,
    TEX_DROP,
    clustered_summaries,
    dollar_headline,
    latex,
    write_summaries,
)
from analysis.spec import StudySpec
from analysis.study import load_inputs, run_spec
from carousel.db import connect
from ledger.load import import_file
from market.snapshot import load_snapshot

REPO = Path(__file__).resolve().parents[2]


def _dollars(values: list[float | None], ses: list[float], window: str = "[0,0]") -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({
        "event_id": [f"d{i}:T{i}" for i in range(n)], "deal_id": [f"d{i}" for i in range(n)],
        "ticker": [f"T{i}" for i in range(n)], "t0": [dt.date(2025, 1, 2 + i) for i in range(n)],
        "window": [window] * n, "car": [0.01 * (i + 1) for i in range(n)], "se": [0.02] * n,
        "p": [0.5] * n, "mcap_usd": [None if v is None else 1e11 for v in values],
        "dollar_car": values, "dollar_se": [None if v is None else s for v, s in zip(values, ses, strict=True)],
        "dollar_reason": [None if v is None else "ok" for v in values],
    }, schema_overrides={"dollar_car": pl.Float64, "dollar_se": pl.Float64, "mcap_usd": pl.Float64})


def test_dollar_headline_is_the_z_test_of_the_summed_dollar_cars() -> None:
    values, ses = [3.1e9, -1.2e9, 7.4e9, 0.6e9], [1.5e9, 2.0e9, 2.5e9, 0.9e9]
    value, caption = dollar_headline(window_tests(_dollars(values, ses)))  # type: ignore[misc]
    total, se = np.sum(values), np.sqrt(np.sum(np.square(ses)))
    p = 2 * stats.norm.sf(abs(total / se))
    assert value == f"US${total / 1e9:+,.1f}bn" == "US$+9.9bn"
    assert f"p = {p:.3f}" in caption and "over 4 firm-events" in caption
    assert "all firm-events valued" in caption


def test_dollar_headline_of_an_incomplete_window_says_how_many_are_left_out() -> None:
    values, ses = [3.1e9, None, 7.4e9], [1.5e9, 1.0e9, 2.5e9]
    value, caption = dollar_headline(window_tests(_dollars(values, ses)))  # type: ignore[misc]
    total, se = 3.1e9 + 7.4e9, np.sqrt(1.5e9**2 + 2.5e9**2)
    assert value == f"US${total / 1e9:+,.1f}bn"
    assert f"p = {2 * stats.norm.sf(total / se):.3f}" in caption
    assert "the 2 valued firm-events" in caption and "1 firm-event(s) without a market value" in caption
    assert dollar_headline(window_tests(_dollars(values, ses)), window="[-1,+1]") is None


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with connect(tmp_path_factory.mktemp("rs") / "r.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        load_snapshot(con)
        deals, returns = load_inputs(con, ["SPY"])
    return run_spec(deals, returns, StudySpec()), returns


def test_appendix_holm_and_bh_are_statsmodels_multipletests_per_window(study) -> None:  # type: ignore[no-untyped-def]
    res, _ = study
    app = appendix_table(res)
    checked = 0
    for window in app["window"].unique().to_list():
        part = app.filter((pl.col("window") == window) & pl.col("p").is_not_null())
        p = part["p"].to_numpy()
        assert part.height > 20
        np.testing.assert_allclose(part["p_holm"].to_numpy(), multipletests(p, method="holm")[1], rtol=1e-12)
        np.testing.assert_allclose(part["p_bh"].to_numpy(), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
        checked += part.height
    assert checked == app["p"].drop_nulls().len()
    # A blank CAR keeps blank adjusted p-values (it is not a member of the family).
    blank = app.filter(pl.col("p").is_null())
    assert blank["p_holm"].null_count() == blank.height


def test_clustered_summaries_show_the_numbers_and_sizes_used(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res, returns = study
    ci = clustered_inference(res, returns, ((0, 0), (-1, 1)), n_boot=RUN_N_BOOT, n_resamples=199, seed=7)
    s = clustered_summaries(ci)
    assert f"{RUN_N_BOOT} draws, seed 7" in s["joint"].to_markdown()
    # The CAAR row is the plain mean of the window's CARs (an independent route to the same number).
    cars = res.car.filter((pl.col("window") == "[0,0]") & pl.col("car").is_not_null())["car"].to_numpy()
    boot = ci.caar.filter((pl.col("window") == "[0,0]") & (pl.col("method") == "bootstrap")).row(0, named=True)
    assert boot["caar"] == pytest.approx(cars.mean(), rel=1e-12)
    assert f"| [0,0] | bootstrap | {100 * cars.mean():.2f} |" in s["caar"].to_markdown()
    files = write_summaries(s, tmp_path, "clustered", longtables=("joint",))
    assert sorted(p.name for p in files) == sorted(
        f"clustered_{n}.{e}" for n in ("joint", "calendar_time", "caar") for e in ("csv", "md", "tex"))
    tex = (tmp_path / "clustered_joint.tex").read_text(encoding="utf-8")
    assert "\\begin{longtable}" in tex and "p (boot.)" in tex and " & F & " not in tex
    # The CSV keeps every column the LaTeX leaves out.
    assert {"F", "df_num", "df_den"} <= set(pl.read_csv(tmp_path / "clustered_joint.csv").columns)


def test_latex_leaves_out_only_the_listed_columns(study) -> None:  # type: ignore[no-untyped-def]
    res, returns = study
    ci = clustered_inference(res, returns, ((0, 0),), n_boot=0, n_resamples=99, seed=1)
    s = clustered_summaries(ci)["calendar_time"]
    assert "clustered_calendar_time" not in TEX_DROP
    full = s.to_latex(label="x")
    compact = latex(s, "clustered_calendar_time")
    header = next(line for line in full.splitlines() if line.startswith("Window"))
    assert header in compact and "\\scriptsize\\setlength{\\tabcolsep}{3pt}" in compact


def test_explain_table_is_statsmodels_wls_with_hc3_and_two_way_clusters(study) -> None:  # type: ignore[no-untyped-def]
    import statsmodels.formula.api as smf

    from analysis.explain import explain
    from analysis.research_sections import EXPLAIN_FORMULA, explain_summary
    from analysis.spec import DEFAULT_EXPLAIN

    res, _ = study
    # A frame of the study's [-1,+1] CARs with characteristics that vary (built here, not from the ledger).
    car = res.car.filter((pl.col("window") == "[-1,+1]") & pl.col("car").is_not_null()).sort("event_id")
    n = car.height
    rng = np.random.default_rng(3)
    frame = car.select("event_id", "window", "t0", "ticker", "car", "se").with_columns(
        pl.Series("log_amount", rng.normal(23, 1.5, n)), pl.Series("on_round_trip", rng.integers(0, 2, n)),
        pl.Series("deal_kind", rng.choice(["chips", "compute", "equity"], n)),
        pl.col("ticker").alias("company"))
    hc3 = explain(frame, EXPLAIN_FORMULA, weights="wls", cov="hc3")
    table = explain_summary([hc3.to_frame(), explain(frame, EXPLAIN_FORMULA, weights="wls",
                                                     cov="cluster:date,firm").to_frame()], hc3.nobs, DEFAULT_EXPLAIN)
    pdf = frame.select("car", "se", "log_amount", "on_round_trip", "deal_kind").to_pandas()
    ref = smf.wls(EXPLAIN_FORMULA, pdf, weights=1 / pdf["se"] ** 2).fit(cov_type="HC3", use_t=True)
    got = table.tables[0].frame
    for term, coef, se, p in zip(ref.params.index, ref.params, ref.bse, ref.pvalues, strict=True):
        row = got.filter(pl.col("term") == term).row(0, named=True)
        assert row["coef"] == pytest.approx(coef, rel=1e-8)
        assert row["se_hc3"] == pytest.approx(se, rel=1e-8)
        assert row["p_hc3"] == pytest.approx(p, rel=1e-6)
    assert f"N = {n}" in (table.title or table.tables[0].title or "") or f"N = {n}" in table.to_markdown()


def test_activity_runup_table_is_statsmodels_ols_of_the_runup_cars(study) -> None:  # type: ignore[no-untyped-def]
    import statsmodels.api as sm

    from analysis.research_sections import activity_summaries
    from analysis.runup import runup_study
    from analysis.volatility import variance_ratio

    res, returns = study
    runup = runup_study(_shipped_deals(), returns, windows=((-10, -1), (-1, -1))).study
    ratio = variance_ratio(res.panel, (-1, 1))
    s = activity_summaries(main_results(runup), main_results(runup), ratio.pooled)
    csv = pl.read_csv(__import__("io").StringIO(s["runup"].to_csv()))
    for window in ("[-10,-1]", "[-1,-1]"):
        cars = runup.car.filter(pl.col("window") == window)["car"].drop_nulls().to_numpy()
        ols = sm.OLS(cars, np.ones_like(cars)).fit()
        row = csv.filter(pl.col("window") == window).row(0, named=True)
        assert row["n"] == cars.size
        assert row["caar"] == pytest.approx(ols.params[0], rel=1e-9)
        assert row["se"] == pytest.approx(ols.bse[0], rel=1e-9)
        assert row["p"] == pytest.approx(ols.pvalues[0], rel=1e-7)
    assert "carousel study --model garch" in s["variance_ratio"].to_markdown()


def _shipped_deals() -> pl.DataFrame:
    from ledger import api

    with connect(":memory:") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        return api.deals(con)
