"""Figures of the run-up, volume and volatility studies draw the study's numbers, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis.activity_figures import runup_figure, variance_ratio_figure, volume_figure
from analysis.plots import save
from analysis.runup import runup_study
from analysis.volatility import variance_ratio
from analysis.volume import abnormal_volume
from carousel.db import connect
from core.errors import InputError
from ledger import api
from ledger.load import import_file
from market.returns import compute_returns
from market.sources import read_snapshot_file

REPO = Path(__file__).resolve().parents[2]
TICKERS = ("ORCL", "MSFT", "NVDA", "ARM", "9984.T", "SPY", "GSPC")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    with connect(tmp_path_factory.mktemp("f") / "f.duckdb") as con:
        import_file(con, REPO / "data" / "events" / "deals.csv")
        deals = api.deals(con)
    prices = pl.concat([read_snapshot_file(REPO / "data" / "prices" / f"{t}.csv") for t in TICKERS])
    return deals, prices


def test_runup_figure_draws_the_daily_ars(inputs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deals, prices = inputs
    res = runup_study(deals, compute_returns(prices), deal_filter=["stargate-2025-01-21"]).study
    fig = runup_figure(res, "stargate-2025-01-21:ORCL")
    heights = np.array([p.get_height() for p in fig.axes[0].patches])
    want = 100 * res.ar.filter(pl.col("event_id") == "stargate-2025-01-21:ORCL").sort("rel_day")["ar"].to_numpy()
    np.testing.assert_allclose(heights, want, rtol=1e-12)
    assert heights[-1] == pytest.approx(5.8285, abs=1e-3)  # the leak day, 2025-01-21
    a = save(fig, tmp_path / "a", "runup")
    b = save(runup_figure(res, "stargate-2025-01-21:ORCL"), tmp_path / "b", "runup")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    with pytest.raises(InputError, match="no abnormal returns"):
        runup_figure(res, "nope")


def test_volume_and_variance_ratio_figures(inputs) -> None:  # type: ignore[no-untyped-def]
    deals, prices = inputs
    vol = abnormal_volume(deals, prices, deal_filter=["stargate-2025-01-21"])
    fig = volume_figure(vol)
    heights = np.array([p.get_height() for p in fig.axes[0].patches])
    np.testing.assert_allclose(heights, vol.aar.sort("rel_day").drop_nulls("aar")["aar"].to_numpy(), rtol=1e-12)
    ret = runup_study(deals, compute_returns(prices), deal_filter=["stargate-2025-01-21"]).study
    vr = variance_ratio(ret.panel, (-1, -1))
    fig = variance_ratio_figure(vr)
    xs = np.sort(fig.axes[0].collections[0].get_offsets()[:, 0])
    np.testing.assert_allclose(xs, np.sort(vr.frame["var_ratio"].to_numpy()), rtol=1e-12)
    crit = stats.f.ppf(0.95, 1, np.median(vr.frame["df2"].to_numpy()))
    assert f"{crit:.2f}" in fig.axes[0].get_legend().get_texts()[0].get_text()
