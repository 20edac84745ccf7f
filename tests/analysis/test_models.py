"""Normal-return models: FF3 factor loading and missing-factor handling, multi-factor, mean/market-adjusted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.engine import EventStudy
from analysis.factors import load_ff3
from analysis.models import benchmark_tickers, lagged, model_spec, parse_benchmark
from core.errors import InputError

D = dt.date


def test_ff3_file_is_read_in_decimals() -> None:
    ff = load_ff3()
    assert ff.columns == ["date", "mkt_rf", "smb", "hml", "rf"]
    assert ff["date"].max() == D(2026, 4, 30)
    last = ff.filter(pl.col("date") == D(2026, 4, 30)).row(0, named=True)
    # file: 2026-04-30,1.13,0.98,-0.71,0.01 (percent)
    assert last["mkt_rf"] == pytest.approx(0.0113) and last["hml"] == pytest.approx(-0.0071)
    assert last["rf"] == pytest.approx(0.0001)
    assert ff["date"].is_sorted()


def test_malformed_factor_file_names_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "ff.csv"
    bad.write_text(
        "date,mkt_rf,smb,hml,rf\n2020-01-02,0.1,0.2,0.3,0.01\n2020-01-03,0.1,,0.3,0.01\n"
    )
    with pytest.raises(InputError) as err:
        load_ff3(bad)
    assert err.value.line == 3 and err.value.field == "smb"
    bad.write_text("date,mkt_rf,smb,hml\n2020-01-02,0.1,0.2,0.3\n")
    with pytest.raises(InputError, match="rf"):
        load_ff3(bad)


def _panel(
    n_days: int, start: dt.date, seed: int = 1
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Firm returns driven by the real FF3 factors on the factor file's dates (plus later weekdays)."""
    ff = load_ff3().filter(pl.col("date") >= start)
    extra = pl.date_range(D(2026, 5, 1), D(2026, 6, 30), "1d", eager=True)
    extra = extra.filter(extra.dt.weekday() <= 5)
    dates = pl.concat([ff["date"], extra]).head(n_days)
    rng = np.random.default_rng(seed)
    f = ff.head(n_days)
    nf = f.height
    y = np.full(dates.len(), np.nan)
    y[:nf] = (
        f["rf"].to_numpy()
        + 0.0002
        + 1.2 * f["mkt_rf"].to_numpy()
        + 0.5 * f["smb"].to_numpy()
        - 0.3 * f["hml"].to_numpy()
        + rng.normal(0, 0.01, nf)
    )
    y[nf:] = rng.normal(0, 0.01, dates.len() - nf)
    ret = pl.DataFrame({"ticker": ["F"] * dates.len(), "date": dates, "ret": y})
    return ret, ff, y


def test_ff3_matches_hand_regression_on_excess_returns() -> None:
    ret, ff, y = _panel(400, D(2024, 6, 3))
    dates = ret["date"].to_list()
    ev = pl.DataFrame({"event_id": ["e"], "deal_id": ["d"], "ticker": ["F"], "t0": [dates[300]]})
    res = EventStudy(ret, ev, model="ff3").fit()
    f = ff.head(400)
    idx = np.arange(50, 290)  # rel -250..-11
    x = sm.add_constant(f.select("mkt_rf", "smb", "hml").to_numpy()[idx])
    fit = sm.OLS(y[idx] - f["rf"].to_numpy()[idx], x).fit()
    got = res.params.row(0, named=True)
    np.testing.assert_allclose(
        [got["alpha"], got["beta_mkt_rf"], got["beta_smb"], got["beta_hml"]], fit.params, rtol=1e-9
    )
    assert got["beta_mkt_rf"] == pytest.approx(1.2, abs=0.15)
    x0 = np.array([1.0, *f.select("mkt_rf", "smb", "hml").row(300)])
    ar0 = y[300] - f["rf"][300] - x0 @ fit.params
    assert res.car.filter(pl.col("window") == "[0,0]")["car"].item() == pytest.approx(
        ar0, abs=1e-13
    )
    # BHAR with FF3: expected raw return is rf + fitted excess return
    bh = (1 + y[300]) - (1 + f["rf"][300] + x0 @ fit.params)
    assert res.car.filter(pl.col("window") == "[0,0]")["bhar"].item() == pytest.approx(
        bh, abs=1e-13
    )


def test_ff3_events_needing_missing_factors_are_excluded() -> None:
    ret, ff, _ = _panel(600, D(2024, 3, 1))
    dates = ret["date"].to_list()
    last_factor = ff["date"].max()
    i_last = dates.index(last_factor)
    ev = pl.DataFrame(
        {
            "event_id": ["ok", "window_past_end", "t0_past_end", "just_fits"],
            "deal_id": ["a", "b", "c", "d"],
            "ticker": ["F"] * 4,
            # [0,+10] of 'just_fits' ends exactly on the last factor day
            "t0": [dates[i_last - 40], dates[i_last - 3], dates[i_last + 5], dates[i_last - 10]],
        }
    )
    res = EventStudy(ret, ev, model="ff3").fit()
    assert dict(res.excluded.select("event_id", "reason").iter_rows()) == {
        "window_past_end": "factors_missing",
        "t0_past_end": "factors_missing",
    }
    assert sorted(res.panel.keys["event_id"].to_list()) == ["just_fits", "ok"]
    # with short windows the same late event is fine: nothing is filled, the need decides
    short = EventStudy(
        ret, ev.filter(pl.col("event_id") == "window_past_end"), model="ff3", windows=((0, 0),)
    ).fit()
    assert short.nobs == 1


def test_multifactor_and_adjusted_models() -> None:
    rng = np.random.default_rng(3)
    n = 400
    dates = pl.date_range(D(2020, 1, 1), D(2022, 12, 31), "1d", eager=True)
    dates = dates.filter(dates.dt.weekday() <= 5).head(n)
    m1, m2 = rng.normal(0, 0.01, n), rng.normal(0, 0.012, n)
    y = 0.001 + 0.8 * m1 + 0.6 * m2 + rng.normal(0, 0.01, n)
    ret = pl.concat(
        [
            pl.DataFrame({"ticker": [t] * n, "date": dates, "ret": v})
            for t, v in (("A", m1), ("B", m2), ("F", y))
        ]
    )
    ev = pl.DataFrame({"event_id": ["e"], "deal_id": ["d"], "ticker": ["F"], "t0": [dates[350]]})
    res = EventStudy(ret, ev, model="multifactor", benchmarks=("A", "B")).fit()
    idx = np.arange(100, 340)
    fit = sm.OLS(y[idx], sm.add_constant(np.column_stack([m1[idx], m2[idx]]))).fit()
    p = res.params.row(0, named=True)
    np.testing.assert_allclose([p["alpha"], p["beta_A"], p["beta_B"]], fit.params, rtol=1e-9)
    np.testing.assert_allclose(
        res.bse.select("alpha", "beta_A", "beta_B").row(0), fit.bse, rtol=1e-9
    )
    # market-adjusted: AR = r - r_m, sigma = sd of estimation ARs (ddof 1), Var(AR) = sigma^2
    ma = EventStudy(ret, ev, model="market_adjusted", benchmarks=("A",)).fit()
    d = y - m1
    row = ma.car.filter(pl.col("window") == "[-1,+1]").row(0, named=True)
    assert row["car"] == pytest.approx(d[349:352].sum(), abs=1e-14)
    assert row["se"] == pytest.approx(np.sqrt(3) * d[idx].std(ddof=1), rel=1e-12)
    # mean-adjusted: AR = r - mean, Var(CAR_L) = sigma^2 (L + L^2 / M)
    mean = EventStudy(ret, ev, model="mean").fit()
    row = mean.car.filter(pl.col("window") == "[-5,+5]").row(0, named=True)
    assert row["car"] == pytest.approx((y[345:356] - y[idx].mean()).sum(), abs=1e-13)
    assert row["se"] == pytest.approx(y[idx].std(ddof=1) * np.sqrt(11 + 121 / 240), rel=1e-12)


def test_model_spec_validation() -> None:
    assert model_spec("market_model", ["SPY"]).param_names == ("alpha", "beta_SPY")
    assert model_spec("ff3").k == 4
    with pytest.raises(ValueError, match="exactly one"):
        model_spec("market", ["SPY", "SOXX"])
    with pytest.raises(ValueError, match="at least one"):
        model_spec("multifactor", [])


def test_lagged_benchmark_parsing_and_shift() -> None:
    assert parse_benchmark("SPY") == ("SPY", 0)
    assert parse_benchmark("SPY[-1]") == ("SPY", -1)
    assert parse_benchmark("^GSPC[+2]") == ("^GSPC", 2)
    assert parse_benchmark("SPY[x]") == ("SPY[x]", 0)  # not a lag: an (unknown) ticker
    assert benchmark_tickers(("SPY", "SPY[-1]", "SOXX")) == ("SPY", "SOXX")
    s = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(lagged(s, -1), [np.nan, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lagged(s, 2), [3.0, 4.0, np.nan, np.nan])
    np.testing.assert_array_equal(lagged(s, 0), s)
    assert np.isnan(lagged(s, -9)).all()


def test_lagged_benchmark_recovers_a_non_synchronous_beta() -> None:
    # A Tokyo-like firm prices the US market's move one session late: r_t = 0.0003 + 1.3 m_{t-1} + e.
    rng = np.random.default_rng(11)
    n = 400
    days = np.arange(np.datetime64("2015-01-05"), np.datetime64("2015-01-05") + 2 * n)
    days = days[np.is_busday(days)][:n]
    m = rng.normal(0.0004, 0.012, n)
    y = np.full(n, np.nan)
    y[1:] = 0.0003 + 1.3 * m[:-1] + rng.normal(0.0, 0.01, n - 1)
    ret = pl.DataFrame(
        {"ticker": ["SPY"] * n + ["TYO"] * n, "date": np.concatenate([days, days]), "ret": np.concatenate([m, y])}
    ).with_columns(pl.col("date").cast(pl.Date))
    events = pl.DataFrame(
        {"event_id": ["e"], "ticker": ["TYO"], "t0": [days[350].astype(dt.date)]}
    )
    same_day = EventStudy(ret, events, model="market", benchmarks=("SPY",)).fit()
    dimson = EventStudy(ret, events, model="multifactor", benchmarks=("SPY", "SPY[-1]")).fit()
    assert abs(same_day.params["beta_SPY"].item()) < 0.15  # the same-day model misses the beta
    # ... the lagged regressor finds it: hand OLS on the shifted market over the same 240 days
    est = np.arange(350 - 250, 350 - 10)
    x = sm.add_constant(np.column_stack([m[est], m[est - 1]]))
    ref = sm.OLS(y[est], x).fit()
    got = dimson.params.row(0, named=True)
    assert got["beta_SPY[-1]"] == pytest.approx(ref.params[2], rel=1e-10)
    assert got["beta_SPY"] == pytest.approx(ref.params[1], rel=1e-10)
    assert 1.2 < got["beta_SPY[-1]"] < 1.4
    assert dimson.sigma["sigma"].item() < 0.8 * same_day.sigma["sigma"].item()
    sm_route = EventStudy(ret, events, model="multifactor", benchmarks=("SPY", "SPY[-1]")).fit(
        "statsmodels"
    )
    assert sm_route.car["se"].to_list() == pytest.approx(dimson.car["se"].to_list(), rel=1e-10)
