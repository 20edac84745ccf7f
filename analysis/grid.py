"""Returns and events on the trading-day grid: the dense matrices the batch engine gathers from.

Why dense: every firm-event then becomes one row of an (N, L) matrix on the relative-day grid, built
with a single flat ``np.take``; no joins per event. The grid is the first benchmark's trading days
(SPY: NYSE sessions), or every date present when that ticker is absent. See :mod:`analysis.engine`
for the conventions (off-grid days compounded into the next grid day, t0 moved to the next grid day).

All functions here are pure: frames and arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.models import NormalReturnModel, lagged, parse_benchmark


@dataclass(frozen=True)
class ReturnGrid:
    """Simple returns of the wanted tickers on the grid."""

    grid: np.ndarray  # (T,) datetime64[D]
    tickers: list[str]  # sorted
    r: np.ndarray  # (n_tickers, T), NaN where absent

    @property
    def frame(self) -> pl.DataFrame:
        """The grid as a one-column Polars frame (``date``)."""
        return pl.DataFrame({"date": self.grid}).with_columns(pl.col("date").cast(pl.Date))

    @property
    def ticker_index(self) -> pl.DataFrame:
        """DataFrame[ticker, _t]: ticker -> row of ``r``."""
        return pl.DataFrame({"ticker": self.tickers}).with_row_index("_t")


def _cast_returns(ret: pl.DataFrame) -> pl.DataFrame:
    # Cast only what is not already the right type: on a panel of millions of rows every pass counts.
    casts = [
        pl.col(c).cast(t)
        for c, t in (("ticker", pl.String), ("date", pl.Date), ("ret", pl.Float64))
        if ret.schema[c] != t
    ]
    return ret.with_columns(casts) if casts else ret


def _ticker_runs(ret: pl.DataFrame, wanted: set[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted wanted tickers present in ``ret``, and the ticker column's runs: (tickers, run lengths,
    each run's code; -1: not wanted).

    Ticker -> integer code through the column's runs: a panel arrives grouped by ticker (DuckDB
    ORDER BY, a concat per ticker), so run-length encoding compares neighbours once instead of
    hashing every row (4x faster than an Enum cast on 9 M rows), and the few run values are mapped
    to codes. Any order stays correct, only slower (one run per row).
    """
    runs = ret["ticker"].rle()
    run_len = runs.struct.field("len").to_numpy().astype(np.int64)
    run_val = runs.struct.field("value")
    tickers = sorted(set(run_val.drop_nulls().unique().to_list()) & wanted)
    run_code = (
        run_val.replace_strict({t: i for i, t in enumerate(tickers)}, default=-1, return_dtype=pl.Int64)
        .fill_null(-1)
        .to_numpy()
    )
    return tickers, run_len, run_code


def _grid_days(dnum: np.ndarray, tcode: np.ndarray, grid_code: int | None) -> np.ndarray:
    """Day numbers of the grid: the grid ticker's dates, else every date present (a bincount over the
    day range, not a sort of every row)."""
    src_days = dnum[tcode == grid_code] if grid_code is not None else dnum
    if src_days.shape[0] == 0:
        raise ValueError("no trading days in returns")
    d0 = int(src_days.min())
    present = np.bincount(src_days - d0) > 0
    return np.flatnonzero(present).astype(np.int64) + d0


def _grid_positions(dnum: np.ndarray, gnum: np.ndarray) -> np.ndarray:
    """Grid column of every row's date (-1: not a grid day), through a lookup table on day numbers."""
    lut = np.full(int(gnum[-1] - gnum[0]) + 1, -1, dtype=np.int64)
    lut[gnum - gnum[0]] = np.arange(gnum.shape[0])
    rel_day = dnum - gnum[0]
    # Whole-column passes without boolean masks in the common case (every date inside the grid's
    # range and on the grid); masks (copies of 9 M elements each) only when needed.
    if int(rel_day.min()) >= 0 and int(rel_day.max()) < lut.shape[0]:
        return lut[rel_day]
    g = np.full(dnum.shape[0], -1, dtype=np.int64)
    inside = (rel_day >= 0) & (rel_day < lut.shape[0])
    g[inside] = lut[rel_day[inside]]
    return g


def _compound_off_grid(
    flat_r: np.ndarray,
    seen: np.ndarray,
    off: np.ndarray,
    tcode: np.ndarray,
    dnum: np.ndarray,
    rv: np.ndarray,
    gnum: np.ndarray,
    tickers: list[str],
) -> None:
    """Compound off-grid returns (rows ``off``) into the next grid day of ``flat_r``, in place.

    Another exchange's session on a grid holiday: the grid-day return then spans from the previous grid
    day's close and no move is lost. Rare in practice (a few days a year for a Tokyo ticker on the US
    grid), so a small sorted pass.
    """
    n_t = gnum.shape[0]
    key = tcode[off] * (int(dnum.max()) + 1) + dnum[off]
    if np.unique(key).shape[0] < key.shape[0]:
        _, first, counts = np.unique(key, return_index=True, return_counts=True)
        row = int(off[first[np.argmax(counts > 1)]])
        raise ValueError(
            f"duplicate return for ticker {tickers[tcode[row]]} on {np.datetime64(int(dnum[row]), 'D')}"
        )
    target = tcode[off] * n_t + np.searchsorted(gnum, dnum[off], side="left")
    growth = np.ones(flat_r.shape[0])
    np.multiply.at(growth, target, 1.0 + rv[off])  # NaN propagates: a null day nulls it
    hit = np.unique(target)
    # Where the ticker has no row on that grid day (its own exchange closed), the off-grid move alone is
    # the grid day's return: close(last session <= day) / close(previous grid day) - 1.
    flat_r[hit] = np.where(seen[hit], (1.0 + flat_r[hit]) * growth[hit] - 1.0, growth[hit] - 1.0)


#: Rows per block of :func:`_sorted_build`: the block's temporaries (a few MB) come back from the
#: allocator's free lists block after block, where whole-column temporaries of 9 M rows would each be
#: fresh pages (page faults, and the kernel's huge-page compaction stalls, cost more than the arithmetic).
_BLOCK_ROWS = 1 << 19


def _sorted_build(
    ret: pl.DataFrame, tickers: list[str], run_len: np.ndarray, run_code: np.ndarray, grid_code: int
) -> ReturnGrid | None:
    """The return matrix of a panel in the usual shape, or None to take the general route.

    The usual shape: every wanted ticker in one run of rows, its dates strictly increasing and all on
    the grid (the grid ticker's dates), no null date. Then no cell can be written twice and nothing is
    compounded, so the matrix is one scatter of the returns, done block by block straight from the
    frame's own buffers (zero-copy ``to_numpy`` of each block; no whole-column copies, no (ticker,
    date) code per row kept, no duplicate-check array). The cells and values are those of the general
    route, which any other panel takes (tests/analysis/test_grid.py checks they agree bit for bit).
    """
    wanted_runs = np.flatnonzero(run_code >= 0)
    if wanted_runs.shape[0] != len(tickers):  # a ticker in more than one run: not grouped
        return None
    ends = np.cumsum(run_len)
    starts = ends - run_len
    date = ret["date"].to_physical()
    g_run = int(wanted_runs[run_code[wanted_runs] == grid_code][0])
    gd = date.slice(int(starts[g_run]), int(run_len[g_run])).to_numpy()
    if not bool((gd[1:] > gd[:-1]).all()):
        return None
    gnum = gd.astype(np.int64)  # the grid ticker's dates, strictly increasing: the grid days
    n_t = gnum.shape[0]
    g0 = int(gnum[0])
    lut = np.full(int(gnum[-1]) - g0 + 1, -1, dtype=np.int32)  # day number - g0 -> grid column
    lut[gnum - g0] = np.arange(n_t, dtype=np.int32)
    flat_r = np.full(len(tickers) * n_t, np.nan)
    rcol = ret["ret"]
    # Wanted rows as maximal segments of consecutive wanted runs, cut into blocks.
    seg_lo = starts[wanted_runs]
    seg_hi = ends[wanted_runs]
    joined = np.flatnonzero(seg_lo[1:] == seg_hi[:-1])
    seg_lo = np.delete(seg_lo, joined + 1)
    seg_hi = np.delete(seg_hi, joined)
    code_nt = run_code.astype(np.int64) * n_t
    for lo_seg, hi_seg in zip(seg_lo.tolist(), seg_hi.tolist(), strict=True):
        for lo in range(lo_seg, hi_seg, _BLOCK_ROWS):
            hi = min(lo + _BLOCK_ROWS, hi_seg)
            d = date.slice(lo, hi - lo).to_numpy()
            rel = d - g0  # int32, as Date's physical type
            if int(rel.min()) < 0 or int(rel.max()) >= lut.shape[0]:
                return None  # a date outside the grid's range
            col = lut.take(rel)
            # runs overlapping [lo, hi): each row's code times n_t
            r0 = int(np.searchsorted(ends, lo, side="right"))
            r1 = int(np.searchsorted(starts, hi, side="left"))
            lens = np.minimum(ends[r0:r1], hi) - np.maximum(starts[r0:r1], lo)
            row_base = np.repeat(code_nt[r0:r1], lens)
            same = row_base[1:] == row_base[:-1]
            if int(col.min()) < 0 or not bool(((col[1:] > col[:-1]) | ~same).all()):
                return None  # an off-grid date, or dates not strictly increasing within a ticker
            if lo > lo_seg and lo > int(starts[r0]) and not col[0] > lut[int(date[lo - 1]) - g0]:
                return None  # the ticker's run goes on from the previous block: same check at the edge
            row_base += col
            flat_r[row_base] = rcol.slice(lo, hi - lo).to_numpy()
    return ReturnGrid(gnum.astype("datetime64[D]"), tickers, flat_r.reshape(len(tickers), n_t))


def returns_on_grid(
    returns: pl.DataFrame, wanted: set[str], grid_ticker: str | None, required: Sequence[str] = ()
) -> ReturnGrid:
    """The (tickers x grid days) return matrix of the ``wanted`` tickers.

    ``grid_ticker`` defines the grid when present; every ticker in ``required`` must be present
    (ValueError otherwise), as must be a single return per ticker and date.
    """
    ret = _cast_returns(returns)
    tickers, run_len, run_code = _ticker_runs(ret, wanted)
    missing = [b for b in required if b not in tickers]
    if missing:
        raise ValueError(f"benchmark ticker(s) not in returns: {', '.join(missing)}")
    grid_code = tickers.index(grid_ticker) if grid_ticker in tickers else None
    if grid_code is not None and not ret["date"].null_count():
        built = _sorted_build(ret, tickers, run_len, run_code, grid_code)
        if built is not None:
            return built
    tcode = np.repeat(run_code, run_len)
    keep = tcode >= 0
    if ret["date"].null_count():  # a row without a date cannot be placed
        keep &= ret["date"].is_not_null().to_numpy()
    all_kept = bool(keep.all())
    if not all_kept:
        tcode = tcode[keep]
    dnum = ret["date"].to_physical().fill_null(0).to_numpy().astype(np.int64)
    ret_col = ret["ret"]
    rv = (ret_col.fill_null(np.nan) if ret_col.null_count() else ret_col).to_numpy()
    if not all_kept:
        dnum, rv = dnum[keep], rv[keep]
    if dnum.shape[0] == 0:
        raise ValueError("no trading days in returns")
    gnum = _grid_days(dnum, tcode, grid_code)
    grid = gnum.astype("datetime64[D]")
    n_t = grid.shape[0]
    g = _grid_positions(dnum, gnum)
    on = g >= 0
    all_on = bool(on.all())
    flat = tcode * n_t + g if all_on else tcode[on] * n_t + g[on]
    seen = np.zeros(len(tickers) * n_t, dtype=bool)
    seen[flat] = True
    if int(seen.sum()) < flat.shape[0]:  # some cell was written twice: a duplicate (ticker, date)
        counts = np.bincount(flat, minlength=seen.shape[0])
        cell = int(np.argmax(counts > 1))
        raise ValueError(f"duplicate return for ticker {tickers[cell // n_t]} on {grid[cell % n_t]}")
    flat_r = np.full(len(tickers) * n_t, np.nan)
    flat_r[flat] = rv if all_on else rv[on]
    off = np.empty(0, dtype=np.int64) if all_on else np.flatnonzero(~on & (dnum < gnum[-1]))
    if off.shape[0]:
        _compound_off_grid(flat_r, seen, off, tcode, dnum, rv, gnum, tickers)
    return ReturnGrid(grid, tickers, flat_r.reshape(len(tickers), n_t))


def grid_series(
    model: NormalReturnModel, rg: ReturnGrid, factors: pl.DataFrame | None
) -> dict[str, np.ndarray]:
    """The series the model's design reads, on the grid: factor columns (NaN where the factor file
    has no day) or benchmark returns (lagged ones shifted along the grid)."""
    series: dict[str, np.ndarray] = {}
    if model.needs_factors:
        fac = factors
        if fac is None:
            from analysis.factors import load_ff3

            fac = load_ff3()
        on_grid = rg.frame.join(
            fac.select(pl.col("date").cast(pl.Date), *[pl.col(c).cast(pl.Float64) for c in model.series()]),
            on="date",
            how="left",
        ).sort("date")
        for c in model.series():
            series[c] = on_grid[c].fill_null(np.nan).to_numpy()
        return series
    pos_of = {t: i for i, t in enumerate(rg.tickers)}
    for b in model.series():
        base, lag = parse_benchmark(b)
        if base in pos_of:
            series[b] = lagged(rg.r[pos_of[base]], lag)
    return series


def locate(t0: pl.Series, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(has a t0, grid column of t0 or of the next grid day; -1 without t0; T after the grid's end)."""
    days = t0.to_numpy().astype("datetime64[D]")
    has = ~np.isnat(days)
    i0 = np.full(days.shape[0], -1, dtype=np.int64)
    i0[has] = np.searchsorted(grid, days[has], side="left")
    return has, i0


def span_counts(
    n_tickers: int, n_t: int, tix: np.ndarray, i0: np.ndarray, has_t0: np.ndarray, span: tuple[int, int]
) -> np.ndarray:
    """(n_tickers, T) int32: how many located events' spans (relative days ``span``) cover each day."""
    # A difference array: +1 where a span starts, -1 after it ends (nothing where that is past the
    # ticker's row), one scatter-add of N events and a running sum along days, in place in the one
    # int32 result (no N x span scatter, and no whole-grid int64 temporaries: fresh pages cost more
    # than the sums).
    located = (tix >= 0) & has_t0 & (i0 < n_t)
    t = tix[located].astype(np.int64) * n_t
    lo = np.clip(i0[located] + span[0], 0, n_t)
    hi = np.clip(i0[located] + span[1] + 1, 0, n_t)
    counts = np.zeros((n_tickers, n_t), dtype=np.int32)
    flat = counts.reshape(-1)
    # np.int32 operands: a Python int would send ufunc.at down its casting path (15x slower at 1M).
    starts = lo < n_t
    np.add.at(flat, t[starts] + lo[starts], np.int32(1))
    stops = hi < n_t
    np.add.at(flat, t[stops] + hi[stops], np.int32(-1))
    np.cumsum(counts, axis=1, dtype=np.int32, out=counts)
    return counts


def missing_factor_days(
    series: dict[str, np.ndarray], names: Sequence[str], i0: np.ndarray, rel: tuple[int, int], n_t: int
) -> np.ndarray:
    """Per event, the grid days of its span (``rel`` around ``i0``) without every factor; strict:
    any such day excludes the event."""
    bad = np.zeros(n_t, dtype=bool)
    for c in names:
        bad |= ~np.isfinite(series[c])
    cum = np.concatenate([[0], np.cumsum(bad)])
    lo = np.clip(i0 + rel[0], 0, n_t)
    hi = np.clip(i0 + rel[1] + 1, 0, n_t)
    return cum[hi] - cum[np.minimum(lo, hi)]
