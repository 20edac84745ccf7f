"""Calendar-time portfolio regression against statsmodels OLS HAC and a looped portfolio build."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.calendar_time import calendar_time, event_portfolio, newey_west_lags, ols_hac
from analysis.factors import load_ff3
from core.errors import InputError
from market.calendars import align_t0
from market.returns import compute_returns
from market.sources import read_snapshot_file

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def returns() -> pl.DataFrame:
    files = sorted((DATA / "prices").glob("*.csv"))
    return compute_returns(pl.concat([read_snapshot_file(f) for f in files]))


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    """Shipped firm-events: each deal's listed counterparties at the deal's NYSE t0."""
    d = pl.read_csv(DATA / "events" / "deals.csv", infer_schema_length=0)
    ev = d.select(pl.col("announced_date").str.to_date(), "announced_time_et", "session",
                  pl.col("counterparty_tickers").str.split(";").alias("ticker"))
    return (align_t0(ev, "XNYS").filter(pl.col("t0").is_not_null()).explode("ticker")
            .filter(pl.col("ticker").is_not_null() & (pl.col("ticker") != ""))
            .select("ticker", "t0"))


def looped_portfolio(returns: pl.DataFrame, events: pl.DataFrame,
                     window: tuple[int, int]) -> dict[date, list[float]]:
    spy = returns.filter(pl.col("ticker") == "SPY").sort("date")["date"].to_list()
    ret = {(t, d): r for t, d, r in returns.select("ticker", "date", "ret").iter_rows()}
    members: dict[date, set[str]] = defaultdict(set)
    for t, t0 in events.iter_rows():
        i = spy.index(t0)
        for k in range(window[0], window[1] + 1):
            if 0 <= i + k < len(spy) and (t, spy[i + k]) in ret:
                members[spy[i + k]].add(t)
    return {d: [ret[(t, d)] for t in sorted(ts)] for d, ts in members.items()}


def test_portfolio_equals_loop(returns: pl.DataFrame, events: pl.DataFrame) -> None:
    port = event_portfolio(returns, events, window=(-1, 1))
    ref = looped_portfolio(returns, events, (-1, 1))
    assert port["date"].to_list() == sorted(ref)
    np.testing.assert_allclose(port["port_ret"].to_numpy(),
                               [np.mean(ref[d]) for d in sorted(ref)], rtol=1e-14)
    assert port["n_firms"].to_list() == [len(ref[d]) for d in sorted(ref)]
    # Stargate's t0: ORCL, 9984.T, MSFT, NVDA, ARM all inside their window (and nothing else that day)
    assert port.filter(pl.col("date") == date(2025, 1, 22))["n_firms"][0] == 5


@pytest.mark.parametrize("model", ["market", "ff3"])
@pytest.mark.parametrize("small_sample", [True, False])
@pytest.mark.parametrize("window", [(-1, 1), (0, 10)])
def test_equals_statsmodels_hac(returns: pl.DataFrame, events: pl.DataFrame, model: str,
                                small_sample: bool, window: tuple[int, int]) -> None:
    res = calendar_time(returns, events, window=window, model=model,  # type: ignore[arg-type]
                        factors=load_ff3(), small_sample=small_sample)
    p = res.portfolio
    if model == "market":
        y, x = p["port_ret"].to_numpy(), sm.add_constant(p["mkt_ret"].to_numpy())
    else:
        y = (p["port_ret"] - p["rf"]).to_numpy()
        x = sm.add_constant(p.select("mkt_rf", "smb", "hml").to_numpy())
    assert res.fit.maxlags == newey_west_lags(p.height) >= 3
    ref = sm.OLS(y, x).fit(cov_type="HAC", use_t=small_sample,
                           cov_kwds={"maxlags": res.fit.maxlags, "use_correction": small_sample})
    names = ["alpha", "beta_mkt"] if model == "market" else ["alpha", "mkt_rf", "smb", "hml"]
    assert list(res.params) == list(res.bse) == list(res.tvalues) == list(res.pvalues) == names
    np.testing.assert_allclose(list(res.params.values()), ref.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(list(res.bse.values()), ref.bse, rtol=1e-10)
    np.testing.assert_allclose(list(res.tvalues.values()), ref.tvalues, rtol=1e-10)
    np.testing.assert_allclose(list(res.pvalues.values()), ref.pvalues, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.conf_int(0.1).select("lower", "upper").to_numpy(), ref.conf_int(0.1),
                               rtol=1e-10)
    np.testing.assert_allclose(res.cov_params(), ref.cov_params(), rtol=1e-10)


def test_hac_maxlags_zero_is_white_and_hand_value() -> None:
    rng = np.random.default_rng(4)
    x = np.column_stack([np.ones(60), rng.normal(size=60)])
    y = 0.1 + 0.5 * x[:, 1] + rng.normal(size=60)
    fit = ols_hac(y, x, 0, small_sample=False)
    np.testing.assert_allclose(fit.cov, sm.OLS(y, x).fit(cov_type="HC0").cov_params(), rtol=1e-12)
    assert newey_west_lags(100) == 4 and newey_west_lags(1000) == 6


def test_results_object_and_frame(returns: pl.DataFrame, events: pl.DataFrame) -> None:
    res = calendar_time(returns, events, window=(-1, 1))
    frame = res.to_frame()
    assert frame["term"].to_list() == ["alpha", "beta_mkt"]
    assert frame["coef"][0] == pytest.approx(res.params["alpha"], abs=0)
    assert "alpha" in res.summary() and "Newey-West lags=" in res.summary()
    assert r"\begin{tabular}" in res.to_latex()
    assert calendar_time(returns, events, window=(-1, 1)).to_frame().equals(frame)
    fewer = calendar_time(returns, events, window=(-1, 1), min_firms=2)
    assert fewer.nobs == int((res.portfolio["n_firms"] >= 2).sum()) < res.nobs


def test_bad_input(returns: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="'XYZ'"):
        calendar_time(returns, pl.DataFrame({"ticker": ["XYZ"], "t0": [date(2025, 1, 22)]}))
    ok = pl.DataFrame({"ticker": ["ORCL"], "t0": [date(2025, 1, 22)]})
    with pytest.raises(InputError, match="needs the factors"):
        calendar_time(returns, ok, model="ff3")
    with pytest.raises(InputError, match="cannot identify"):
        calendar_time(returns, ok, window=(0, 1))


def test_t0_off_the_benchmark_calendar_moves_to_the_next_session(returns: pl.DataFrame) -> None:
    """Review finding (numbers 3): a 9984.T t0 on Juneteenth 2025 (a Tokyo session, no NYSE one) is
    placed on the next SPY session, 2025-06-20, as the engine places it; it used to raise. The
    portfolio's day-0 return is 9984.T's close-to-close return of 06-20 from the CSV, by hand."""
    from analysis.calendar_time import event_portfolio

    ev = pl.DataFrame({"ticker": ["9984.T"], "t0": [date(2025, 6, 19)]})
    port = event_portfolio(returns, ev, window=(0, 1))
    assert port["date"].to_list() == [date(2025, 6, 20), date(2025, 6, 23)]
    px = read_snapshot_file(DATA / "prices" / "9984.T.csv").sort("date")
    adj = dict(zip(px["date"].to_list(), px["adj_close"].to_list(), strict=True))
    assert port["port_ret"][0] == pytest.approx(adj[date(2025, 6, 20)] / adj[date(2025, 6, 19)] - 1, rel=1e-12)
    assert port["n_firms"].to_list() == [1, 1]
    # a Saturday t0 is Monday's
    sat = event_portfolio(returns, pl.DataFrame({"ticker": ["ORCL"], "t0": [date(2025, 1, 25)]}), window=(-1, 1))
    mon = event_portfolio(returns, pl.DataFrame({"ticker": ["ORCL"], "t0": [date(2025, 1, 27)]}), window=(-1, 1))
    assert sat.equals(mon) and sat["date"].to_list() == [date(2025, 1, 24), date(2025, 1, 27), date(2025, 1, 28)]


def test_windows_reaching_before_the_first_return_are_cut_like_those_after_the_last() -> None:
    """An event on the third day of the data with window [-5,+5] keeps its in-range days (no crash)."""
    import datetime as _dt

    from analysis.calendar_time import event_portfolio

    dates = [_dt.date(2024, 1, 1) + _dt.timedelta(days=i) for i in range(20)]
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({
        "ticker": ["SPY"] * 20 + ["X"] * 20,
        "date": dates * 2,
        "ret": np.r_[rng.normal(0, 0.01, 20), rng.normal(0, 0.02, 20)],
    })
    for t0_index in (2, 17):  # near the start and near the end
        port = event_portfolio(frame, pl.DataFrame({"ticker": ["X"], "t0": [dates[t0_index]]}),
                               window=(-5, 5))
        lo, hi = max(0, t0_index - 5), min(19, t0_index + 5)
        assert port["date"].to_list() == dates[lo:hi + 1]
