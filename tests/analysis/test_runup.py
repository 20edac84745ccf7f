"""Pre-event run-up (leak test) on the shipped data: ORCL's Stargate leak day against an independent
statsmodels market model on the price files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.runup import RUNUP_WINDOWS, check_runup_windows, runup_study
from analysis.study import run_study
from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file
from market.returns import compute_returns
from market.sources import read_snapshot_file

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "prices"
T0 = date(2025, 1, 22)  # stargate-2025-01-21: leaked intraday 2025-01-21, announced after that close


@pytest.fixture(scope="module")
def deals(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    with connect(tmp_path_factory.mktemp("r") / "r.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        return api.deals(con)


@pytest.fixture(scope="module")
def returns() -> pl.DataFrame:
    files = [PRICES / f"{t}.csv" for t in ("ORCL", "MSFT", "NVDA", "ARM", "9984.T", "SPY")]
    return compute_returns(pl.concat([read_snapshot_file(f) for f in files]))


def test_orcl_stargate_runup_equals_statsmodels(deals: pl.DataFrame, returns: pl.DataFrame) -> None:
    res = runup_study(deals, returns, deal_filter=["stargate-2025-01-21"])
    assert res.windows == RUNUP_WINDOWS == ((-10, -1), (-1, -1))
    # Independent route: adj-close returns from the CSVs, SPY's sessions, OLS over [-250, -11].
    def rets(t: str) -> pl.DataFrame:
        f = pl.read_csv(PRICES / f"{t}.csv", try_parse_dates=True).sort("date")
        return f.select("date", (pl.col("adj_close") / pl.col("adj_close").shift(1) - 1).alias(t)).drop_nulls()
    both = rets("SPY").join(rets("ORCL"), on="date").sort("date")
    d = both["date"].to_list()
    i0 = d.index(T0)
    y, x = both["ORCL"].to_numpy(), sm.add_constant(both["SPY"].to_numpy())
    ols = sm.OLS(y[i0 - 250 : i0 - 10], x[i0 - 250 : i0 - 10]).fit()
    orcl = res.car.filter(pl.col("ticker") == "ORCL")
    for (a, b), row in zip(RUNUP_WINDOWS, orcl.iter_rows(named=True), strict=True):
        w = slice(i0 + a, i0 + b + 1)
        s = x[w].sum(axis=0)
        car = float((y[w] - x[w] @ ols.params).sum())
        se = float(np.sqrt(ols.scale * (b - a + 1) + s @ ols.cov_params() @ s))
        assert row["car"] == pytest.approx(car, abs=1e-12)
        assert row["se"] == pytest.approx(se, rel=1e-10)
        assert row["p"] == pytest.approx(2 * stats.t.sf(abs(car / se), ols.df_resid), rel=1e-8)
    # The leak shows on day -1 (2025-01-21): +5.83 % abnormal, t 3.3; the ten-day CAR drowns it.
    leak = orcl.filter(pl.col("window") == "[-1,-1]").row(0, named=True)
    assert d[i0 - 1] == date(2025, 1, 21)
    assert leak["car"] == pytest.approx(0.05828, abs=5e-5) and leak["p"] < 0.002
    ten = orcl.filter(pl.col("window") == "[-10,-1]").row(0, named=True)
    assert abs(ten["t"]) < 1


def test_runup_battery_is_the_return_battery(deals: pl.DataFrame, returns: pl.DataFrame) -> None:
    res = runup_study(deals, returns, deal_filter=["stargate-2025-01-21"], windows=((-10, -1),))
    ref = run_study(deals, returns, deal_filter=["stargate-2025-01-21"], windows=((-10, -1),))
    assert res.battery().equals(ref.tests((-10, -1)).frame)
    bat = res.battery()
    # cross-sectional t of the day -1 ARs of the five Stargate firms = OLS on a constant
    ar1 = ref.ar.filter(pl.col("rel_day") == -1)["ar"].drop_nulls().to_numpy()
    t = float(sm.OLS(ar1, np.ones_like(ar1)).fit().tvalues[0])
    got = bat.filter((pl.col("test") == "cross_sectional_t") & (pl.col("window") == "[-1,-1]"))
    assert got["statistic"][0] == pytest.approx(t, rel=1e-10)
    assert "Pre-event run-up" in res.summary()


def test_runup_windows_must_end_before_t0(deals: pl.DataFrame, returns: pl.DataFrame) -> None:
    with pytest.raises(InputError, match=r"end before t0.*\[-1,\+1\]"):
        check_runup_windows(((-10, -1), (-1, 1)))
    with pytest.raises(InputError, match="at least one"):
        runup_study(deals, returns, windows=())
