"""Abnormal log volume on the shipped Stargate event against statsmodels OLS on the same series."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from analysis.volume import abnormal_volume, log_volume
from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file
from market.sources import read_snapshot_file

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "data" / "prices"
T0 = date(2025, 1, 22)  # stargate-2025-01-21, after the close


@pytest.fixture(scope="module")
def deals(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    with connect(tmp_path_factory.mktemp("v") / "v.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        return api.deals(con)


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    return pl.concat([read_snapshot_file(PRICES / f"{t}.csv") for t in ("ORCL", "MSFT", "NVDA", "ARM", "9984.T", "GSPC")])


def _raw(ticker: str) -> pl.DataFrame:
    """ticker's (date, volume) straight from its CSV."""
    name = "GSPC" if ticker == "^GSPC" else ticker
    return pl.read_csv(PRICES / f"{name}.csv", try_parse_dates=True).select("date", "volume")


@pytest.mark.parametrize("ticker", ["ORCL", "MSFT", "NVDA"])
def test_abnormal_log_volume_equals_statsmodels(deals: pl.DataFrame, prices: pl.DataFrame, ticker: str) -> None:
    res = abnormal_volume(deals, prices, deal_filter=["stargate-2025-01-21"], ticker_filter=[ticker],
                          windows=((-1, 1), (0, 0), (-10, 10)))
    # Independent route: the CSVs, ln(V + 1), the ^GSPC grid, statsmodels OLS over [-250, -11].
    m = _raw("^GSPC").filter(pl.col("volume") > 0).sort("date")
    grid = m["date"].to_list()
    i0 = grid.index(T0)
    f = _raw(ticker)
    both = m.join(f, on="date", how="inner", suffix="_f").sort("date")
    y = np.log1p(both["volume_f"].to_numpy().astype(float))
    x = sm.add_constant(np.log1p(both["volume"].to_numpy().astype(float)))
    d = both["date"].to_list()
    est = [i for i, t in enumerate(d) if grid[i0 - 250] <= t <= grid[i0 - 11]]
    assert len(est) == 240  # no other ORCL/MSFT/NVDA event masks 2024 days
    ols = sm.OLS(y[est], x[est]).fit()
    ev = [d.index(grid[i0 + k]) for k in range(-10, 11)]
    ar = y[ev] - x[ev] @ ols.params
    got_ar = res.ar.sort("rel_day")["ar"].to_numpy()
    np.testing.assert_allclose(got_ar, ar, rtol=0, atol=1e-10)
    # params relative: ln volumes ~ 17-22 make X'X ill-scaled for the normal equations (~3e-11 rel.)
    assert res.params["alpha"][0] == pytest.approx(ols.params[0], rel=1e-10)
    assert res.params.select(pl.col("^beta_.*$"))[0, 0] == pytest.approx(ols.params[1], rel=1e-10)
    for (a, b), row in zip(((-1, 1), (0, 0), (-10, 10)), res.car.iter_rows(named=True), strict=True):
        rows = [ev[k + 10] for k in range(a, b + 1)]
        s = x[rows].sum(axis=0)
        car = float(np.sum(y[rows] - x[rows] @ ols.params))
        se = float(np.sqrt(ols.scale * len(rows) + s @ ols.cov_params() @ s))
        assert row["car"] == pytest.approx(car, rel=1e-9, abs=1e-9)
        assert row["se"] == pytest.approx(se, rel=1e-10)
        assert row["bhar"] is None
    # ORCL's volume on the Stargate day: about exp(1.74) ~ 5.7x its market-predicted level.
    if ticker == "ORCL":
        day0 = res.car.filter(pl.col("window") == "[0,0]")
        assert day0["car"][0] == pytest.approx(float(ar[10]), abs=1e-10)
        assert 1.6 < day0["car"][0] < 1.9 and day0["p"][0] < 1e-3


def test_log_volume_grid_and_zero_market_volume(prices: pl.DataFrame) -> None:
    lv = log_volume(prices)
    gspc = lv.filter(pl.col("ticker") == "^GSPC")
    # ^GSPC's Yahoo 0 on 2023-05-24 is missing, not ln(1) = 0
    assert date(2023, 5, 24) not in gspc["date"].to_list()
    # Tokyo sessions on US holidays are dropped (not compounded): 2025-01-20 (MLK day) is one
    tokyo = lv.filter(pl.col("ticker") == "9984.T")["date"].to_list()
    assert date(2025, 1, 20) not in tokyo and date(2025, 1, 21) in tokyo
    raw = _raw("ORCL").filter(pl.col("date") == date(2025, 1, 21))["volume"][0]
    got = lv.filter((pl.col("ticker") == "ORCL") & (pl.col("date") == date(2025, 1, 21)))["ret"][0]
    assert got == pytest.approx(np.log(raw + 1.0), rel=1e-15)


def test_bad_input(deals: pl.DataFrame, prices: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="volume"):
        log_volume(prices.drop("volume"))
    with pytest.raises(InputError, match="market volume benchmark"):
        log_volume(prices, market=("QQQ",))
    with pytest.raises(InputError, match="market-volume model"):
        abnormal_volume(deals, prices, model="ff3")
