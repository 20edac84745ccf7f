"""The engine's block-wise CAR frame and its output arrays: the same bits as the whole-column route.

``analysis.engine._car_frame`` computes t and p in blocks of firm-events (so that its temporaries
stay small at a million firm-events) and the estimates live in arrays from
``analysis.output_arrays`` (the largest on anonymous pages without huge-page advice). Neither may move a number:
here the t and p columns are recomputed by the whole-column formula the engine used before, and fits
with block sizes 1, 7 and one whose block edge falls between two events of the same ticker, with
every output array on the mmap route or none, are compared bit for bit.
"""

from __future__ import annotations

import mmap
import pickle

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import special

import analysis.engine as engine
from analysis import output_arrays
from analysis.engine import EventStudy
from analysis.results import EventStudyResult

N_DAYS = 700
EST = (-250, -11)


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns of MKT and three tickers, and 15 events: ticker A's at rows 0-5, B's at 6-11, C's at
    12-14 in event-id order (the panel's row order), some within a few sessions of each other."""
    rng = np.random.default_rng(20261202)
    dates = np.arange(np.datetime64("2013-01-01"), np.datetime64("2013-01-01") + 2 * N_DAYS)
    dates = dates[np.is_busday(dates)][:N_DAYS]
    tickers = ["A", "B", "C"]
    m = rng.normal(0.0003, 0.01, N_DAYS)
    r = 0.0002 + rng.uniform(0.5, 1.5, 3)[:, None] * m + rng.normal(0.0, 0.02, (3, N_DAYS))
    r[rng.random(r.shape) < 0.03] = np.nan
    r[2, 280:420] = np.nan  # C: one event without enough estimation data (excluded mid-panel)
    firm = pl.DataFrame(
        {"ticker": np.repeat(tickers, N_DAYS), "date": np.tile(dates, 3), "ret": r.ravel()}
    ).filter(pl.col("ret").is_not_nan())
    ret = pl.concat([pl.DataFrame({"ticker": ["MKT"] * N_DAYS, "date": dates, "ret": m}), firm])
    pos = [300, 305, 360, 420, 500, 640, 290, 296, 330, 470, 600, 680, 410, 550, 660]
    tic = ["A"] * 6 + ["B"] * 6 + ["C"] * 3
    events = pl.DataFrame(
        {"event_id": [f"e{i:02d}" for i in range(15)], "ticker": tic, "t0": dates[np.array(pos)]}
    )
    return ret.with_columns(pl.col("date").cast(pl.Date)), events.with_columns(pl.col("t0").cast(pl.Date))


def _fit(data: tuple[pl.DataFrame, pl.DataFrame], chunk: int = 1_000, mask: bool = True) -> EventStudyResult:
    ret, events = data
    return EventStudy(
        ret, events, benchmarks=("MKT",), estimation=EST, chunk_size=chunk, mask_other_events=mask,
        overlap="keep",
    ).fit()


def _on_mmap(a: np.ndarray) -> bool:
    """Whether ``a``'s memory is an ``mmap`` object's (through views and reshapes)."""
    base = a.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def _same_result(a: EventStudyResult, b: EventStudyResult) -> None:
    for name in ("car", "params", "bse", "sigma", "excluded"):
        assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    pa, pb = a.panel, b.panel
    for name in ("ar", "pe_factor", "x_event", "xtx_inv", "sigma", "n_est"):
        assert np.array_equal(getattr(pa, name), getattr(pb, name), equal_nan=True), name
    assert np.array_equal(pa.estimation.array(), pb.estimation.array(), equal_nan=True)


def test_t_and_p_are_the_whole_column_formula_bit_for_bit(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    res = _fit(data)
    assert res.excluded["reason"].to_list() == ["insufficient_estimation_obs"] * 2  # C's two
    assert res.nobs == 13
    car = res.car
    n_w = car["window"].n_unique()
    # the route before blocking: whole (N, W) arrays, df repeated per window
    c = car["car"].fill_null(np.nan).to_numpy().reshape(-1, n_w)
    se = car["se"].fill_null(np.nan).to_numpy().reshape(-1, n_w)
    df = (res.panel.n_est - 2).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = c / se
    p = 2.0 * special.stdtr(np.repeat(df[:, None], n_w, axis=1).astype(float), -np.abs(t))
    assert np.array_equal(car["t"].fill_null(np.nan).to_numpy(), t.ravel(), equal_nan=True)
    assert np.array_equal(car["p"].fill_null(np.nan).to_numpy(), p.ravel(), equal_nan=True)
    assert np.isfinite(p).sum() > 20  # real p-values, not all blank


@pytest.mark.parametrize("block", [1, 7, 3])
@pytest.mark.parametrize("mask", [True, False])
def test_block_size_does_not_change_a_bit(
    data: tuple[pl.DataFrame, pl.DataFrame], monkeypatch: pytest.MonkeyPatch, block: int, mask: bool
) -> None:
    whole = _fit(data, mask=mask)
    assert whole.nobs == 13 < engine._FRAME_BLOCK_ROWS  # the default block holds the whole panel
    monkeypatch.setattr(engine, "_FRAME_BLOCK_ROWS", block)
    blocked = _fit(data, chunk=block, mask=mask)
    if block > 1:
        # a block (and chunk) edge inside one ticker's run of events: A's for 3, B's for 7
        tickers = blocked.panel.keys["ticker"].to_list()
        assert tickers[block - 1] == tickers[block] == {3: "A", 7: "B"}[block]
    _same_result(whole, blocked)


def test_estimates_on_the_mmap_route_are_the_same_bits(
    data: tuple[pl.DataFrame, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every output array of the fit (not only those of >= 4 MiB) on anonymous mmap pages: the same
    numbers, the arrays writable, and a pickled result (sent to a figure worker) intact."""
    heap = _fit(data)
    monkeypatch.setattr(output_arrays, "FRESH_MAPPING_BYTES", 1)
    mapped = _fit(data)
    assert _on_mmap(mapped.panel.ar) and _on_mmap(mapped.panel.xtx_inv)
    assert not _on_mmap(heap.panel.ar)
    _same_result(heap, mapped)
    back = pickle.loads(pickle.dumps(mapped))
    _same_result(heap, back)


def test_empty_large_is_anonymous_writable_and_c_contiguous() -> None:
    a = output_arrays.empty((700_000, 1), np.float64)  # 5.6 MB: the mmap route
    assert _on_mmap(a)
    assert a.shape == (700_000, 1) and a.dtype == np.float64
    assert a.flags.c_contiguous and a.flags.writeable
    a[:] = 2.5
    assert float(a.sum()) == 1_750_000.0
    b = output_arrays.empty(524_288, dtype=np.int64)  # exactly 4 MiB
    assert b.shape == (524_288,) and b.dtype == np.int64 and _on_mmap(b)
    small = output_arrays.empty((10, 3))
    assert small.shape == (10, 3) and not _on_mmap(small)
    below = output_arrays.empty(524_287, dtype=np.int64)  # 8 bytes short: numpy's own
    assert not _on_mmap(below)
    assert output_arrays.empty((0, 21)).shape == (0, 21)
    obj = output_arrays.empty(700_000, dtype=object)  # object arrays hold references: numpy's own
    assert obj.dtype == object and obj.base is None


def test_empty_out_of_memory_is_a_memory_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mapping route fails as numpy's own allocation does (MemoryError), not with an OSError."""
    import errno

    def no_memory(*_args: object, **_kw: object) -> mmap.mmap:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(output_arrays.mmap, "mmap", no_memory)
    with pytest.raises(MemoryError, match="4,194,304 bytes"):
        output_arrays.empty(524_288, dtype=np.int64)
    assert output_arrays.empty(1_000).shape == (1_000,)  # below the threshold: numpy's, untouched
