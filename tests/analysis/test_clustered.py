"""Clustered-event inference over the shipped study: date clusters, the MVRM wiring (sample, masking of
other announcements) against statsmodels, calendar time, CAAR resampling and adjusted p-values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

from analysis.clustered import adjusted_car_pvalues, clustered_inference, date_clusters
from analysis.results import EventStudyResult
from analysis.study import load_inputs, run_study
from carousel.db import connect
from ledger.load import import_file
from market.snapshot import load_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStudyResult, pl.DataFrame]:
    db = tmp_path_factory.mktemp("clustered") / "c.duckdb"
    with connect(db) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
        deals, returns = load_inputs(con, ["SPY"])
    return run_study(deals, returns), returns


def test_date_clusters_on_the_shipped_study(study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    clusters = date_clusters(study[0].car)
    by_t0 = {r["t0"]: r["tickers"] for r in clusters.iter_rows(named=True)}
    assert by_t0[date(2025, 1, 22)] == ["9984.T", "ARM", "MSFT", "NVDA", "ORCL"]  # Stargate
    assert by_t0[date(2026, 2, 27)] == ["AMZN", "NVDA"]
    assert all(len(t) >= 2 for t in by_t0.values())
    # 7, not 10: the firm-events of three same-day groups overlap an earlier announcement of their
    # ticker (reason overlaps_earlier_event), leaving fewer than two firms on those dates
    assert clusters.height == 7


def test_sum_zero_f_equals_the_t_test_of_the_summed_returns(
        study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    """The cluster's sample is built independently here: SPY sessions -250..-11 and the event day,
    minus every session within the span [-1,+1] (the union of the requested windows) of the firms' other
    announcements, on dates where both firms have a return; the F test that the CARs sum to zero on day 0
    must then be the squared t of the event dummy in an OLS of the summed returns."""
    res, returns = study
    t0, firms = date(2026, 2, 27), ("AMZN", "NVDA")
    ci = clustered_inference(res.car, returns, ((0, 0), (-1, 1)), n_boot=0, n_resamples=99,
                             mask_span=(-1, 1))
    row = ci.joint.filter((pl.col("t0") == t0) & (pl.col("hypothesis") == "sum_zero")
                          & (pl.col("window") == "[0,0]")).row(0, named=True)

    spy = returns.filter(pl.col("ticker") == "SPY").sort("date")
    days = spy["date"].to_list()
    i0 = days.index(t0)
    sample = set(days[i0 - 250:i0 - 10]) | {t0}
    others = set(res.car.filter(pl.col("ticker").is_in(firms) & (pl.col("t0") != t0))["t0"].to_list())
    masked = {days[days.index(d) + k] for d in others for k in (-1, 0, 1)}
    assert masked & sample  # the span mask matters for this cluster
    sample -= masked
    wide = returns.filter(pl.col("ticker").is_in([*firms, "SPY"])).pivot(
        on="ticker", index="date", values="ret").filter(pl.col("date").is_in(sorted(sample))).drop_nulls()
    y = (wide["AMZN"] + wide["NVDA"]).to_numpy()
    x = np.column_stack([np.ones(wide.height), wide["SPY"].to_numpy(),
                         (wide["date"] == t0).to_numpy().astype(float)])
    ols = sm.OLS(y, x).fit()
    assert row["F"] == pytest.approx(float(ols.tvalues[2]) ** 2, rel=1e-8)
    assert row["df_den"] == int(ols.df_resid)


def test_adjusted_pvalues_equal_statsmodels_per_window(
        study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    adj = adjusted_car_pvalues(study[0].car)
    assert adj.height == study[0].car.height
    for label in ("[0,0]", "[-1,+1]"):
        part = adj.filter((pl.col("window") == label) & pl.col("p").is_not_null())
        p = part["p"].to_numpy()
        assert np.allclose(part["p_holm"].to_numpy(), multipletests(p, method="holm")[1], rtol=1e-12)
        assert np.allclose(part["p_bh"].to_numpy(), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    # a firm-event without a CAR has no p and no adjusted p
    blank = adj.filter(pl.col("p").is_null())
    assert blank["p_holm"].null_count() == blank.height


def test_caar_and_calendar_time_views(study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    res, returns = study
    a = clustered_inference(res.car, returns, ((0, 0),), n_boot=0, n_resamples=499, seed=7)
    b = clustered_inference(res.car, returns, ((0, 0),), n_boot=0, n_resamples=499, seed=7)
    assert a.caar.equals(b.caar) and a.calendar_time.equals(b.calendar_time)  # deterministic
    cars = res.car.filter((pl.col("window") == "[0,0]") & pl.col("car").is_not_null())["car"]
    boot = a.caar.filter(pl.col("method") == "bootstrap").row(0, named=True)
    assert boot["caar"] == pytest.approx(float(cars.mean()), rel=1e-12)
    assert boot["n"] == cars.len()
    assert boot["clusters"] == res.car.filter(
        (pl.col("window") == "[0,0]") & pl.col("car").is_not_null())["t0"].n_unique()
    assert 0.0 < boot["p"] < 1.0
    # the mean of the sign-flip and bootstrap views is the same CAAR; only the p-value differs
    flip = a.caar.filter(pl.col("method") == "sign_flip").row(0, named=True)
    assert flip["caar"] == pytest.approx(boot["caar"], rel=1e-12)
    ct = a.calendar_time.row(0, named=True)
    assert ct["days"] == 30 and np.isfinite(ct["alpha"]) and ct["se"] > 0
    text = a.summary()
    assert "Joint tests of date clusters" in text and "Calendar-time portfolio" in text
