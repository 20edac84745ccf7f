"""Returns on the trading-day grid: the block-wise build of a grouped, sorted panel and the general route.

``analysis.grid.returns_on_grid`` builds the (tickers x grid days) matrix straight from the frame's
buffers when the panel is in the usual shape (each ticker one run of rows, dates strictly increasing
and on the grid) and otherwise takes the general route (duplicate check, off-grid compounding). Here
both are compared bit for bit with each other and with a cell-by-cell reference built from Python
dicts, on panels with gaps, null returns, unwanted tickers between wanted ones, several chunks and
runs that cross block edges; panels that break the usual shape must give what the general route gives.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from analysis import grid
from analysis.grid import returns_on_grid


def _panel(seed: int, n_tickers: int = 7, n_days: int = 150) -> pl.DataFrame:
    """Grid ticker MKT plus firms with gaps and null returns, grouped by ticker and sorted by date, in
    three chunks (so blocks read across chunk edges)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2015-01-05")
    days = np.arange(start, start + 2 * n_days)
    days = days[np.is_busday(days)][:n_days]
    frames = [pl.DataFrame({"ticker": ["MKT"] * n_days, "date": days, "ret": rng.normal(0, 0.01, n_days)})]
    for i in range(n_tickers):
        keep = np.sort(rng.choice(n_days, size=int(n_days * rng.uniform(0.5, 0.98)), replace=False))
        r = rng.normal(0, 0.02, keep.shape[0])
        ret = pl.Series("ret", r).scatter(np.flatnonzero(rng.random(keep.shape[0]) < 0.05), None)
        frames.append(pl.DataFrame({"ticker": [f"F{i}"] * keep.shape[0], "date": days[keep], "ret": ret}))
    whole = pl.concat(frames).with_columns(pl.col("date").cast(pl.Date))
    third = whole.height // 3
    return pl.concat([whole.slice(0, third), whole.slice(third, third), whole.slice(2 * third)], rechunk=False)


def _by_hand(ret: pl.DataFrame, wanted: set[str], grid_ticker: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The matrix cell by cell from Python dicts (no off-grid rows in these panels)."""
    grid_days = sorted(d for t, d, _ in ret.iter_rows() if t == grid_ticker)
    col = {d: j for j, d in enumerate(grid_days)}
    tickers = sorted({t for t in ret["ticker"].to_list()} & wanted)
    row = {t: i for i, t in enumerate(tickers)}
    r = np.full((len(tickers), len(grid_days)), np.nan)
    for t, d, v in ret.iter_rows():
        if t in row:
            r[row[t], col[d]] = np.nan if v is None else v
    return np.array(grid_days, dtype="datetime64[D]"), tickers, r


@pytest.fixture
def spy_on_fast_route(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per call of returns_on_grid, whether the block-wise build answered."""
    took: list[bool] = []
    real = grid._sorted_build

    def spy(*args: object, **kwargs: object) -> grid.ReturnGrid | None:
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        took.append(out is not None)
        return out

    monkeypatch.setattr(grid, "_sorted_build", spy)
    return took


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 19])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_build_equals_the_general_route_and_a_cell_by_cell_build(
    seed: int, block: int, spy_on_fast_route: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grid, "_BLOCK_ROWS", block)
    ret = _panel(seed)
    wanted = {"MKT", "F0", "F2", "F3", "F6"}  # F1, F4, F5 sit between wanted runs and are skipped
    fast = returns_on_grid(ret, wanted, "MKT", required=("MKT",))
    assert spy_on_fast_route == [True]
    # the same rows shuffled are not grouped: the general route
    general = returns_on_grid(ret.sample(fraction=1.0, shuffle=True, seed=seed), wanted, "MKT")
    assert spy_on_fast_route == [True, False]
    days, tickers, want = _by_hand(ret, wanted, "MKT")
    assert fast.tickers == general.tickers == tickers == ["F0", "F2", "F3", "F6", "MKT"]
    assert np.array_equal(fast.grid, days) and np.array_equal(general.grid, days)
    # bit for bit, NaN in the same cells
    assert np.array_equal(fast.r.view(np.int64), general.r.view(np.int64))
    assert np.array_equal(fast.r, want, equal_nan=True)
    assert np.isnan(fast.r).sum() > 0 and np.isfinite(fast.r).sum() > 500


def _break(ret: pl.DataFrame, how: str) -> pl.DataFrame:
    days = ret.filter(pl.col("ticker") == "MKT")["date"]
    if how == "off_grid":  # a firm trades on a day the grid ticker lacks (another exchange's session)
        return ret.filter(~((pl.col("ticker") == "MKT") & (pl.col("date") == days[40])))
    if how == "after_grid":  # a firm return after the grid's last day (not used)
        last = days[-1]
        extra = pl.DataFrame({"ticker": ["F2"], "date": [last + dt.timedelta(days=3)], "ret": [0.5]})
        return pl.concat([ret.filter(pl.col("ticker") <= "F2"), extra, ret.filter(pl.col("ticker") > "F2")])
    if how == "unsorted":  # one ticker's rows not in date order
        f3 = ret.filter(pl.col("ticker") == "F3").reverse()
        return pl.concat([ret.filter(pl.col("ticker") < "F3"), f3, ret.filter(pl.col("ticker") > "F3")])
    if how == "two_runs":  # a ticker's rows in two runs
        f3 = ret.filter(pl.col("ticker") == "F3")
        rest = ret.filter(pl.col("ticker") != "F3")
        return pl.concat([f3.head(20), rest, f3.slice(20)])
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["off_grid", "after_grid", "unsorted", "two_runs"])
def test_panels_outside_the_usual_shape_take_the_general_route(
    how: str, spy_on_fast_route: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grid, "_BLOCK_ROWS", 16)
    ret = _break(_panel(5), how)
    wanted = {"MKT", "F1", "F2", "F3", "F5"}
    got = returns_on_grid(ret, wanted, "MKT")
    assert spy_on_fast_route == [False]
    ref = returns_on_grid(ret.sample(fraction=1.0, shuffle=True, seed=9), wanted, "MKT")
    assert got.tickers == ref.tickers
    assert np.array_equal(got.grid, ref.grid)
    assert np.array_equal(got.r.view(np.int64), ref.r.view(np.int64))


@pytest.mark.parametrize("block", [1, 11, 1 << 19])  # 1 and 11: the duplicate pair straddles a block edge
def test_a_duplicate_inside_a_sorted_run_is_still_an_error(
    block: int, spy_on_fast_route: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grid, "_BLOCK_ROWS", block)
    ret = _panel(6)
    f2 = ret.filter(pl.col("ticker") == "F2")
    dup = pl.concat([ret.filter(pl.col("ticker") < "F2"), f2.head(11), f2.slice(10),
                     ret.filter(pl.col("ticker") > "F2")])
    with pytest.raises(ValueError, match=f"duplicate return for ticker F2 on {f2['date'][10]}"):
        returns_on_grid(dup, {"MKT", "F2"}, "MKT")
    assert spy_on_fast_route == [False]
