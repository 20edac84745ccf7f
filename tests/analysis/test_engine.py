"""Batch event-study engine: recovery, agreement with statsmodels, variance formula, exclusions, masking."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.conventions import ESTUDY2
from analysis.engine import EventStudy
from analysis.window import window_label

DATA = Path(__file__).resolve().parents[2] / "data"
SNAPSHOT_NAMES = {"GSPC": "^GSPC", "IXIC": "^IXIC"}


def shipped_returns() -> pl.DataFrame:
    """Simple returns of data/prices/*.csv read directly with Polars.

    With the market layer present, its pure ``compute_returns`` (adj_close when both days have it,
    else close) is used, so the numbers are the ones ``carousel study`` sees; without it, a per-file
    fallback: adj_close when the file has it, else close.
    """
    frames = []
    for f in sorted((DATA / "prices").glob("*.csv")):
        ticker = SNAPSHOT_NAMES.get(f.stem, f.stem)
        d = pl.read_csv(
            f, try_parse_dates=True, schema_overrides={"adj_close": pl.Float64, "close": pl.Float64}
        )
        frames.append(
            d.sort("date").select(pl.lit(ticker).alias("ticker"), "date", "close", "adj_close")
        )
    prices = pl.concat(frames)
    if importlib.util.find_spec("market.returns") is not None:
        market_returns = importlib.import_module("market.returns")
        return market_returns.compute_returns(prices).select("ticker", "date", "ret")
    px = pl.coalesce("adj_close", "close")
    return (
        prices.with_columns((px / px.shift(1).over("ticker") - 1).alias("ret"))
        .drop_nulls("ret")
        .select("ticker", "date", "ret")
    )


@pytest.fixture(scope="module")
def shipped() -> pl.DataFrame:
    return shipped_returns()


def synthetic(
    n_firms: int, n_days: int = 600, seed: int = 7, inject: float = 0.0, t0_index: int = 400
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Market-model returns for n_firms on business days; one event per firm at ``t0_index``."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2010-01-04"), np.datetime64("2010-01-04") + n_days * 2)
    dates = dates[np.is_busday(dates)][:n_days]
    m = rng.normal(0.0004, 0.01, n_days)
    alpha = rng.normal(0.0, 0.0005, n_firms)
    beta = rng.uniform(0.5, 1.5, n_firms)
    eps = rng.normal(0.0, 0.02, (n_firms, n_days))
    r = alpha[:, None] + beta[:, None] * m[None, :] + eps
    r[:, t0_index] += inject
    tickers = [f"F{i:04d}" for i in range(n_firms)]
    ret = pl.concat(
        [
            pl.DataFrame({"ticker": ["MKT"] * n_days, "date": dates, "ret": m}),
            pl.DataFrame(
                {
                    "ticker": np.repeat(tickers, n_days),
                    "date": np.tile(dates, n_firms),
                    "ret": r.ravel(),
                }
            ),
        ]
    ).with_columns(pl.col("date").cast(pl.Date))
    events = pl.DataFrame(
        {
            "event_id": [f"e{i:04d}" for i in range(n_firms)],
            "deal_id": [f"d{i:04d}" for i in range(n_firms)],
            "ticker": tickers,
            "t0": [dates[t0_index].astype(dt.date)] * n_firms,
        }
    )
    return ret, events, beta


def test_injected_abnormal_return_is_recovered() -> None:
    ret, events, beta = synthetic(200, inject=0.05, seed=11)
    res = EventStudy(ret, events, benchmarks=("MKT",)).fit()
    assert res.nobs == 200 and res.excluded.height == 0
    car0 = res.car.filter(pl.col("window") == "[0,0]")
    # noise sd 0.02 per firm -> the mean over 200 firms has sd ~0.0014; 4 sd tolerance.
    assert abs(car0["car"].mean() - 0.05) < 0.006  # type: ignore[operator]
    assert car0["t"].mean() > 2.0  # type: ignore[operator]
    assert (car0["t"] > 1.96).mean() > 0.55  # type: ignore[operator]
    # betas are estimated around their true values
    z = (res.params["beta_MKT"].to_numpy() - beta) / res.bse["beta_MKT"].to_numpy()
    assert 0.75 < float(np.mean(z**2)) < 1.25  # standardized beta errors have unit variance
    # cross-sectional t of the mean CAR[0,0] is large
    cars = car0["car"].to_numpy()
    assert cars.mean() / (cars.std(ddof=1) / np.sqrt(cars.size)) > 20
    # aar on day 0 equals the mean CAR[0,0]
    aar0 = res.aar.filter(pl.col("rel_day") == 0)["aar"].item()
    assert aar0 == pytest.approx(car0["car"].mean(), abs=1e-14)


def test_no_injection_rejects_about_five_percent() -> None:
    ret, events, _ = synthetic(2000, seed=5)
    res = EventStudy(ret, events, benchmarks=("MKT",), windows=((0, 0), (-1, 1))).fit()
    for w in ("[0,0]", "[-1,+1]"):
        p = res.car.filter(pl.col("window") == w)["p"].to_numpy()
        rate = float((p < 0.05).mean())
        # binomial sd at n=2000 is ~0.5 percentage points
        assert 0.03 < rate < 0.07, (w, rate)
    assert abs(res.car.filter(pl.col("window") == "[0,0]")["car"].mean()) < 0.002  # type: ignore[arg-type]


def _compare(a, b, tol: float = 1e-8) -> None:
    assert a.excluded.equals(b.excluded)
    for name in ("params", "bse", "sigma"):
        fa, fb = getattr(a, name), getattr(b, name)
        assert fa.columns == fb.columns
        for c in fa.columns:
            if fa[c].dtype == pl.Float64:
                np.testing.assert_allclose(
                    fa[c].to_numpy(), fb[c].to_numpy(), rtol=tol, atol=tol * 1e-2
                )
            else:
                assert fa[c].equals(fb[c])
    for c in ("car", "se", "t", "bhar"):
        np.testing.assert_allclose(a.car[c].to_numpy(), b.car[c].to_numpy(), rtol=tol, atol=1e-12)
    np.testing.assert_allclose(a.panel.ar, b.panel.ar, rtol=tol, atol=1e-12)
    np.testing.assert_allclose(
        a.panel.estimation_residuals(), b.panel.estimation_residuals(), rtol=tol, atol=1e-12
    )
    np.testing.assert_allclose(a.panel.pe_factor, b.panel.pe_factor, rtol=tol, atol=1e-12)
    ar_a, ar_b = a.ar, b.ar
    np.testing.assert_allclose(ar_a["se"].to_numpy(), ar_b["se"].to_numpy(), rtol=tol)


def shipped_events(shipped: pl.DataFrame) -> pl.DataFrame:
    """Every stock ticker on the first trading day of each quarter 2019-2026, plus same-day pairs."""
    stocks = sorted(
        set(shipped["ticker"].unique().to_list()) - {"SPY", "^GSPC", "^IXIC", "QQQ", "SMH", "SOXX"}
    )
    days = pl.date_range(dt.date(2019, 1, 1), dt.date(2026, 9, 1), "3mo", eager=True).to_list()
    rows = [(f"{t}-{d}", f"deal-{d}", t, d) for t in stocks for d in days]
    return pl.DataFrame(rows, schema=["event_id", "deal_id", "ticker", "t0"], orient="row")


@pytest.mark.parametrize(
    ("model", "benchmarks"),
    [
        ("market", ("SPY",)),
        ("multifactor", ("SPY", "SOXX")),
        ("mean", ()),
        ("ff3", ()),
        ("market_adjusted", ("SPY",)),
    ],
)
def test_batch_agrees_with_statsmodels_on_shipped_data(
    shipped: pl.DataFrame, model: str, benchmarks: tuple[str, ...]
) -> None:
    events = shipped_events(shipped)
    study = EventStudy(shipped, events, model=model, benchmarks=benchmarks or ("SPY",))
    batch = study.fit("batch")
    assert batch.nobs > 200
    ols = study.fit("statsmodels")
    _compare(batch, ols)
    if model != "market_adjusted":
        _compare(batch, study.fit("event_dummy"))


def test_agreement_under_estudy2_conventions(shipped: pl.DataFrame) -> None:
    events = shipped_events(shipped).filter(
        pl.col("ticker").is_in(["AMD", "9984.T", "CRWV", "ORCL"])
    )
    study = EventStudy(shipped, events, conventions=ESTUDY2)
    batch = study.fit("batch")
    _compare(batch, study.fit("statsmodels"))
    _compare(batch, study.fit("event_dummy"))
    # estudy2's sigma uses M - 1; textbook M - 2: ratio sqrt((M-2)/(M-1))
    text = EventStudy(shipped, events).fit()
    m = batch.sigma["n_est"].to_numpy()
    np.testing.assert_allclose(
        text.sigma["sigma"].to_numpy() / batch.sigma["sigma"].to_numpy(),
        np.sqrt((m - 1) / (m - 2)),
        rtol=1e-12,
    )


def test_amd_2025_10_06_market_model(shipped: pl.DataFrame) -> None:
    events = pl.DataFrame(
        {
            "event_id": ["amd-openai-2025-10-06"],
            "deal_id": ["amd-openai-2025-10-06"],
            "ticker": ["AMD"],
            "t0": [dt.date(2025, 10, 6)],
        }
    )
    res = EventStudy(shipped, events).fit()
    row = res.car.filter(pl.col("window") == "[0,0]").row(0, named=True)
    # AMD +23.7% close-to-close, SPY +0.36%, beta ~1.9: AR ~ 0.237 - (alpha + 1.89 * 0.0036)
    assert 0.228 < row["car"] < 0.234
    assert row["t"] > 5
    assert row["p"] < 1e-6
    # Independent hand regression with a date join (no engine code): 240 SPY days before t0 - 10.
    amd = shipped.filter(pl.col("ticker") == "AMD").select("date", pl.col("ret").alias("y"))
    spy = (
        shipped.filter(pl.col("ticker") == "SPY")
        .select("date", pl.col("ret").alias("m"))
        .sort("date")
    )
    i0 = spy["date"].to_list().index(dt.date(2025, 10, 6))
    est = spy[i0 - 250 : i0 - 10].join(amd, on="date", how="inner")
    fit = sm.OLS(est["y"].to_numpy(), sm.add_constant(est["m"].to_numpy())).fit()
    day0 = amd.filter(pl.col("date") == dt.date(2025, 10, 6))["y"].item()
    ar0 = day0 - fit.params[0] - fit.params[1] * spy["m"][i0]
    assert row["car"] == pytest.approx(ar0, abs=1e-12)
    x0 = np.array([1.0, spy["m"][i0]])
    se0 = np.sqrt(fit.scale * (1 + x0 @ fit.normalized_cov_params @ x0))
    assert row["se"] == pytest.approx(se0, rel=1e-10)
    assert res.params["beta_SPY"].item() == pytest.approx(fit.params[1], rel=1e-10)


def test_car_variance_by_hand_includes_covariance_term() -> None:
    # 8 trading days; estimation [-5,-2] (4 obs), event window [0,1]; market model by hand.
    dates = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10, 11)]
    m = [0.01, -0.02, 0.005, 0.015, -0.01, 0.02, 0.03, -0.005]
    y = [0.012, -0.025, 0.01, 0.02, -0.008, 0.03, 0.07, 0.01]
    ret = pl.DataFrame({"ticker": ["M"] * 8 + ["A"] * 8, "date": dates * 2, "ret": m + y})
    # t0 = 2024-01-10 (index 6): estimation days -5..-2 are indices 1..4, window [0,1] indices 6..7
    events = pl.DataFrame(
        {"event_id": ["e"], "deal_id": ["d"], "ticker": ["A"], "t0": [dt.date(2024, 1, 10)]}
    )
    res = EventStudy(
        ret, events, benchmarks=("M",), estimation=(-5, -2), windows=((0, 1),), min_obs=4
    ).fit()
    xe = np.array([[1.0, m[i]] for i in (1, 2, 3, 4)])
    ye = np.array([y[i] for i in (1, 2, 3, 4)])
    xtx_inv = np.linalg.inv(xe.T @ xe)
    b = xtx_inv @ xe.T @ ye
    s2 = ((ye - xe @ b) ** 2).sum() / (4 - 2)
    xw = np.array([[1.0, m[6]], [1.0, m[7]]])
    ar = np.array([y[6], y[7]]) - xw @ b
    ones = np.ones(2)
    var = s2 * (2 + ones @ xw @ xtx_inv @ xw.T @ ones)
    diag_only = s2 * (2 + sum(xw[j] @ xtx_inv @ xw[j] for j in range(2)))
    row = res.car.row(0, named=True)
    assert row["car"] == pytest.approx(ar.sum(), abs=1e-15)
    assert row["se"] ** 2 == pytest.approx(var, rel=1e-12)
    assert abs(var - diag_only) > 1e-3 * var  # the cross-day term matters here
    assert row["se"] ** 2 != pytest.approx(diag_only, rel=1e-6)
    bh = (1 + y[6]) * (1 + y[7]) - (1 + xw[0] @ b) * (1 + xw[1] @ b)
    assert row["bhar"] == pytest.approx(bh, abs=1e-15)
    # t and p from Student t with M - k = 2 degrees of freedom
    from scipy import stats

    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(ar.sum() / np.sqrt(var)), 2), rel=1e-12)


def test_exclusion_reason_codes() -> None:
    ret, events, _ = synthetic(3, n_days=400, t0_index=300)
    d = ret.filter(pl.col("ticker") == "MKT")["date"].to_list()
    extra = pl.DataFrame(
        {
            "event_id": ["x_no_t0", "x_ticker", "x_short", "x_after", "x_gap"],
            "deal_id": ["a", "b", "c", "d", "e"],
            "ticker": ["F0000", "NOPE", "F0001", "F0002", "F0003"],
            "t0": [None, d[300], d[100], d[-1] + dt.timedelta(days=30), d[300]],
        }
    )
    # F0003 trades only in its estimation window: no event-day returns
    gap = ret.filter(pl.col("ticker") == "F0000").with_columns(pl.lit("F0003").alias("ticker"))
    gap = gap.filter(pl.col("date") < d[295])
    res = EventStudy(pl.concat([ret, gap]), pl.concat([events, extra]), benchmarks=("MKT",)).fit()
    reasons = dict(res.excluded.select("event_id", "reason").iter_rows())
    assert reasons == {
        "x_no_t0": "no_t0",
        "x_ticker": "ticker_not_found",
        "x_short": "insufficient_estimation_obs",
        "x_after": "no_event_returns",
        "x_gap": "no_event_returns",
    }
    assert res.nobs == 3
    # min_obs is honoured exactly: 90 valid estimation days at t0 index 100 (days -250..-11 -> 0..89)
    ok = EventStudy(
        pl.concat([ret, gap]),
        extra.filter(pl.col("event_id") == "x_short"),
        benchmarks=("MKT",),
        min_obs=90,
    ).fit()
    assert ok.nobs == 1 and ok.sigma["n_est"].item() == 90
    short = EventStudy(
        pl.concat([ret, gap]),
        extra.filter(pl.col("event_id") == "x_short"),
        benchmarks=("MKT",),
        min_obs=91,
    ).fit()
    assert short.excluded["reason"].to_list() == ["insufficient_estimation_obs"]


def test_singular_design_is_excluded() -> None:
    ret, events, _ = synthetic(2, n_days=400, t0_index=300)
    const_mkt = ret.with_columns(
        pl.when(pl.col("ticker") == "MKT").then(0.001).otherwise(pl.col("ret")).alias("ret")
    )
    res = EventStudy(const_mkt, events, benchmarks=("MKT",)).fit()
    assert res.excluded["reason"].to_list() == ["singular_design", "singular_design"]


def test_other_events_are_masked_or_flagged() -> None:
    ret, events, _ = synthetic(1, n_days=500, t0_index=400)
    dates = ret.filter(pl.col("ticker") == "MKT")["date"].to_list()
    # a second event of the same firm 100 days earlier: inside the first one's estimation window
    two = pl.concat(
        [
            events,
            pl.DataFrame(
                {
                    "event_id": ["e_early"],
                    "deal_id": ["d2"],
                    "ticker": ["F0000"],
                    "t0": [dates[300]],
                }
            ),
        ]
    )
    masked = EventStudy(ret, two, benchmarks=("MKT",), min_obs=30).fit()
    flagged = EventStudy(ret, two, benchmarks=("MKT",), min_obs=30, mask_other_events=False).fit()
    span = 16  # union of default windows: -5..+10
    late_m = masked.sigma.filter(pl.col("event_id") == "e0000").row(0, named=True)
    late_f = flagged.sigma.filter(pl.col("event_id") == "e0000").row(0, named=True)
    assert late_f["n_est"] == 240 and late_f["n_other_event_days"] == span
    assert late_m["n_est"] == 240 - span and late_m["n_other_event_days"] == span
    # the masked estimate equals a hand OLS that drops exactly days 295..310
    mkt = ret.filter(pl.col("ticker") == "MKT")["ret"].to_numpy()
    y = ret.filter(pl.col("ticker") == "F0000")["ret"].to_numpy()
    idx = np.array([i for i in range(150, 390) if not 295 <= i <= 310])
    fit = sm.OLS(y[idx], sm.add_constant(mkt[idx])).fit()
    got = masked.params.filter(pl.col("event_id") == "e0000")
    assert got["beta_MKT"].item() == pytest.approx(fit.params[1], rel=1e-10)
    # the earlier event sees the later one outside its estimation window: nothing masked
    early = masked.sigma.filter(pl.col("event_id") == "e_early").row(0, named=True)
    assert early["n_other_event_days"] == 0 and early["n_est"] == 240
    # the panel marks masked estimation days as NaN
    row = masked.panel.keys["event_id"].to_list().index("e0000")
    rel = masked.panel.rel_days
    masked_cols = ((rel >= -105) & (rel <= -90))[rel <= -11]
    assert np.isnan(masked.panel.estimation_residuals()[row, masked_cols]).all()
    assert np.isfinite(flagged.panel.estimation_residuals()[row, masked_cols]).all()


def test_panel_contract_and_result_outputs() -> None:
    ret, events, _ = synthetic(5, seed=3, inject=0.03)
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=1)
    a = EventStudy(ret, events, benchmarks=("MKT",)).fit()
    b = EventStudy(
        ret.sample(fraction=1.0, shuffle=True, seed=2), shuffled, benchmarks=("MKT",)
    ).fit()
    assert a.to_frame().equals(b.to_frame())
    assert a.summary() == b.summary() and a.to_latex() == b.to_latex()
    p = a.panel
    assert p.rel_days[0] == -250 and p.rel_days[-1] == 10 and p.is_est.sum() == 240
    # per-day arrays on the 21 event days only; the 240 estimation days computed on demand
    assert p.ar.shape == (5, 21) and p.pe_factor.shape == (5, 21) and not p.estimation.held
    assert p.event_days.tolist() == list(range(-10, 11)) and (p.pe_factor > 1).all()
    assert p.estimation_residuals().shape == (5, 240) and p.estimation.held
    assert p.x_event.shape == (5, 21, 2) and p.xtx_inv.shape == (5, 2, 2) and p.n_params == 2
    # estimation residuals sum to zero (intercept) and reproduce sigma with M - k
    e = p.estimation_residuals()
    np.testing.assert_allclose(np.nansum(e, axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(
        np.sqrt(np.nansum(e**2, axis=1) / (p.n_est - 2)), p.sigma, rtol=1e-12
    )
    # pe factor is 1 + x'(X'X)^-1 x
    x = p.x_event[:, p.day_index(0), :]
    np.testing.assert_allclose(
        p.pe_factor[:, p.day_index(0)], 1 + np.einsum("nk,nkj,nj->n", x, p.xtx_inv, x)
    )
    recs = a.to_json_records()
    assert len(recs) == 5 * 4 and recs[0]["window"] == "[0,0]" and isinstance(recs[0]["t0"], str)
    assert set(recs[0]) >= {"deal_id", "ticker", "t0", "window", "car", "se", "t"}
    tex = a.to_latex()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert window_label((-5, 5)) == "[-5,+5]"
    assert a.caar.height == 4
    lat = a.ar.filter((pl.col("event_id") == "e0000") & (pl.col("rel_day") == 0))
    assert lat["ar"].item() == pytest.approx(
        a.car.filter(pl.col("window") == "[0,0]")["car"][0], abs=1e-15
    )


def test_hac_changes_standard_errors_not_estimates() -> None:
    ret, events, _ = synthetic(3, seed=9, inject=0.02)
    study = EventStudy(ret, events, benchmarks=("MKT",))
    plain = study.fit("event_dummy")
    hac = study.fit("event_dummy", cov_type="HAC", cov_kwds={"maxlags": 3})
    np.testing.assert_allclose(hac.car["car"].to_numpy(), plain.car["car"].to_numpy(), atol=1e-14)
    assert not np.allclose(hac.car["se"].to_numpy(), plain.car["se"].to_numpy(), rtol=1e-3)
    with pytest.raises(ValueError, match="event_dummy"):
        study.fit("batch", cov_type="HAC")


def test_bad_arguments() -> None:
    ret, events, _ = synthetic(1, n_days=300, t0_index=280)
    with pytest.raises(ValueError, match="overlaps"):
        EventStudy(ret, events, benchmarks=("MKT",), windows=((-20, 0),))
    with pytest.raises(ValueError, match="benchmark"):
        EventStudy(ret, events, benchmarks=("SPY",)).fit()
    with pytest.raises(ValueError, match="unknown model"):
        EventStudy(ret, events, model="capm3")


def test_duplicate_returns_are_rejected() -> None:
    ret, events, _ = synthetic(2, n_days=300, t0_index=280)
    dup = pl.concat([ret, ret.filter(pl.col("ticker") == "F0001").head(1)])
    with pytest.raises(ValueError, match="duplicate return for ticker F0001 on 2010-01-04"):
        EventStudy(dup, events, benchmarks=("MKT",)).fit()


def test_tests_delegate_to_the_significance_battery() -> None:
    ret, events, _ = synthetic(60, seed=4, inject=0.02)
    res = EventStudy(ret, events, benchmarks=("MKT",)).fit()
    bat = res.tests((-1, 1), daily=False)
    cars = res.car.filter(pl.col("window") == "[-1,+1]")["car"].to_numpy()
    expected = cars.mean() / (cars.std(ddof=1) / np.sqrt(cars.size))
    assert bat.stat("cross_sectional_t", "[-1,+1]") == pytest.approx(expected, rel=1e-12)
    # Patell on the window standardizes each CAR by the engine's own prediction-error SE (with the
    # cross-day terms), so the battery and the car table agree: Z = sum(CAR/se) / sqrt(sum (M-2)/(M-4)).
    se = res.car.filter(pl.col("window") == "[-1,+1]")["se"].to_numpy()
    m = res.sigma["n_est"].to_numpy()
    patell = (cars / se).sum() / np.sqrt(((m - 2) / (m - 4)).sum())
    assert bat.stat("patell_z", "[-1,+1]") == pytest.approx(patell, rel=1e-12)


def test_estudy2_prediction_error_uses_all_market_days_and_firm_count() -> None:
    ret, events, _ = synthetic(1, n_days=400, t0_index=300, seed=21)
    # the firm misses 40 estimation days; the market has all of them
    drop = ret["date"].unique().sort()[100:140].to_list()
    gappy = ret.filter(~((pl.col("ticker") == "F0000") & pl.col("date").is_in(drop)))
    res = EventStudy(gappy, events, benchmarks=("MKT",), conventions=ESTUDY2).fit()
    m = ret.filter(pl.col("ticker") == "MKT")["ret"].to_numpy()
    est_m = m[50:290]  # all 240 market days of the estimation window
    m_i = res.sigma["n_est"].item()
    assert m_i == 200
    p = res.panel
    expected = 1 + 1 / m_i + (m[300] - est_m.mean()) ** 2 / ((est_m - est_m.mean()) ** 2).sum()
    assert p.pe_factor[0, p.day_index(0)] == pytest.approx(expected, rel=1e-12)


def test_a_subset_is_estimated_as_in_the_full_study_when_given_other_events() -> None:
    # Studying one event of a firm must still mask the firm's other events in its estimation window
    # (`carousel study --deal X` must report the same numbers as the full run).
    ret, events, _ = synthetic(1, n_days=500, t0_index=400)
    dates = ret.filter(pl.col("ticker") == "MKT")["date"].to_list()
    early = pl.DataFrame(
        {"event_id": ["e_early"], "deal_id": ["d2"], "ticker": ["F0000"], "t0": [dates[300]]}
    )
    full = EventStudy(ret, pl.concat([events, early]), benchmarks=("MKT",), min_obs=30).fit()
    alone = EventStudy(ret, events, benchmarks=("MKT",), min_obs=30).fit()
    sub = EventStudy(
        ret, events, benchmarks=("MKT",), min_obs=30,
        other_events=pl.concat([events, early]).select("ticker", "t0"),
    ).fit()
    want = full.car.filter(pl.col("event_id") == "e0000")
    # equal up to summation order (the batch shapes differ, so the last bit may)
    from polars.testing import assert_frame_equal

    assert_frame_equal(sub.car, want, check_exact=False, rel_tol=1e-12, abs_tol=0)
    assert sub.sigma["n_est"].item() == 240 - 16
    # without other_events the subset sees no other event: all 240 days, different estimates
    assert alone.sigma["n_est"].item() == 240
    assert alone.car["se"].to_list() != want["se"].to_list()
    with pytest.raises(ValueError, match="other_events frame lacks column 't0'"):
        EventStudy(ret, events, benchmarks=("MKT",), other_events=events.drop("t0"))


def test_off_grid_returns_compound_into_the_next_grid_day() -> None:
    # A Tokyo session on a US holiday: the firm has a return on a day the benchmark grid lacks. Its move
    # must not be lost: the next grid day's return is (1 + r_holiday)(1 + r_next) - 1.
    ret, events, _ = synthetic(2, n_days=400, t0_index=300)
    dates = ret.filter(pl.col("ticker") == "MKT")["date"].to_list()
    holiday, nxt = dates[299], dates[300]
    ret = ret.filter(~((pl.col("ticker") == "MKT") & (pl.col("date") == holiday)))
    # F0001 has no row on the next grid day (its exchange closed): the holiday move alone is that day's
    ret = ret.filter(~((pl.col("ticker") == "F0001") & (pl.col("date") == nxt)))

    def r(t: str, d: dt.date) -> float:
        return ret.filter((pl.col("ticker") == t) & (pl.col("date") == d))["ret"].item()

    res = EventStudy(
        ret, events, model="market_adjusted", benchmarks=("MKT",), windows=((0, 0),), min_obs=30
    ).fit()
    car = dict(res.car.select("event_id", "car").iter_rows())
    assert res.car["t0"].to_list() == [nxt, nxt]
    want0 = (1 + r("F0000", holiday)) * (1 + r("F0000", nxt)) - 1 - r("MKT", nxt)
    assert car["e0000"] == pytest.approx(want0, rel=1e-12)
    assert car["e0001"] == pytest.approx(r("F0001", holiday) - r("MKT", nxt), rel=1e-12)
    # a null return on the off-grid day nulls the compounded day (no silent zero)
    nulled = ret.with_columns(
        pl.when((pl.col("ticker") == "F0000") & (pl.col("date") == holiday))
        .then(None)
        .otherwise(pl.col("ret"))
        .alias("ret")
    )
    res2 = EventStudy(
        nulled, events, model="market_adjusted", benchmarks=("MKT",), windows=((0, 0),), min_obs=30
    ).fit()
    assert res2.excluded.filter(pl.col("event_id") == "e0000")["reason"].to_list() == [
        "no_event_returns"
    ]
    # a duplicated off-grid row is an error, not a double-compounded return
    dup = pl.concat([ret, ret.filter((pl.col("ticker") == "F0000") & (pl.col("date") == holiday))])
    with pytest.raises(ValueError, match=f"duplicate return for ticker F0000 on {holiday}"):
        EventStudy(dup, events, model="market_adjusted", benchmarks=("MKT",)).fit()
