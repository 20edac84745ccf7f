"""The dollar CAR's SE from the estimation window's dollar abnormal returns (``analysis.dollar.estimation_dollar_se``)
and the aggregate test that uses it (``analysis.dollar_test``, term ``total_dollar_car_est``).

Independent routes: (1) a by-hand computation on the shipped CSVs with the csv module and numpy (returns
from adj_close, the market-model OLS by ``numpy.linalg.lstsq`` over the estimation days the engine used,
the count in force and the close of the grid day before each estimation day, split-adjusted), for AMD
2025-10-06 (240 days, one event) and NVDA 2025-05-23 (208 days, other NVDA events masked, the 2024-06-10
split inside the window); (2) the identity with a market value that never moves: the SE is then exactly
the default V x se(CAR); (3) the test's total, SE, z and p by hand with scipy.stats. No published example
could be found (the paper's formula was not obtainable), so none is reproduced.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis.dollar import estimation_dollar_se
from analysis.dollar_columns import load_dollar_inputs, study_grid, with_dollars, with_estimation_se
from analysis.dollar_outputs import estimation_notes, window_tests
from analysis.dollar_test import dollar_test
from analysis.results import EventStudyResult
from analysis.study import load_inputs, run_study
from carousel.db import connect

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStudyResult, pl.DataFrame, np.ndarray, object]:
    from ledger.load import import_file
    from market.shares_store import load_shares_snapshot
    from market.snapshot import load_snapshot

    path = tmp_path_factory.mktemp("dollar_est") / "c.duckdb"
    with connect(path) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
        load_shares_snapshot(con)
    with connect(path, read_only=True) as con:
        deals, returns = load_inputs(con, ["SPY"])
        res = run_study(deals, returns)
        inputs = load_dollar_inputs(con, sorted(set(res.car["ticker"].to_list())))
    grid = study_grid(returns, res)
    dollars = with_estimation_se(with_dollars(res.car, inputs), res, grid, inputs)
    return res, dollars, grid, inputs


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / "prices" / f"{name}.csv").open(newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: r["date"])


def _returns(name: str) -> dict[str, float]:
    rows = _rows(name)
    return {b["date"]: float(b["adj_close"]) / float(a["adj_close"]) - 1 for a, b in zip(rows, rows[1:], strict=False)}


def _value(ticker: str, day: str) -> float:
    """Count in force that day (split-adjusted, at most 120 days old) x that day's close, from the CSVs."""
    close = next(float(r["close"]) for r in _rows(ticker) if r["date"] == day)
    with (DATA / "shares" / "shares_outstanding.csv").open(newline="") as fh:
        counts = [r for r in csv.DictReader(fh) if r["ticker"] == ticker and r["as_of_date"] <= day]
    count = max(counts, key=lambda r: r["as_of_date"])
    age = (dt.date.fromisoformat(day) - dt.date.fromisoformat(count["as_of_date"])).days
    assert age <= 120
    return int(count["split_adjusted_to_2026"]) * close


@pytest.mark.parametrize(("event_id", "ticker", "n_days"), [
    ("amd-openai-2025-10-06:AMD", "AMD", 240), ("orcl-nvda-2025-05-23:NVDA", "NVDA", 208)])
def test_by_hand_from_the_csvs(study: tuple, event_id: str, ticker: str, n_days: int) -> None:
    res, dollars, _, _ = study
    p = res.panel
    i = p.keys["event_id"].to_list().index(event_id)
    t0 = p.keys["t0_grid"][i].isoformat()
    est = np.flatnonzero(p.is_est)
    used = [int(d) for d in p.rel_days[est][np.isfinite(p.estimation_residuals()[i])]]  # the engine's estimation days
    assert len(used) == n_days
    spy, own = _returns("SPY"), _returns(ticker)
    grid = sorted(spy)
    pos = grid.index(t0)
    x = np.array([[1.0, spy[grid[pos + d]]] for d in used])
    y = np.array([own[grid[pos + d]] for d in used])
    b = np.linalg.lstsq(x, y, rcond=None)[0]
    e = y - x @ b
    sigma = np.sqrt(e @ e / (n_days - 2))
    assert p.sigma[i] == pytest.approx(sigma, rel=1e-10)  # same regression as the engine
    v_prev = np.array([_value(ticker, grid[pos + d - 1]) for d in used])
    sigma_usd = np.sqrt(np.sum((v_prev * e) ** 2) / (n_days - 2))
    xtx_inv = np.linalg.inv(x.T @ x)
    for window, (a, z) in {"[0,0]": (0, 0), "[-1,+1]": (-1, 1), "[-5,+5]": (-5, 5), "[0,+10]": (0, 10)}.items():
        s = np.array([[1.0, spy[grid[pos + d]]] for d in range(a, z + 1)]).sum(axis=0)
        factor = np.sqrt((z - a + 1) + s @ xtx_inv @ s)
        row = dollars.filter((pl.col("event_id") == event_id) & (pl.col("window") == window)).row(0, named=True)
        assert row["dollar_se_est_reason"] is None
        assert row["se"] == pytest.approx(sigma * factor, rel=1e-9)
        assert row["dollar_se_est"] == pytest.approx(sigma_usd * factor, rel=1e-9)
    # the estimation-window dispersion differs from V(t0-1) x sigma when the value moved over the window
    v0 = _value(ticker, grid[pos - 1])
    assert abs(sigma_usd / (v0 * sigma) - 1) > 0.05


def test_a_value_that_never_moves_gives_the_default_se(study: tuple) -> None:
    res, _, grid, inputs = study
    tickers = sorted(set(res.car["ticker"].to_list()))
    days = pl.Series("date", grid).cast(pl.Date)
    prices = pl.DataFrame({"ticker": np.repeat(tickers, len(days)), "date": pl.concat([days] * len(tickers)),
                           "close": 100.0})
    counts = pl.DataFrame({"ticker": tickers, "as_of_date": [dt.date(2000, 1, 3)] * len(tickers),
                           "shares": [1e9] * len(tickers), "shares_split_adjusted": [1e9] * len(tickers)})
    car = res.car.filter(pl.col("se").is_not_null())
    out = estimation_dollar_se(car, res.panel, grid, counts, prices, max_stale_days=10**6,
                               listings={}, companies=None)
    assert out["dollar_se_est_reason"].is_null().all() and out.height == car.height == 156
    np.testing.assert_allclose(out["dollar_se_est"].to_numpy(), 1e11 * car["se"].to_numpy(), rtol=1e-12)


def test_reasons_on_the_shipped_data(study: tuple) -> None:
    res, dollars, grid, inputs = study
    r00 = dollars.filter(pl.col("window") == "[0,0]")
    by = dict(zip(r00["event_id"].to_list(), r00["dollar_se_est_reason"].to_list(), strict=True))
    # ORCL's counts are stale from 2024-10-12 to 2025-05-30, inside the Oracle contract's estimation window
    assert by["openai-orcl-2025-09-10:ORCL"] == "estimation_value_missing"
    assert by["softbank-openai-2026-02-27:9984.T"] == "estimation_value_missing"  # JPY: no US$ value
    assert r00.filter(pl.col("dollar_se_est").is_not_null()).height == 22
    assert r00.filter(pl.col("dollar_se_est").is_null() & pl.col("dollar_se_est_reason").is_null()).height == 0
    # a firm-event the panel does not hold, and a grid without the panel's t0s
    ghost = res.car.head(1).with_columns(pl.lit("nobody:X").alias("event_id"))
    out = estimation_dollar_se(ghost, res.panel, grid, inputs.counts, inputs.prices)
    assert out["dollar_se_est_reason"].to_list() == ["not_estimated"]
    short = pl.Series(grid).cast(pl.Date).filter(pl.Series(grid).cast(pl.Date) < dt.date(2025, 1, 1))
    out = estimation_dollar_se(res.car.filter(pl.col("event_id") == "amd-openai-2025-10-06:AMD"), res.panel,
                               short, inputs.counts, inputs.prices)
    assert set(out["dollar_se_est_reason"].to_list()) == {"t0_off_grid"}


def test_the_aggregate_test_with_estimation_ses(study: tuple) -> None:
    _, dollars, _, _ = study
    w = dollars.filter(pl.col("window") == "[0,0]")
    res = dollar_test(w, market_value="mcap_usd", estimation_se="dollar_se_est")
    both = w.filter(pl.col("dollar_car").is_not_null() & pl.col("dollar_se_est").is_not_null())
    d, s = both["dollar_car"].to_numpy(), both["dollar_se_est"].to_numpy()
    total, se = d.sum(), np.sqrt(np.sum(s**2))
    assert res.nobs_est == both.height == 20 and res.n_dropped_est == 20
    assert res.est_test is not None
    assert res.est_test.params["total_dollar_car_est"] == pytest.approx(total, rel=1e-12)
    assert res.est_test.bse["total_dollar_car_est"] == pytest.approx(se, rel=1e-12)
    assert res.est_test.pvalues["total_dollar_car_est"] == pytest.approx(2 * stats.norm.sf(abs(total / se)), rel=1e-10)
    # the two older tests are unchanged by the option
    plain = dollar_test(w, market_value="mcap_usd")
    assert plain.params == res.params and plain.mean_test.bse == res.mean_test.bse and plain.est_test is None
    none = dollar_test(w.with_columns(pl.lit(None, pl.Float64).alias("dollar_se_est")), estimation_se="dollar_se_est")
    assert none.est_test is None and none.n_dropped_est == 40 and "no firm-event has both" in none.summary()
    assert none.to_frame()["term"].to_list() == ["total_dollar_car", "mean_dollar_car"]
    frame = res.to_frame()
    assert frame["term"].to_list() == ["total_dollar_car", "mean_dollar_car", "total_dollar_car_est"]
    assert "estimation window" in res.summary() and r"total\_dollar\_car\_est" in res.to_latex()
    # the report's tests table carries the term with its own N, and a note naming what it leaves out
    t = window_tests(dollars)
    row = t.filter((pl.col("window") == "[0,0]") & (pl.col("term") == "total_dollar_car_est")).row(0, named=True)
    assert row["n"] == 20 and row["n_without_value"] == 20 and row["complete"] is False
    assert row["partial_bn"] == pytest.approx(total / 1e9, rel=1e-12)
    notes = estimation_notes(t)
    assert "not Saha" not in notes[0] and "could not be obtained" in notes[0]
    # one note per distinct list of the extra exclusions; the Oracle contract is in every window's
    assert all("ORCL 2025-09-10: estimation_value_missing" in n for n in notes[1:]) and len(notes) >= 2
