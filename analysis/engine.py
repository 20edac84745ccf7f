"""Event-study estimation: a vectorised batch engine and the statsmodels routes it must agree with.

How the batch engine works (why it is fast): all returns are put once on a dense (tickers x trading
days) matrix on the benchmark's trading-day grid. Each firm-event is then one row of an (N, L) matrix on
the relative-day grid, built with a single flat gather (``np.take``). Per firm-event sufficient
statistics X'X and X'y are einsum reductions over the regressor planes with invalid days zeroed (the NaN
mask), one batched ``np.linalg.inv`` gives every (X'X)^-1, and residuals, sigma, ARs and CARs are
whole-array operations. The only Python loop is over chunks of firm-events (default 1,000: the
working set stays in cache, and memory stays bounded for 10^6 events).

Variance of a CAR over a window W of L_W days (prediction error, exact)::

    Var(CAR_W) = sigma^2 * (L_W + 1' X_W (X'X)^-1 X_W' 1) = sigma^2 * (L_W + s' (X'X)^-1 s),  s = X_W' 1

which contains the cross-day covariance terms x_t'(X'X)^-1 x_u (t != u) that per-day sums omit.

BHAR over W is buy-and-hold firm return minus buy-and-hold *expected* return from the same model::

    BHAR_W = prod_{t in W} (1 + r_t) - prod_{t in W} (1 + offset_t + x_t' b)

(the benchmark's own buy-and-hold for market-adjusted, the fitted normal return otherwise; rf + fitted
excess return for FF3).

Conventions that are ours (documented, tested):
- The grid is the trading days of the first benchmark (SPY by default) in ``returns``; when that ticker is
  absent (mean-adjusted, FF3 on synthetic data) the grid is every date present in ``returns``. A return on
  a date outside the grid (e.g. a Tokyo session on a US holiday) is compounded into the next grid day's
  return, (1 + r_off)(1 + r_next) - 1, so the grid-day return still runs from the last close on or before
  the previous grid day (a move on the off-grid day is not lost); a null on either day makes the
  compounded return null. A return after the last grid day is not used. A t0 that is not a grid day moves
  to the next grid day (``t0_grid`` in the keys).
- A CAR is reported only when every day of its window has a valid abnormal return (``n_days`` says how
  many); otherwise car/se/t/p/bhar are null for that window.
- Other events of the same ticker: every day of their event span (the union of the event windows) that
  falls in this firm-event's estimation window is masked (default) or, with ``mask_other_events=False``,
  kept and counted in ``n_other_event_days``. The other events are ``other_events`` when given (so that
  studying a subset of the events masks exactly what the full study masks), else ``events`` itself.
- Market-adjusted (k = 0): sigma is the sample standard deviation of the estimation-window abnormal
  returns (demeaned, ddof 1), and Var(AR) = sigma^2 (no estimation error).
- t and p use Student t with M - k degrees of freedom (M - 1 when k = 0).
- ``sigma_ddof='k'`` means M - k, and M - 1 for market-adjusted (k = 0).
- The panel's ``xtx_inv`` is the matrix A of the prediction-error correction, ``pe_factor = 1 + x'Ax``:
  (X'X)^-1 over the firm's own estimation days (textbook), or under ``pe_over_all_market_days``
  (estudy2) the regressor means and squared deviations over every estimation-window market day with
  1/M_i over the firm's own observations (A = (X'X_all)^-1 + (1/M_i - 1/M_all) e_0 e_0'). The
  event-dummy route rebuilds the dummies' covariance from that A under estudy2 conventions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from analysis.conventions import TEXTBOOK, Conventions
from analysis.models import (
    ModelSpec,
    Plane,
    benchmark_tickers,
    design,
    lagged,
    model_spec,
    parse_benchmark,
    stack,
)
from analysis.panel import ARPanel
from analysis.results import EventStudyResult
from analysis.window import DEFAULT_WINDOWS, window_label

#: Exclusion reason codes, in the order they are checked (the first that applies is reported).
REASONS: dict[str, str] = {
    "no_t0": "the deal has no announcement date, so there is no event day",
    "ticker_not_found": "no returns for this ticker",
    "no_event_returns": "no valid return on any event-window day (or t0 after the data ends)",
    "factors_missing": "the estimation or event window needs factor days that are not in the factor file",
    "insufficient_estimation_obs": "fewer valid estimation-window returns than min_obs",
    "singular_design": "the estimation regressors are collinear (X'X not invertible)",
}

Method = Literal["batch", "statsmodels", "event_dummy"]


def _condition(xtx: np.ndarray) -> np.ndarray:
    """Condition numbers of a stack of symmetric PSD matrices after scaling to unit diagonal.

    Scaling first makes the check about collinearity, not units (a return series has X'X entries ~1e-4
    next to the intercept's M). Batched ``eigvalsh`` on k x k blocks is cheap; inf for a zero column.
    """
    d = np.sqrt(np.diagonal(xtx, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = xtx / d[:, :, None] / d[:, None, :]
    out = np.full(xtx.shape[0], np.inf)
    fine = np.isfinite(scaled).all(axis=(1, 2)) & (d > 0).all(axis=1)
    if fine.any():
        ev = np.linalg.eigvalsh(scaled[fine])
        with np.errstate(divide="ignore"):
            out[fine] = np.where(ev[:, 0] > 0, ev[:, -1] / ev[:, 0], np.inf)
    return out


def _moments(
    planes: list[Plane], use: np.ndarray, yz: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Batched X'X (n, k, k) and X'y (n, k) over the days in ``use`` (``yz``: y zeroed off ``use``)."""
    n, k = use.shape[0], len(planes)
    z = [np.empty(0) if p is None else np.where(use, p, 0.0) for p in planes]
    xtx = np.empty((n, k, k))
    for i in range(k):
        for j in range(i, k):
            if planes[i] is None and planes[j] is None:
                v = use.sum(axis=1).astype(np.float64)
            elif planes[i] is None:
                v = z[j].sum(axis=1)
            elif planes[j] is None:
                v = z[i].sum(axis=1)
            else:
                v = np.einsum("nl,nl->n", z[i], z[j])
            xtx[:, i, j] = xtx[:, j, i] = v
    xty = np.empty((n, k))
    if yz is not None:
        for j in range(k):
            xty[:, j] = yz.sum(axis=1) if planes[j] is None else np.einsum("nl,nl->n", z[j], yz)
    return xtx, xty


def _intercept_fix(m_firm: np.ndarray, m_all: np.ndarray) -> np.ndarray:
    """estudy2's correction term: 1/M_i (the firm's own observations) in place of 1/M_all.

    With an intercept, (X'X)^-1 over all market days is [[1/M_all + mbar'S^-1 mbar, ...], ...]; estudy2
    takes the regressor mean and squared deviations over every market day of the estimation window
    but divides by the firm's own count, so only the (0, 0) element moves by 1/M_i - 1/M_all.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        fix = 1.0 / m_firm - 1.0 / m_all
    return np.where(np.isfinite(fix), fix, 0.0)


def _quad_planes(a: np.ndarray, x: list[np.ndarray]) -> np.ndarray:
    """x_t' A x_t for every row and column, with x given as k planes (n, c): sum_ij A_ij x_i x_j."""
    k = len(x)
    out = np.zeros(x[0].shape)
    for i in range(k):
        out += a[:, i, i, None] * x[i] * x[i]
        for j in range(i + 1, k):
            out += 2.0 * a[:, i, j, None] * x[i] * x[j]
    return out


@dataclass
class _Prepared:
    """Everything the estimators share: the grid, dense matrices and the candidate firm-events."""

    grid: np.ndarray  # (T,) datetime64[D]
    tickers: list[str]
    r: np.ndarray  # (n_tickers, T) returns on the grid, NaN where absent
    series: dict[str, np.ndarray]  # name -> (T,) benchmark returns or factors on the grid
    other: np.ndarray  # (n_tickers, T) int32: how many event spans cover the day
    events: pl.DataFrame  # all events, sorted, with _tix, _i0, _reason
    rel: np.ndarray  # (L,) relative days
    is_est: np.ndarray  # (L,) bool
    win_cols: list[np.ndarray]  # column indices of each event window


@dataclass
class _ChunkOut:
    """Estimates for the firm-events of one chunk that survive estimation."""

    keep: np.ndarray  # (n,) bool, chunk rows included
    reason: np.ndarray  # (n,) object: reason code or None
    n_masked: np.ndarray  # (n,) int other-event days in the estimation window
    b: np.ndarray  # (m, k)
    bse: np.ndarray  # (m, k)
    sigma: np.ndarray  # (m,)
    n_est: np.ndarray  # (m,)
    ar: np.ndarray  # (m, L)
    pe: np.ndarray  # (m, L)
    x_event: np.ndarray  # (m, Le, k)
    a_pe: np.ndarray  # (m, k, k)
    car: np.ndarray  # (m, W)
    car_se: np.ndarray  # (m, W)
    bhar: np.ndarray  # (m, W)
    n_days: np.ndarray  # (m, W)


class EventStudy:
    """An event study of ``events`` on daily simple ``returns``.

    Args:
        returns: DataFrame[ticker, date, ret] (simple returns; other columns ignored), benchmarks included.
        events: DataFrame[event_id, deal_id, ticker, t0] (t0 nullable Date; deal_id optional).
        model: ``mean`` | ``market_adjusted`` | ``market`` | ``multifactor`` | ``ff3``.
        benchmarks: benchmark tickers in ``returns`` (the first also defines the trading-day grid);
            ``'SPY[-1]'`` is SPY lagged one grid day (see :mod:`analysis.models`).
        estimation: estimation window in trading days relative to t0, inclusive.
        windows: event windows (inclusive), must not overlap the estimation window.
        min_obs: minimum valid estimation-window observations.
        factors: DataFrame[date, mkt_rf, smb, hml, rf] in decimals (default: the shipped FF3 file).
        conventions: formula conventions (``TEXTBOOK`` or ``ESTUDY2``).
        mask_other_events: mask other events of the same ticker inside the estimation window.
        other_events: DataFrame[ticker, t0] of every event whose span masks estimation days (default:
            ``events``). Pass the full event list when ``events`` is a filtered subset, so that a filter
            changes which firm-events are reported but not how each one is estimated.
        chunk_size: firm-events per batch chunk (memory bound).
    """

    def __init__(
        self,
        returns: pl.DataFrame,
        events: pl.DataFrame,
        model: str = "market",
        benchmarks: Sequence[str] = ("SPY",),
        estimation: tuple[int, int] = (-250, -11),
        windows: Sequence[tuple[int, int]] = DEFAULT_WINDOWS,
        min_obs: int = 120,
        factors: pl.DataFrame | None = None,
        conventions: Conventions = TEXTBOOK,
        mask_other_events: bool = True,
        chunk_size: int = 1_000,
        other_events: pl.DataFrame | None = None,
    ) -> None:
        self.spec: ModelSpec = model_spec(model, tuple(benchmarks))
        est = (int(estimation[0]), int(estimation[1]))
        if est[0] > est[1]:
            raise ValueError(f"estimation window {estimation} is empty")
        wins = tuple((int(a), int(b)) for a, b in windows)
        if not wins:
            raise ValueError("at least one event window is needed")
        for a, b in wins:
            if a > b:
                raise ValueError(f"event window ({a}, {b}) is empty")
            if not (b < est[0] or a > est[1]):
                raise ValueError(f"event window ({a}, {b}) overlaps the estimation window {est}")
        if len(set(wins)) != len(wins):
            raise ValueError("duplicate event windows")
        if min_obs < 1:
            raise ValueError("min_obs must be at least 1")
        for col in ("ticker", "date", "ret"):
            if col not in returns.columns:
                raise ValueError(f"returns frame lacks column {col!r}")
        for col in ("event_id", "ticker", "t0"):
            if col not in events.columns:
                raise ValueError(f"events frame lacks column {col!r}")
        self.returns = returns
        self.events = events
        self.estimation = est
        self.windows = wins
        self.min_obs = int(min_obs)
        self.factors = factors
        self.conventions = conventions
        self.mask_other_events = mask_other_events
        if other_events is not None:
            for col in ("ticker", "t0"):
                if col not in other_events.columns:
                    raise ValueError(f"other_events frame lacks column {col!r}")
        self.other_events = other_events
        self.chunk_size = int(chunk_size)
        #: wall-clock seconds of the last fit by stage (prepare, estimate, assemble); for bench/ only.
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ preparation (shared)

    def _prepare(self) -> _Prepared:
        spec = self.spec
        ret = self.returns
        # Cast only what is not already the right type: on a panel of millions of rows every pass counts.
        casts = [
            pl.col(c).cast(t)
            for c, t in (("ticker", pl.String), ("date", pl.Date), ("ret", pl.Float64))
            if ret.schema[c] != t
        ]
        if casts:
            ret = ret.with_columns(casts)
        # Only the event tickers and benchmarks are ever read.
        wanted = set(self.events["ticker"].drop_nulls().cast(pl.Utf8).unique().to_list())
        bench_tickers = benchmark_tickers(spec.benchmarks)
        wanted |= set(bench_tickers)
        # Ticker -> integer code through the column's runs: a panel arrives grouped by ticker (DuckDB
        # ORDER BY, a concat per ticker), so run-length encoding compares neighbours once instead of
        # hashing every row (4x faster than an Enum cast on 9 M rows), and the few run values are
        # mapped to codes. Any order stays correct, only slower (one run per row).
        runs = ret["ticker"].rle()
        run_len = runs.struct.field("len").to_numpy()
        run_val = runs.struct.field("value")
        tickers = sorted(set(run_val.drop_nulls().unique().to_list()) & wanted)
        run_code = (
            run_val.replace_strict(
                {t: i for i, t in enumerate(tickers)}, default=-1, return_dtype=pl.Int64
            )
            .fill_null(-1)
            .to_numpy()
        )
        tcode = np.repeat(run_code, run_len)
        keep = tcode >= 0
        if ret["date"].null_count():  # a row without a date cannot be placed
            keep &= ret["date"].is_not_null().to_numpy()
        all_kept = bool(keep.all())
        if not all_kept:
            tcode = tcode[keep]
        grid_src = bench_tickers[0] if bench_tickers and bench_tickers[0] in tickers else None
        if spec.name in ("market", "market_adjusted", "multifactor"):
            missing = [b for b in bench_tickers if b not in tickers]
            if missing:
                raise ValueError(f"benchmark ticker(s) not in returns: {', '.join(missing)}")
        dnum = ret["date"].to_physical().fill_null(0).to_numpy().astype(np.int64)
        ret_col = ret["ret"]
        rv = (ret_col.fill_null(np.nan) if ret_col.null_count() else ret_col).to_numpy()
        if not all_kept:
            dnum, rv = dnum[keep], rv[keep]
        if dnum.shape[0] == 0:
            raise ValueError("no trading days in returns")
        # The grid: the first benchmark's dates, else every date present (a bincount over the day
        # range, not a sort of every row).
        src_days = dnum[tcode == tickers.index(grid_src)] if grid_src is not None else dnum
        if src_days.shape[0] == 0:
            raise ValueError("no trading days in returns")
        d0 = int(src_days.min())
        present = np.bincount(src_days - d0) > 0
        gnum = np.flatnonzero(present).astype(np.int64) + d0
        grid = gnum.astype("datetime64[D]")
        grid_frame = pl.DataFrame({"date": grid}).with_columns(pl.col("date").cast(pl.Date))
        n_t = grid.shape[0]
        # Integer codes instead of joins: date -> grid position through a lookup table on day numbers.
        lut = np.full(int(gnum[-1] - gnum[0]) + 1, -1, dtype=np.int64)
        lut[gnum - gnum[0]] = np.arange(n_t)
        rel_day = dnum - gnum[0]
        # Whole-column passes without boolean masks in the common case (every date inside the grid's
        # range and on the grid); masks (copies of 9 M elements each) only when needed.
        if int(rel_day.min()) >= 0 and int(rel_day.max()) < lut.shape[0]:
            g = lut[rel_day]
        else:
            g = np.full(dnum.shape[0], -1, dtype=np.int64)
            inside = (rel_day >= 0) & (rel_day < lut.shape[0])
            g[inside] = lut[rel_day[inside]]
        on = g >= 0
        all_on = bool(on.all())
        flat = tcode * n_t + g if all_on else tcode[on] * n_t + g[on]
        seen = np.zeros(len(tickers) * n_t, dtype=bool)
        seen[flat] = True
        if (
            int(seen.sum()) < flat.shape[0]
        ):  # some cell was written twice: a duplicate (ticker, date)
            counts = np.bincount(flat, minlength=seen.shape[0])
            cell = int(np.argmax(counts > 1))
            raise ValueError(
                f"duplicate return for ticker {tickers[cell // n_t]} on {grid[cell % n_t]}"
            )
        flat_r = np.full(len(tickers) * n_t, np.nan)
        flat_r[flat] = rv if all_on else rv[on]
        # Off-grid days (another exchange's session on a grid holiday) compound into the next grid day,
        # so the grid-day return spans from the previous grid day's close and no move is lost. Rare in
        # practice (a few days a year for a Tokyo ticker on the US grid), so a small sorted pass.
        off = np.empty(0, dtype=np.int64) if all_on else np.flatnonzero(~on & (dnum < gnum[-1]))
        if off.shape[0]:
            key = tcode[off] * (int(dnum.max()) + 1) + dnum[off]
            if np.unique(key).shape[0] < key.shape[0]:
                _, first, counts = np.unique(key, return_index=True, return_counts=True)
                row = int(off[first[np.argmax(counts > 1)]])
                raise ValueError(
                    f"duplicate return for ticker {tickers[tcode[row]]} on "
                    f"{np.datetime64(int(dnum[row]), 'D')}"
                )
            target = tcode[off] * n_t + np.searchsorted(gnum, dnum[off], side="left")
            growth = np.ones(flat_r.shape[0])
            np.multiply.at(growth, target, 1.0 + rv[off])  # NaN propagates: a null day nulls it
            hit = np.unique(target)
            # Where the ticker has no row on that grid day (its own exchange closed), the off-grid move
            # alone is the grid day's return: close(last session <= day) / close(previous grid day) - 1.
            flat_r[hit] = np.where(
                seen[hit], (1.0 + flat_r[hit]) * growth[hit] - 1.0, growth[hit] - 1.0
            )
        r = flat_r.reshape(len(tickers), n_t)
        tidx = pl.DataFrame({"ticker": tickers}).with_row_index("_t")

        series: dict[str, np.ndarray] = {}
        if spec.uses_factors:
            fac = self.factors
            if fac is None:
                from analysis.factors import load_ff3

                fac = load_ff3()
            on_grid = grid_frame.join(
                fac.select(
                    pl.col("date").cast(pl.Date), *[pl.col(c).cast(pl.Float64) for c in spec.series]
                ),
                on="date",
                how="left",
            ).sort("date")
            for c in spec.series:
                series[c] = on_grid[c].fill_null(np.nan).to_numpy()
        else:
            pos_of = {t: i for i, t in enumerate(tickers)}
            for b in spec.benchmarks:
                base, lag = parse_benchmark(b)
                if base in pos_of:
                    series[b] = lagged(r[pos_of[base]], lag)

        rel_lo = min(self.estimation[0], *(a for a, _ in self.windows))
        rel_hi = max(self.estimation[1], *(b for _, b in self.windows))
        rel = np.arange(rel_lo, rel_hi + 1)
        is_est = (rel >= self.estimation[0]) & (rel <= self.estimation[1])
        win_cols = [np.arange(a - rel_lo, b - rel_lo + 1) for a, b in self.windows]

        ev = self.events
        if "deal_id" not in ev.columns:
            ev = ev.with_columns(pl.lit(None, dtype=pl.Utf8).alias("deal_id"))
        ev = ev.with_columns(pl.col("t0").cast(pl.Date), pl.col("ticker").cast(pl.Utf8))
        if ev["event_id"].is_duplicated().any():
            raise ValueError("event_id values must be unique")
        ev = ev.sort("event_id").join(tidx, on="ticker", how="left", maintain_order="left")
        t0 = ev["t0"].to_numpy().astype("datetime64[D]")
        has_t0 = ~np.isnat(t0)
        i0 = np.full(ev.height, -1, dtype=np.int64)
        i0[has_t0] = np.searchsorted(grid, t0[has_t0], side="left")
        tix = ev["_t"].fill_null(-1).to_numpy().astype(np.int64)
        reason = np.full(ev.height, None, dtype=object)
        reason[~has_t0] = "no_t0"
        reason[(reason == None) & (tix < 0)] = "ticker_not_found"  # noqa: E711 (elementwise)
        reason[(reason == None) & (i0 >= n_t)] = "no_event_returns"  # noqa: E711
        if spec.uses_factors:
            # Strict: any grid day of the estimation or event span without factors excludes the event.
            bad = np.zeros(n_t, dtype=bool)
            for c in spec.series:
                bad |= ~np.isfinite(series[c])
            cum = np.concatenate([[0], np.cumsum(bad)])
            lo = np.clip(i0 + rel_lo, 0, n_t)
            hi = np.clip(i0 + rel_hi + 1, 0, n_t)
            n_bad = cum[hi] - cum[np.minimum(lo, hi)]
            reason[(reason == None) & (n_bad > 0)] = "factors_missing"  # noqa: E711

        # Other-event day counts per ticker/day: each located event covers its event span.
        span_lo = min(a for a, _ in self.windows)
        span_hi = max(b for _, b in self.windows)
        other = np.zeros((len(tickers), n_t), dtype=np.int32)
        if self.other_events is None:
            o_tix, o_i0, o_has = tix, i0, has_t0
        else:
            oe = self.other_events.select(
                pl.col("ticker").cast(pl.Utf8), pl.col("t0").cast(pl.Date)
            ).join(tidx, on="ticker", how="inner")
            o_t0 = oe["t0"].to_numpy().astype("datetime64[D]")
            o_has = ~np.isnat(o_t0)
            o_i0 = np.full(oe.height, -1, dtype=np.int64)
            o_i0[o_has] = np.searchsorted(grid, o_t0[o_has], side="left")
            o_tix = oe["_t"].to_numpy().astype(np.int64)
        located = (o_tix >= 0) & o_has & (o_i0 < n_t)
        offs = np.arange(span_lo, span_hi + 1)
        p = o_i0[located][:, None] + offs[None, :]
        t = np.broadcast_to(o_tix[located][:, None], p.shape)
        inb = (p >= 0) & (p < n_t)
        np.add.at(other, (t[inb], p[inb]), 1)

        t0_grid = np.where(
            (i0 >= 0) & (i0 < n_t), grid[np.clip(i0, 0, n_t - 1)], np.datetime64("NaT")
        )
        ev = ev.with_columns(
            pl.Series("_i0", i0),
            pl.Series("_tix", tix),
            pl.Series("_reason", reason.tolist(), dtype=pl.Utf8),
            pl.Series("t0_grid", t0_grid).cast(pl.Date),
        )
        return _Prepared(grid, tickers, r, series, other, ev, rel, is_est, win_cols)

    def _gather(
        self, prep: _Prepared, tix: np.ndarray, i0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[Plane], np.ndarray, np.ndarray]:
        """(y raw (n,L), y_model (n,L), X planes, offset (n,L), other-event count (n,L)) by one gather."""
        n_t = prep.grid.shape[0]
        pos = i0[:, None] + prep.rel[None, :]
        outside = (pos < 0) | (pos >= n_t)
        any_out = bool(outside.any())
        posc = np.clip(pos, 0, n_t - 1) if any_out else pos
        # Flat np.take on the raveled (tickers x days) matrix beats 2-D fancy indexing.
        flat = tix[:, None] * n_t + posc
        y = np.take(prep.r.reshape(-1), flat)
        oth = np.take(prep.other.reshape(-1), flat)
        gathered = {name: np.take(s, posc) for name, s in prep.series.items()}
        if any_out:
            y[outside] = np.nan
            oth[outside] = 0
            for g in gathered.values():
                g[outside] = np.nan
        planes, off = design(self.spec, gathered, y.shape)
        if off is None:
            return y, y, planes, np.zeros((1, 1)), oth
        return y, y - off, planes, off, oth

    # ------------------------------------------------------------------ estimation

    def fit(
        self,
        method: Method = "batch",
        *,
        cov_type: str = "nonrobust",
        cov_kwds: dict[str, Any] | None = None,
    ) -> EventStudyResult:
        """Estimate every firm-event.

        ``method``: ``batch`` (vectorised), ``statsmodels`` (one OLS per firm-event plus predictions) or
        ``event_dummy`` (one OLS per firm-event over estimation + event days with a dummy per non-estimation
        day; the dummies are the ARs). ``cov_type='HAC'`` (``event_dummy`` only) uses Newey-West standard
        errors for the dummies (``cov_kwds``, default ``{'maxlags': 5}``).
        """
        if method not in ("batch", "statsmodels", "event_dummy"):
            raise ValueError(f"unknown method {method!r}")
        if cov_type != "nonrobust" and method != "event_dummy":
            raise ValueError("cov_type other than 'nonrobust' needs method='event_dummy'")
        if method == "event_dummy" and self.spec.k == 0:
            raise ValueError(
                "the event-dummy regression needs a model with parameters (not market_adjusted)"
            )
        t_start = time.perf_counter()
        prep = self._prepare()
        t_prep = time.perf_counter()
        ev = prep.events
        cand = np.flatnonzero(ev["_reason"].is_null().to_numpy())
        i0_all = ev["_i0"].to_numpy()
        tix_all = ev["_tix"].to_numpy()
        reason = ev["_reason"].to_numpy().astype(object)
        n_masked = np.zeros(ev.height, dtype=np.int64)

        k, n_len, n_w = self.spec.k, prep.rel.shape[0], len(self.windows)
        ne_cols = np.flatnonzero(~prep.is_est)
        m_cap = cand.shape[0]
        out = {
            "b": np.empty((m_cap, k)),
            "bse": np.empty((m_cap, k)),
            "sigma": np.empty(m_cap),
            "n_est": np.empty(m_cap, dtype=np.int64),
            "ar": np.empty((m_cap, n_len)),
            "pe": np.empty((m_cap, n_len)),
            "x_event": np.empty((m_cap, ne_cols.shape[0], k)),
            "a_pe": np.empty((m_cap, k, k)),
            "car": np.empty((m_cap, n_w)),
            "car_se": np.empty((m_cap, n_w)),
            "bhar": np.empty((m_cap, n_w)),
            "n_days": np.empty((m_cap, n_w), dtype=np.int64),
        }
        kept_rows: list[np.ndarray] = []
        filled = 0
        for start in range(0, m_cap, self.chunk_size):
            rows = cand[start : start + self.chunk_size]
            y, yy, planes, off, oth = self._gather(prep, tix_all[rows], i0_all[rows])
            if method == "batch":
                co = self._batch_chunk(prep, y, yy, planes, off, oth)
            else:
                x = stack(planes, y.shape)
                co = self._sm_chunk(prep, method, y, yy, x, off, oth, cov_type, cov_kwds)
            reason[rows] = np.where(co.keep, reason[rows], co.reason)
            n_masked[rows] = co.n_masked
            m = int(co.keep.sum())
            for name in out:
                out[name][filled : filled + m] = getattr(co, name)
            filled += m
            kept_rows.append(rows[co.keep])
        if filled < m_cap:
            out = {name: arr[:filled] for name, arr in out.items()}
        kept = np.concatenate(kept_rows) if kept_rows else np.empty(0, dtype=np.int64)
        t_est = time.perf_counter()
        result = self._assemble(prep, method, kept, reason, n_masked, out)
        self.timings = {
            "prepare": t_prep - t_start,
            "estimate": t_est - t_prep,
            "assemble": time.perf_counter() - t_est,
        }
        return result

    def _valid_masks(
        self, prep: _Prepared, yy: np.ndarray, planes: list[Plane], oth: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(valid day, estimation use, estimation days for the PE correction, n masked, exclusion reason)."""
        okx = np.ones(yy.shape, dtype=bool)
        for p in planes:
            if p is not None:
                okx &= np.isfinite(p)
        valid = np.isfinite(yy) & okx
        other_est = (oth > 0) & prep.is_est[None, :]
        n_masked = (other_est & valid).sum(axis=1)
        est_ok = (
            prep.is_est[None, :] & ~other_est if self.mask_other_events else prep.is_est[None, :]
        )
        est_use = valid & est_ok
        est_pe = (okx & est_ok) if self.conventions.pe_over_all_market_days else est_use
        m = est_use.sum(axis=1)
        any_event = np.zeros(yy.shape[0], dtype=bool)
        for cols in prep.win_cols:
            any_event |= valid[:, cols].any(axis=1)
        reason = np.full(yy.shape[0], None, dtype=object)
        reason[~any_event] = "no_event_returns"
        need = max(self.min_obs, self.spec.k + 1, 2)
        reason[(reason == None) & (m < need)] = "insufficient_estimation_obs"  # noqa: E711
        return valid, est_use, est_pe, n_masked, reason

    def _ddof(self) -> int:
        d = self.conventions.sigma_ddof
        if d == "k":
            return max(self.spec.k, 1)
        return int(d)

    def _batch_chunk(
        self,
        prep: _Prepared,
        y: np.ndarray,
        yy: np.ndarray,
        planes: list[Plane],
        off: np.ndarray,
        oth: np.ndarray,
    ) -> _ChunkOut:
        k = self.spec.k
        n = y.shape[0]
        valid, est_use, est_pe, n_masked, reason = self._valid_masks(prep, yy, planes, oth)
        ok = reason == None  # noqa: E711
        # Sufficient statistics plane by plane with invalid days zeroed (the NaN mask):
        # X'X[i, j] = sum_l z_i z_j and X'y[j] = sum_l z_j y, each one einsum pass over (n, L).
        yz = np.where(est_use, yy, 0.0)
        xtx, xty = _moments(planes, est_use, yz)
        if k:
            singular = np.zeros(n, dtype=bool)
            singular[ok] = ~(_condition(xtx[ok]) < 1e12)
            reason[ok & singular] = "singular_design"
            ok &= ~singular
            # Rows being dropped get an identity so the batched inverse never fails on them.
            xtx[~ok] = np.eye(k)
            a = np.linalg.inv(xtx)
            b = np.einsum("nkj,nj->nk", a, xty)
        else:
            a = np.empty((n, 0, 0))
            b = np.empty((n, 0))
        fitted = np.zeros(y.shape)
        for j, p in enumerate(planes):
            fitted += b[:, j, None] if p is None else b[:, j, None] * p
        resid = yy - fitted
        m_s = est_use.sum(axis=1)
        e_est = np.where(est_use, resid, 0.0)
        if k:
            ssr = np.einsum("nl,nl->n", e_est, e_est)
        else:
            mean = e_est.sum(axis=1) / np.maximum(m_s, 1)
            dev = np.where(est_use, resid - mean[:, None], 0.0)
            ssr = np.einsum("nl,nl->n", dev, dev)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma2 = ssr / (m_s - self._ddof())
            bse = np.sqrt(sigma2[:, None] * np.diagonal(a, axis1=1, axis2=2))
        used = est_use | (valid & ~prep.is_est[None, :])
        ar = np.where(used, resid, np.nan)

        if k and self.conventions.pe_over_all_market_days:
            xtx_pe, _ = _moments(planes, est_pe, None)
            xtx_pe[~ok] = np.eye(k)
            a_pe = np.linalg.inv(xtx_pe)
            if planes[0] is None:
                a_pe[:, 0, 0] += _intercept_fix(m_s, est_pe.sum(axis=1))
        else:
            a_pe = a
        ne_cols = np.flatnonzero(~prep.is_est)
        x_ev = [np.ones((n, ne_cols.shape[0])) if p is None else p[:, ne_cols] for p in planes]
        pe = np.full(y.shape, np.nan)
        pe[:, ne_cols] = 1.0 + _quad_planes(a_pe, x_ev) if k else 1.0

        n_w = len(prep.win_cols)
        car = np.full((n, n_w), np.nan)
        car_se = np.full_like(car, np.nan)
        bhar = np.full_like(car, np.nan)
        n_days = np.zeros((n, n_w), dtype=np.int64)
        for w, cols in enumerate(prep.win_cols):
            arw = ar[:, cols]
            nd = np.isfinite(arw).sum(axis=1)
            full = nd == cols.shape[0]
            n_days[:, w] = nd
            # s = X_W' 1; Var(CAR) = sigma^2 (L_W + s' A s): the cross-day terms are in s' A s.
            s_w = [
                np.full((n, 1), float(cols.shape[0]))
                if p is None
                else p[:, cols].sum(axis=1, keepdims=True)
                for p in planes
            ]
            quad = _quad_planes(a_pe, s_w)[:, 0] if k else np.zeros(n)
            var = sigma2 * (cols.shape[0] + quad)
            car[:, w] = np.where(full, arw.sum(axis=1), np.nan)
            with np.errstate(invalid="ignore"):  # rows being dropped may have sigma2 < 0 or NaN
                car_se[:, w] = np.where(full, np.sqrt(var), np.nan)
            expected = fitted[:, cols] if off.shape[1] == 1 else off[:, cols] + fitted[:, cols]
            bh = np.prod(1.0 + y[:, cols], axis=1) - np.prod(1.0 + expected, axis=1)
            bhar[:, w] = np.where(full, bh, np.nan)
        x_event = np.stack(x_ev, axis=2) if k else np.empty((n, ne_cols.shape[0], 0))
        # Usually every row survives: hand the arrays over without a fancy-index copy.
        pick: slice | np.ndarray = slice(None) if ok.all() else ok
        return _ChunkOut(
            keep=ok,
            reason=reason,
            n_masked=n_masked,
            b=b[pick],
            bse=bse[pick],
            sigma=np.sqrt(sigma2[pick]),
            n_est=m_s[pick],
            ar=ar[pick],
            pe=pe[pick],
            x_event=x_event[pick],
            a_pe=a_pe[pick],
            car=car[pick],
            car_se=car_se[pick],
            bhar=bhar[pick],
            n_days=n_days[pick],
        )

    def _sm_chunk(
        self,
        prep: _Prepared,
        method: str,
        y: np.ndarray,
        yy: np.ndarray,
        x: np.ndarray,
        off: np.ndarray,
        oth: np.ndarray,
        cov_type: str,
        cov_kwds: dict[str, Any] | None,
    ) -> _ChunkOut:
        """The reference route: one statsmodels regression per firm-event (a deliberate Python loop)."""
        import statsmodels.api as sm

        k = self.spec.k
        ddof = self._ddof()
        if off.shape != y.shape:  # the batch gather passes a (1, 1) zero offset for "none"
            off = np.zeros_like(y)
        planes: list[Plane] = [x[:, :, j] for j in range(k)]
        valid, est_use, est_pe, n_masked, reason = self._valid_masks(prep, yy, planes, oth)
        ok = reason == None  # noqa: E711
        n_len, n_w = yy.shape[1], len(prep.win_cols)
        ne_cols = np.flatnonzero(~prep.is_est)
        rows: dict[str, list[np.ndarray]] = {
            n: []
            for n in (
                "b",
                "bse",
                "sigma",
                "n_est",
                "ar",
                "pe",
                "a_pe",
                "car",
                "car_se",
                "bhar",
                "n_days",
            )
        }
        for i in np.flatnonzero(ok):
            est_i = est_use[i]
            m_i = int(est_i.sum())
            xi, yi = x[i], yy[i]
            if k:
                xtx = xi[est_i].T @ xi[est_i]
                if not _condition(xtx[None])[0] < 1e12:
                    ok[i] = False
                    reason[i] = "singular_design"
                    continue
            ev_ok = valid[i] & ~prep.is_est
            ar_i = np.full(n_len, np.nan)
            pe_i = np.full(n_len, np.nan)
            fitted = np.zeros(n_len)
            if k == 0:
                e = yi[est_i]
                sigma2 = float(((e - e.mean()) ** 2).sum() / (m_i - ddof))
                b = bse = np.empty(0)
                a_pe = np.empty((0, 0))
                ar_i[est_i] = e
                ar_i[ev_ok] = yi[ev_ok]
                pe_i[ne_cols] = 1.0
                cov_ar = np.diag(np.where(ev_ok, sigma2, np.nan))
            elif method == "statsmodels":
                res = sm.OLS(yi[est_i], xi[est_i]).fit()
                b = np.asarray(res.params)
                sigma2 = float(res.ssr) / (m_i - ddof)
                a_reg = np.asarray(res.normalized_cov_params)
                bse = np.sqrt(sigma2 * np.diag(a_reg))
                if self.conventions.pe_over_all_market_days:
                    a_pe = np.asarray(
                        sm.OLS(np.zeros(int(est_pe[i].sum())), xi[est_pe[i]])
                        .fit()
                        .normalized_cov_params
                    )
                    if self.spec.k and self.spec.param_names[0] == "alpha":
                        a_pe[0, 0] += _intercept_fix(np.array([m_i]), np.array([est_pe[i].sum()]))[
                            0
                        ]
                else:
                    a_pe = a_reg
                ar_i[est_i] = np.asarray(res.resid)
                if ev_ok.any():
                    pred = res.get_prediction(xi[ev_ok])
                    ar_i[ev_ok] = yi[ev_ok] - np.asarray(pred.predicted_mean)
                fitted = np.where(np.isfinite(xi).all(axis=1), np.nan_to_num(xi) @ b, np.nan)
                x_ne = xi[ne_cols]
                pe_i[ne_cols] = 1.0 + np.einsum("lk,kj,lj->l", x_ne, a_pe, x_ne)
                cov_ar = sigma2 * (np.eye(n_len) + np.nan_to_num(xi) @ a_pe @ np.nan_to_num(xi).T)
            else:  # event_dummy
                use = est_i | ev_ok
                d_days = np.flatnonzero(ev_ok)
                dummies = np.zeros((n_len, d_days.shape[0]))
                dummies[d_days, np.arange(d_days.shape[0])] = 1.0
                z = np.hstack([np.nan_to_num(xi), dummies])[use]
                kw = dict(cov_kwds or {"maxlags": 5}) if cov_type == "HAC" else None
                res = sm.OLS(yi[use], z).fit(cov_type=cov_type, cov_kwds=kw)
                params = np.asarray(res.params)
                b = params[:k]
                sigma2 = float(res.ssr) / (m_i - ddof)
                cov = np.asarray(res.cov_params())
                if cov_type == "nonrobust":
                    cov = cov * (
                        sigma2 / float(res.scale)
                    )  # same sigma^2 convention as the other routes
                bse = np.sqrt(np.diag(cov[:k, :k]))
                fitted = np.where(np.isfinite(xi).all(axis=1), np.nan_to_num(xi) @ b, np.nan)
                ar_i[est_i] = yi[est_i] - fitted[est_i]
                ar_i[d_days] = params[k:]
                cov_ar = np.full((n_len, n_len), np.nan)
                cov_ar[np.ix_(d_days, d_days)] = cov[k:, k:]
                a_pe = np.asarray(res.normalized_cov_params)[:k, :k]
                if self.conventions.pe_over_all_market_days and cov_type == "nonrobust":
                    # estudy2: the correction uses every market day of the estimation window, which the
                    # dummy regression cannot know; rebuild the dummies' covariance from that (X'X)^-1.
                    xp = xi[est_pe[i]]
                    a_pe = np.linalg.inv(xp.T @ xp)
                    a_pe[0, 0] += _intercept_fix(np.array([m_i]), np.array([xp.shape[0]]))[0]
                    xd = xi[d_days]
                    cov_ar[np.ix_(d_days, d_days)] = sigma2 * (
                        np.eye(d_days.shape[0]) + xd @ a_pe @ xd.T
                    )
                # Days without a return have no dummy: their factor comes from the regressors alone.
                x_ne = xi[ne_cols]
                pe_i[ne_cols] = 1.0 + np.einsum("lk,kj,lj->l", x_ne, a_pe, x_ne)
                pe_i[d_days] = np.diag(cov_ar)[d_days] / sigma2
            car = np.full(n_w, np.nan)
            car_se = np.full(n_w, np.nan)
            bhar = np.full(n_w, np.nan)
            n_days = np.zeros(n_w, dtype=np.int64)
            for w, cols in enumerate(prep.win_cols):
                nd = int(np.isfinite(ar_i[cols]).sum())
                n_days[w] = nd
                if nd == cols.shape[0]:
                    car[w] = ar_i[cols].sum()
                    car_se[w] = np.sqrt(cov_ar[np.ix_(cols, cols)].sum())
                    bhar[w] = np.prod(1.0 + y[i, cols]) - np.prod(1.0 + off[i, cols] + fitted[cols])
            for name, val in (
                ("b", b),
                ("bse", bse),
                ("sigma", np.sqrt(sigma2)),
                ("n_est", m_i),
                ("ar", ar_i),
                ("pe", pe_i),
                ("a_pe", a_pe),
                ("car", car),
                ("car_se", car_se),
                ("bhar", bhar),
                ("n_days", n_days),
            ):
                rows[name].append(np.asarray(val))
        m = int(ok.sum())

        def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return np.stack(rows[name]) if rows[name] else np.empty((0, *shape))

        return _ChunkOut(
            keep=ok,
            reason=reason,
            n_masked=n_masked,
            b=stack("b", (k,)),
            bse=stack("bse", (k,)),
            sigma=stack("sigma", ()),
            n_est=stack("n_est", ()),
            ar=stack("ar", (n_len,)),
            pe=stack("pe", (n_len,)),
            x_event=x[ok][:, ne_cols, :] if m else np.empty((0, ne_cols.shape[0], k)),
            a_pe=stack("a_pe", (k, k)),
            car=stack("car", (n_w,)),
            car_se=stack("car_se", (n_w,)),
            bhar=stack("bhar", (n_w,)),
            n_days=stack("n_days", (n_w,)),
        )

    # ------------------------------------------------------------------ assembly

    def _assemble(
        self,
        prep: _Prepared,
        method: str,
        kept: np.ndarray,
        reason: np.ndarray,
        n_masked: np.ndarray,
        out: dict[str, np.ndarray],
    ) -> EventStudyResult:
        ev = prep.events
        k = self.spec.k
        df = out["n_est"] - (k if k else 1)
        keys = ev[kept].select(
            "event_id",
            "deal_id",
            "ticker",
            "t0",
            "t0_grid",
            pl.Series("n_est", out["n_est"]),
            pl.Series("n_other_event_days", n_masked[kept]),
        )
        panel = ARPanel(
            keys=keys,
            rel_days=prep.rel.copy(),
            is_est=prep.is_est.copy(),
            ar=out["ar"],
            sigma=out["sigma"],
            n_est=out["n_est"],
            n_params=k,
            pe_factor=out["pe"],
            x_event=out["x_event"],
            xtx_inv=out["a_pe"],
            conventions=self.conventions,
        )
        excluded_mask = np.array([r is not None for r in reason], dtype=bool)
        excluded = ev.filter(pl.Series(excluded_mask)).select(
            "event_id",
            "deal_id",
            "ticker",
            "t0",
            pl.Series("reason", reason[excluded_mask].tolist(), dtype=pl.Utf8),
        )
        n_w = len(self.windows)
        car, se = out["car"], out["car_se"]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = car / se
        dfw = np.repeat(df[:, None], n_w, axis=1).astype(float)
        # scipy.special, not scipy.stats (0.7-2 s to import): t.sf(x, df) is stdtr(df, -x), the same
        # numbers bit for bit. Imported here so that modules registering `study` stay light.
        from scipy.special import stdtr

        p = 2.0 * stdtr(dfw, -np.abs(t))
        labels = [window_label(w) for w in self.windows]
        base = keys.select("event_id", "deal_id", "ticker", "t0")
        car_frame = (
            pl.concat(
                [
                    base.with_columns(
                        pl.lit(labels[w]).alias("window"),
                        pl.lit(w, dtype=pl.Int32).alias("_w"),
                        pl.Series("car", car[:, w]).fill_nan(None),
                        pl.Series("se", se[:, w]).fill_nan(None),
                        pl.Series("t", t[:, w]).fill_nan(None),
                        pl.Series("p", p[:, w]).fill_nan(None),
                        pl.Series("bhar", out["bhar"][:, w]).fill_nan(None),
                        pl.Series("n_days", out["n_days"][:, w]),
                    )
                    for w in range(n_w)
                ]
            )
            .with_row_index("_r")
            .with_columns((pl.col("_r") % max(keys.height, 1)).alias("_e"))
            .sort("_e", "_w")
            .drop("_r", "_e", "_w")
        )
        names = list(self.spec.param_names)
        params = base.with_columns(*[pl.Series(nm, out["b"][:, j]) for j, nm in enumerate(names)])
        bse = base.with_columns(*[pl.Series(nm, out["bse"][:, j]) for j, nm in enumerate(names)])
        sigma = base.with_columns(
            pl.Series("sigma", out["sigma"]),
            pl.Series("n_est", out["n_est"]),
            pl.Series("df", df),
            pl.Series("n_other_event_days", n_masked[kept]),
        )
        return EventStudyResult(
            model=self.spec,
            method=method,
            estimation=self.estimation,
            windows=self.windows,
            conventions=self.conventions,
            panel=panel,
            params=params,
            bse=bse,
            sigma=sigma,
            car=car_frame,
            excluded=excluded,
            mask_other_events=self.mask_other_events,
        )
