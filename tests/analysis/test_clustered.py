"""Clustered-event inference over the shipped study: date clusters, the MVRM wiring (sample, masking of
other announcements) against statsmodels, calendar time, CAAR resampling and adjusted p-values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
from linearmodels.system import SUR
from statsmodels.stats.multitest import multipletests

from analysis.clustered import adjusted_car_pvalues, clustered_inference, date_clusters, study_mvrm
from analysis.mvrm import MVRMResult, hypothesis_matrices, mvrm
from analysis.research_sections import clustered_html, clustered_summaries
from analysis.results import EventStudyResult
from analysis.spec import StudySpec
from analysis.study import load_inputs, run_spec
from carousel.db import connect
from ledger.load import import_file
from market.snapshot import load_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    db = tmp_path_factory.mktemp("clustered") / "c.duckdb"
    with connect(db) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
        return load_inputs(con, StudySpec().extra_tickers())


@pytest.fixture(scope="module")
def study(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> tuple[EventStudyResult, pl.DataFrame]:
    """The default study (9984.T on SPY and SPY[-1]), as carousel run estimates it."""
    deals, returns = inputs
    return run_spec(deals, returns, StudySpec()), returns


def test_date_clusters_on_the_shipped_study(study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    clusters = date_clusters(study[0].car)
    by_t0 = {r["t0"]: r["tickers"] for r in clusters.iter_rows(named=True)}
    assert by_t0[date(2025, 1, 22)] == ["9984.T", "ARM", "MSFT", "NVDA", "ORCL"]  # Stargate
    assert by_t0[date(2026, 2, 27)] == ["AMZN", "NVDA"]
    assert all(len(t) >= 2 for t in by_t0.values())
    # 7, not 10: the firm-events of three same-day groups overlap an earlier announcement of their
    # ticker (reason overlaps_earlier_event), leaving fewer than two firms on those dates
    assert clusters.height == 7


def stacked_sur_wald(m: MVRMResult) -> dict[str, float]:
    """W of the three hypotheses from a stacked system, built independently of analysis.mvrm's algebra:
    each firm a statsmodels OLS of its returns on its regressors and one dummy per event day over its
    own rows; Cov(b) = B' Omega B with B the block-diagonal (X_j'X_j)^-1 X_j' and Omega[(i,t),(j,s)] =
    Sigma_ij [t = s] (Sigma_ij = D R D: D_j from the fit's SSR / df_resid, R the residual correlation
    over the estimation rows all firms use); CAR_j = the sum of firm j's dummies."""
    d = m.data
    ev = np.flatnonzero(d.is_event)
    fits, rows = [], []
    for j in range(len(d.tickers)):
        r = np.flatnonzero(d.use[:, j] | d.is_event)
        x = np.column_stack([d.x[j][r], (r[:, None] == ev[None, :]).astype(float)])
        fits.append((sm.OLS(d.y[r, j], x).fit(), x))
        rows.append(r)
    n, t = len(fits), d.y.shape[0]
    resid = np.zeros((t, n))
    for j, ((f, _), r) in enumerate(zip(fits, rows, strict=True)):
        resid[r, j] = f.resid
    common = d.use.all(axis=1)  # estimation rows of every firm (event rows are not in use)
    rc = resid[common]
    r_mat = (rc.T @ rc) / np.sqrt(np.outer((rc ** 2).sum(0), (rc ** 2).sum(0)))
    dd = np.array([np.sqrt(f.ssr / f.df_resid) for f, _ in fits])
    sigma = r_mat * np.outer(dd, dd)
    # B (sum k_j x sum n_j) and Omega over the stacked rows
    blocks = [np.linalg.inv(x.T @ x) @ x.T for _, x in fits]
    kk, nn = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
    big_b = np.zeros((kk, nn))
    where, date_of, firm_of = [], [], []
    ko = no = 0
    for j, (b, r) in enumerate(zip(blocks, rows, strict=True)):
        big_b[ko:ko + b.shape[0], no:no + b.shape[1]] = b
        where.append((ko, b.shape[0]))
        date_of += r.tolist()
        firm_of += [j] * r.size
        ko, no = ko + b.shape[0], no + b.shape[1]
    date_of, firm_of = np.array(date_of), np.array(firm_of)
    omega = sigma[firm_of[:, None], firm_of[None, :]] * (date_of[:, None] == date_of[None, :])
    cov_b = big_b @ omega @ big_b.T
    lmat = np.zeros((n, kk))
    for j, (ko, k) in enumerate(where):
        lmat[j, ko + k - ev.size:ko + k] = 1.0
    params = np.concatenate([f.params for f, _ in fits])
    theta, v = lmat @ params, lmat @ cov_b @ lmat.T
    return {h: float((mm.T @ theta) @ np.linalg.solve(mm.T @ v @ mm, mm.T @ theta))
            for h, mm in hypothesis_matrices(n).items()}


def test_mvrm_cars_are_the_car_views_with_the_dimson_lag(study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    """Review finding (numbers 7): the joint tests estimated 9984.T on SPY alone (Stargate CAR[0,0]
    10.06%) while every table uses SPY and SPY[-1] (8.61%). Each firm of every date cluster is now fitted
    as the study fitted it: the MVRM's per-firm CAR and se equal the car view's (1e-10), and W equals a
    stacked-system computation with statsmodels fits (1e-8)."""
    res, returns = study
    checked = 0
    for t0 in date_clusters(res.car)["t0"].to_list():
        for w, label in (((0, 0), "[0,0]"), ((-1, 1), "[-1,+1]")):
            view = res.car.filter((pl.col("t0") == t0) & (pl.col("window") == label) & pl.col("car").is_not_null())
            if view["ticker"].n_unique() < 2:
                continue
            m = study_mvrm(res, returns, t0, w, n_boot=0)
            got = dict(zip(m.data.tickers, m.params.values(), strict=False))
            se = dict(zip(m.data.tickers, m.bse.values(), strict=False))
            for r in view.iter_rows(named=True):
                assert got[r["ticker"]] == pytest.approx(r["car"], abs=1e-10)
                assert se[r["ticker"]] == pytest.approx(r["se"], abs=1e-10)
                checked += 1
            ref = stacked_sur_wald(m)
            for row in m.wald.iter_rows(named=True):
                assert row["chi2"] == pytest.approx(ref[row["hypothesis"]], rel=1e-8)
    assert checked >= 30
    star = study_mvrm(res, returns, date(2025, 1, 22), (0, 0), n_boot=0)
    assert star.data.regressors[star.data.tickers.index("9984.T")] == ("const", "SPY", "SPY[-1]")
    assert star.data.regressors[star.data.tickers.index("ORCL")] == ("const", "SPY")
    assert round(star.params["9984.T CAR[+0,+0]"], 4) == 0.0861


def test_dimson_mvrm_equals_linearmodels_sur_with_per_equation_regressors(
        study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    """On the dates every Stargate series shares (a balanced system), 9984.T on [1, SPY, SPY[-1], D] and
    the others on [1, SPY, D]: W, the CARs and their covariance equal linearmodels' SUR fitted by OLS
    with its debiased Sigma (Cov(b_i, b_j) = Sigma_ij A_i X_i'X_j A_j)."""
    returns = study[1]
    firms = ("ORCL", "9984.T", "MSFT", "NVDA", "ARM")
    m = mvrm(returns, firms, date(2025, 1, 22), window=(-1, 1), n_boot=0, lagged=["9984.T"])
    d = m.data
    ev = np.flatnonzero(d.is_event)
    eqs = {}
    for j, t in enumerate(firms):
        x = np.column_stack([d.x[j], (np.arange(d.y.shape[0])[:, None] == ev[None, :]).astype(float)])
        names = [*d.regressors[j], *[f"d{i}" for i in range(ev.size)]]
        eqs[t.replace(".", "_")] = {"dependent": pd.Series(d.y[:, j]), "exog": pd.DataFrame(x, columns=names)}
    lm = SUR(eqs).fit(method="ols", cov_type="unadjusted", debiased=True)
    theta_all, cov = lm.params.to_numpy(), lm.cov.to_numpy()
    sizes = [d.x[j].shape[1] + ev.size for j in range(len(firms))]
    lmat = np.zeros((len(firms), sum(sizes)))
    for j, end in enumerate(np.cumsum(sizes)):
        lmat[j, end - ev.size:end] = 1.0
    theta, v = lmat @ theta_all, lmat @ cov @ lmat.T
    np.testing.assert_allclose(m.fit.car, theta, rtol=1e-10)
    np.testing.assert_allclose(m.fit.cov, v, rtol=1e-8)
    for row in m.wald.iter_rows(named=True):
        mm = hypothesis_matrices(len(firms))[row["hypothesis"]]
        ref = float((mm.T @ theta) @ np.linalg.solve(mm.T @ v @ mm, mm.T @ theta))
        assert row["chi2"] == pytest.approx(ref, rel=1e-8)
    assert d.regressors[1] == ("const", "SPY", "SPY[-1]") and m.fit.nu == len(d.dates) - ev.size - 3


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
    a = clustered_inference(res, returns, ((0, 0),), n_boot=0, n_resamples=499, seed=7)
    b = clustered_inference(res, returns, ((0, 0),), n_boot=0, n_resamples=499, seed=7)
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


JUNETEENTH_ROW = ("softbank-test-2025-06-18,2025-06-18,17:30,after_close,SoftBank,OpenAI,1.0,test row,"
                  "equity_investment,9984.T,n/a,test,test,2025-06-18,https://example.com,verified\n")


@pytest.fixture(scope="module")
def juneteenth(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStudyResult, pl.DataFrame]:
    """The review's repro (numbers finding 3): the shipped ledger plus one 9984.T deal after the US close
    on 2025-06-18, so Tokyo's day 0 is 2025-06-19, Juneteenth, when NYSE is closed."""
    tmp = tmp_path_factory.mktemp("juneteenth")
    deals_csv = tmp / "deals.csv"
    deals_csv.write_text((DATA / "events" / "deals.csv").read_text(encoding="utf-8").rstrip("\n") + "\n"
                         + JUNETEENTH_ROW, encoding="utf-8")
    with connect(tmp / "c.duckdb") as con:
        import_file(con, deals_csv)
        load_snapshot(con)
        spec = StudySpec()
        deals, returns = load_inputs(con, spec.extra_tickers())
    return run_spec(deals, returns, spec), returns


def test_a_tokyo_t0_on_a_us_holiday_keeps_every_view(juneteenth: tuple[EventStudyResult, pl.DataFrame]) -> None:
    """It used to raise 't0 2025-06-19 of 9984.T is not a trading day of the benchmark SPY' and the
    report dropped the whole section. Now every view uses the engine's day 0 (the next SPY session,
    2025-06-20), and the notes say so. Numbers: the CAAR is the plain mean of the car view's CARs (41 on
    [0,0], the event included); the calendar-time alpha and se equal statsmodels' HAC OLS of a portfolio
    built here from the returns on each firm-event's 2025-06-20-style grid day."""
    res, returns = juneteenth
    eid = "softbank-test-2025-06-18:9984.T"
    key = res.panel.keys.filter(pl.col("event_id") == eid).row(0, named=True)
    assert (key["t0"], key["t0_grid"]) == (date(2025, 6, 19), date(2025, 6, 20))
    ci = clustered_inference(res, returns, ((0, 0), (-1, 1)), n_boot=19, n_resamples=99, seed=3)
    assert any(eid in n and "2025-06-20" in n for n in ci.notes)
    assert not any("not computed" in n for n in ci.notes)
    day0 = res.car.filter((pl.col("window") == "[0,0]") & pl.col("car").is_not_null())
    assert eid in day0["event_id"].to_list()
    boot = ci.caar.filter((pl.col("window") == "[0,0]") & (pl.col("method") == "bootstrap")).row(0, named=True)
    assert boot["n"] == day0.height == 41
    assert boot["caar"] == pytest.approx(float(day0["car"].mean()), rel=1e-12)
    # calendar time [0,0] by hand: each grid day 0, the mean return of the firms whose day 0 it is
    ev = day0.join(res.panel.keys.select("event_id", "t0_grid"), on="event_id").select("ticker", "t0_grid").unique()
    rets = returns.select("ticker", "date", "ret")
    port = (ev.join(rets, left_on=["ticker", "t0_grid"], right_on=["ticker", "date"])
            .group_by("t0_grid").agg(pl.col("ret").mean().alias("p"))
            .join(rets.filter(pl.col("ticker") == "SPY"), left_on="t0_grid", right_on="date").sort("t0_grid"))
    assert date(2025, 6, 20) in port["t0_grid"].to_list()
    lags = int(np.floor(4 * (port.height / 100) ** (2 / 9)))
    ols = sm.OLS(port["p"].to_numpy(), sm.add_constant(port["ret"].to_numpy())).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)
    ct = ci.calendar_time.filter(pl.col("window") == "[0,0]").row(0, named=True)
    assert ct["days"] == port.height == 31
    assert ct["alpha"] == pytest.approx(float(ols.params[0]), rel=1e-10)
    assert ct["se"] == pytest.approx(float(ols.bse[0]), rel=1e-10)
    # the joint tests of the seven date clusters are all there
    assert ci.joint.filter(pl.col("hypothesis") == "all_zero").height == 7 * 2
    s = clustered_summaries(ci)
    assert set(s) == {"joint", "calendar_time", "caar"} and eid in s["caar"].to_markdown()


def test_a_failing_view_leaves_the_others(inputs: tuple[pl.DataFrame, pl.DataFrame],
                                          study: tuple[EventStudyResult, pl.DataFrame]) -> None:
    """Stargate alone: one event day, so calendar time (one portfolio day for two coefficients) and the
    CAAR resampling (one date cluster) cannot be computed; each is named with its reason, and the joint
    tests still are, with the full study's numbers (a filtered study estimates every firm-event as the
    full one)."""
    deals, returns = inputs
    alone = run_spec(deals, returns, StudySpec(), deal_filter=["stargate-2025-01-21"])
    ci = clustered_inference(alone, returns, ((0, 0),), n_boot=0, n_resamples=99)
    assert ci.calendar_time.height == 0 and ci.caar.height == 0
    assert any(n.startswith("Calendar-time portfolio not computed") and "cannot identify" in n for n in ci.notes)
    assert any(n.startswith("CAAR resampling not computed") and "1 cluster" in n for n in ci.notes)
    full = clustered_inference(study[0], returns, ((0, 0),), n_boot=0, n_resamples=99)
    star = full.joint.filter(pl.col("t0") == date(2025, 1, 22)).select("hypothesis", "F", "df_den")
    assert ci.joint.select("hypothesis", "F", "df_den").height == 3
    np.testing.assert_allclose(ci.joint["F"].to_numpy(), star["F"].to_numpy(), rtol=1e-12)
    s = clustered_summaries(ci)
    assert set(s) == {"joint"}
    md = s["joint"].to_markdown()
    assert "Calendar-time portfolio not computed" in md and "| 2025-01-22 |" in md
    assert "CAAR tests" not in clustered_html(s) and "Joint tests" in clustered_html(s)
