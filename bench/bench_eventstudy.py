"""Benchmark: the vectorised batch event-study engine against the per-event statsmodels loop.

Both run in the same process on the same synthetic panel and the same firm-events; the script prints
both times, their ratio, the largest disagreement between the two, and peak memory.

    python bench/bench_eventstudy.py                 # N = 1k and 10k
    python bench/bench_eventstudy.py --n 100000      # statsmodels timed on --sm-limit events, extrapolated
    python bench/bench_eventstudy.py --million       # 1,000,000 firm-events, batch engine only
    python bench/bench_eventstudy.py --marginal      # 10k, 100k, 1M in one process: cost per event

Times are wall clock and process CPU (``time.process_time``, every thread); on a shared machine the
CPU seconds are the steadier figure, and the load average is printed beside them.

The statsmodels loop here is the engine's own ``method='statsmodels'`` route: it shares the vectorised
data gather, so the ratio measures the estimator loop (one OLS + prediction per firm-event), not I/O.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.engine import EventStudy  # noqa: E402
from analysis.results import EventStudyResult  # noqa: E402
from analysis.window import window_label  # noqa: E402


def synthetic_panel(
    n_tickers: int, n_days: int, seed: int
) -> tuple[pl.DataFrame, list[str], np.ndarray]:
    """Market-model returns (SPY + n_tickers) on business days from 2010, with 2% missing returns."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2010-01-04")
    days = np.arange(start, start + int(n_days * 1.5) + 10)
    days = days[np.is_busday(days)][:n_days]
    m = rng.normal(0.0004, 0.011, n_days)
    beta = rng.uniform(0.4, 1.8, n_tickers)
    r = 0.0002 + beta[:, None] * m[None, :] + rng.normal(0.0, 0.02, (n_tickers, n_days))
    r[rng.random(r.shape) < 0.02] = np.nan
    tickers = [f"T{i:05d}" for i in range(n_tickers)]
    firm = pl.DataFrame(
        {
            "ticker": pl.Series(np.repeat(np.array(tickers), n_days)),
            "date": np.tile(days, n_tickers),
            "ret": r.ravel(),
        }
    ).filter(pl.col("ret").is_not_nan())
    spy = pl.DataFrame({"ticker": ["SPY"] * n_days, "date": days, "ret": m})
    ret = pl.concat([spy, firm]).with_columns(pl.col("date").cast(pl.Date))
    return ret, tickers, days


def synthetic_events(n: int, tickers: list[str], days: np.ndarray, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    tix = rng.integers(0, len(tickers), n)
    i0 = rng.integers(260, days.shape[0] - 11, n)
    return pl.DataFrame(
        {
            "event_id": np.arange(n),
            "deal_id": np.arange(n) // 3,
            "ticker": pl.Series(np.array(tickers)[tix]),
            "t0": days[i0],
        }
    ).with_columns(pl.col("t0").cast(pl.Date))


def package_style_loop(
    ret: pl.DataFrame, events: pl.DataFrame, estimation: tuple[int, int], windows: list[tuple[int, int]],
    min_obs: int = 120, cpu: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, float, float]:
    """The loop the Python event-study packages run: per firm-event, slice, one statsmodels OLS, predict.

    Written the way a careful user would, not as a strawman: the panel is pivoted wide once (pandas,
    SPY's trading days as the index; included in the time), each event takes its column by position,
    fits ``sm.OLS`` on the estimation days, and computes CARs with the exact prediction-error variance
    (``x0 cov(b) x0'`` summed, the term most packages omit). Other events are not masked, so compare
    with a batch fit using ``mask_other_events=False``. Returns the CAR frame, the pivot's seconds (paid
    once) and the loop's seconds (paid per event).
    """
    import statsmodels.api as sm

    cpu = {} if cpu is None else cpu  # filled with the pivot's and the loop's process CPU seconds
    t, c = time.perf_counter(), time.process_time()
    wide = ret.to_pandas().pivot(index="date", columns="ticker", values="ret")
    wide = wide[wide["SPY"].notna()].sort_index()
    mkt = wide["SPY"].to_numpy()
    dates = wide.index.to_numpy().astype("datetime64[D]")
    t_pivot = time.perf_counter() - t
    cpu["pivot"] = time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    rows = []
    for eid, tic, t0 in events.select("event_id", "ticker", "t0").iter_rows():
        i0 = int(np.searchsorted(dates, np.datetime64(t0, "D")))
        y_all = wide[tic].to_numpy()
        est = slice(i0 + estimation[0], i0 + estimation[1] + 1)
        y, x = y_all[est], mkt[est]
        ok = ~np.isnan(y)
        if ok.sum() < min_obs:
            continue
        fit = sm.OLS(y[ok], sm.add_constant(x[ok])).fit()
        sigma2 = fit.ssr / fit.df_resid
        cov_b = fit.cov_params()
        for a, b in windows:
            sl = slice(i0 + a, i0 + b + 1)
            x0 = sm.add_constant(mkt[sl], has_constant="add")
            ar = y_all[sl] - fit.predict(x0)
            if np.isnan(ar).any():
                continue
            s = x0.sum(axis=0)
            var = sigma2 * (b - a + 1) + s @ cov_b @ s
            rows.append((eid, window_label((a, b)), float(ar.sum()), float(np.sqrt(var))))
    cpu["loop"] = time.process_time() - c
    return pl.DataFrame(rows, schema=["event_id", "window", "car", "se"], orient="row"), t_pivot, time.perf_counter() - t


def numpy_floor(
    ret: pl.DataFrame, events: pl.DataFrame, estimation: tuple[int, int], windows: list[tuple[int, int]],
    min_obs: int = 120,
) -> pl.DataFrame:
    """The floor the engine is measured against: what the same market-model CARs cost in plain numpy
    with nothing else (no validation, no exclusion reasons, no panel for the tests, no off-grid
    compounding): a dense (tickers x SPY days) build by one scatter, one flat gather per event, OLS by
    NaN-masked sums, CARs with the exact prediction-error variance. No masking of other events, so
    compare with ``mask_other_events=False, overlap='keep'``."""
    # ticker codes by a hash (categorical) cast, not a sort of 9 M strings
    code = ret["ticker"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    n_codes = int(code.max()) + 1
    first = pl.DataFrame({"ticker": ret["ticker"], "c": code}).unique("ticker")
    code_of = dict(zip(first["ticker"].to_list(), first["c"].to_list(), strict=True))
    spy_code = code_of["SPY"]
    d = ret["date"].to_numpy().astype("datetime64[D]")
    grid = np.sort(d[code == spy_code])
    pos = np.searchsorted(grid, d)
    on = (pos < grid.shape[0]) & (grid[np.minimum(pos, grid.shape[0] - 1)] == d)
    n_t = grid.shape[0]
    dense = np.full(n_codes * n_t, np.nan)
    dense[code[on] * n_t + pos[on]] = ret["ret"].to_numpy()[on]
    mkt = dense[spy_code * n_t : (spy_code + 1) * n_t]
    etix = events["ticker"].replace_strict(code_of, return_dtype=pl.Int64).to_numpy()
    e0 = np.searchsorted(grid, events["t0"].to_numpy().astype("datetime64[D]"))
    lo = min(estimation[0], *(a for a, _ in windows))
    hi = max(estimation[1], *(b for _, b in windows))
    rel = np.arange(lo, hi + 1)
    p = np.clip(e0[:, None] + rel[None, :], 0, n_t - 1)
    y = np.take(dense, etix[:, None] * n_t + p)
    x = np.take(mkt, p)
    est = (rel >= estimation[0]) & (rel <= estimation[1])
    ye, xe = y[:, est], x[:, est]
    ok = np.isfinite(ye)
    w = ok.astype(float)
    y0, x0 = np.where(ok, ye, 0.0), np.where(ok, xe, 0.0)
    n = w.sum(axis=1)
    sx, sy = x0.sum(axis=1), y0.sum(axis=1)
    sxx, sxy = (x0 * x0).sum(axis=1), (x0 * y0).sum(axis=1)
    det = n * sxx - sx * sx
    beta = (n * sxy - sx * sy) / det
    alpha = (sy - beta * sx) / n
    res = np.where(ok, ye - alpha[:, None] - beta[:, None] * xe, 0.0)
    s2 = (res * res).sum(axis=1) / (n - 2)
    ar = y - alpha[:, None] - beta[:, None] * x
    cols, out = [], []
    for a, b in windows:
        c = (rel >= a) & (rel <= b)
        L = float(c.sum())
        sxw = x[:, c].sum(axis=1)
        # s' (X'X)^-1 s with s = (L, sum x_w): the exact cross-day term
        quad = (sxx * L * L - 2.0 * sx * L * sxw + n * sxw * sxw) / det
        car = ar[:, c].sum(axis=1)
        cols.append(window_label((a, b)))
        out.append((car, np.sqrt(s2 * (L + quad))))
    keep = n >= min_obs
    return pl.DataFrame(
        {
            "event_id": np.repeat(events["event_id"].to_numpy()[keep], len(windows)),
            "window": np.tile(np.array(cols), int(keep.sum())),
            "car": np.stack([c for c, _ in out], axis=1)[keep].ravel(),
            "se": np.stack([s for _, s in out], axis=1)[keep].ravel(),
        }
    )


def min_median(f: object, repeats: int) -> tuple[float, float, object, float]:
    """(min, median) wall seconds of ``repeats`` calls of ``f``, its last result, min CPU seconds."""
    times, cpus, res = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        res = f()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(times), float(np.median(times)), res, min(cpus)


def load_avg() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed_fits(
    study: EventStudy, repeats: int
) -> tuple[list[tuple[float, float, dict[str, float]]], EventStudyResult]:
    """(wall s, process CPU s, stage timings) of ``repeats`` batch fits, and the last result."""
    runs = []
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t, c = time.perf_counter(), time.process_time()
        res = study.fit("batch")
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        timings = dict(study.timings)
        # Where the fixed cost goes: kernel time and minor page faults (fresh pages of big arrays).
        timings["sys"] = r1.ru_stime - r0.ru_stime
        timings["minflt"] = float(r1.ru_minflt - r0.ru_minflt)
        runs.append((time.perf_counter() - t, time.process_time() - c, timings))
    return runs, res


def marginal(ret: pl.DataFrame, tickers: list[str], days: np.ndarray, args: argparse.Namespace) -> None:
    """Batch fits at 10k, 100k and 1M firm-events in one process (other events flagged, as --million):
    min and median wall and CPU seconds of --repeats fits at each size, the marginal cost per event
    between the sizes (min against min, median against median), and the ratio of the two marginals
    (flat: 1.0; issue 16's target: at most 1.15). Kernel seconds and minor page faults per size say how
    much of it is fresh memory."""
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        events = synthetic_events(n, tickers, days, args.seed)
        study = EventStudy(ret, events, model="market", benchmarks=("SPY",), chunk_size=args.chunk,
                           mask_other_events=False, overlap="keep")
        runs, res = timed_fits(study, args.repeats)
        del res  # not held across the next size's fits
        wall = [r[0] for r in runs]
        cpu = [r[1] for r in runs]
        med_w, med_c = float(np.median(wall)), float(np.median(cpu))
        rows.append((n, min(wall), med_w, min(cpu), med_c))
        sys_s = ", ".join(f"{r[2]['sys']:.3f}" for r in runs)
        flt = ", ".join(f"{r[2]['minflt']:,.0f}" for r in runs)
        print(f"  N = {n:>9,}: wall min {min(wall):.3f} s, median {med_w:.3f} s; "
              f"CPU min {min(cpu):.3f} s, median {med_c:.3f} s ({len(runs)} run(s); {load_avg()})")
        print(f"               kernel s per fit {sys_s}; minor faults {flt}")
    per_event = []
    for (n1, *a), (n2, *b) in zip(rows, rows[1:], strict=False):
        us = [(y - x) / (n2 - n1) * 1e6 for x, y in zip(a, b, strict=True)]
        per_event.append(us)
        print(f"  marginal {n1:,} -> {n2:,}: wall {us[0]:.2f} us/event (min), {us[1]:.2f} (median); "
              f"CPU {us[2]:.2f} (min), {us[3]:.2f} (median)")
    lo, hi = per_event
    print("  marginal ratio (100k -> 1M) / (10k -> 100k): "
          f"wall {hi[0] / lo[0]:.2f}x (min), {hi[1] / lo[1]:.2f}x (median); "
          f"CPU {hi[2] / lo[2]:.2f}x (min), {hi[3] / lo[3]:.2f}x (median)")
    print(f"  process peak RSS    : {peak_rss_gib():.2f} GiB")


def peak_rss_gib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(
    n: int, ret: pl.DataFrame, tickers: list[str], days: np.ndarray, args: argparse.Namespace
) -> None:
    events = synthetic_events(n, tickers, days, args.seed)
    # Dense synthetic events (hundreds per ticker) would mask most estimation days of one another;
    # --flag-other-events keeps those days and only counts them (same work, no exclusions).
    study = EventStudy(
        ret,
        events,
        model="market",
        benchmarks=("SPY",),
        chunk_size=args.chunk,
        mask_other_events=not args.flag_other_events,
        # random synthetic events are not announcements: keep same-ticker overlaps (same work)
        overlap="keep",
    )
    # Min and median of --repeats runs for the batch engine; the statsmodels loop runs once.
    runs, batch = timed_fits(study, args.repeats)
    t_batch, _, tb = min(runs, key=lambda r: r[0])
    t_batch_med = float(np.median([r[0] for r in runs]))
    c_min, c_med = min(r[1] for r in runs), float(np.median([r[1] for r in runs]))
    tb["estimate"] = min(r[2]["estimate"] for r in runs)
    reasons = batch.excluded.group_by("reason").len().sort("reason").rows()
    why = ", ".join(f"{r}: {c:,}" for r, c in reasons)
    print(
        f"\nN = {n:,} firm-events ({batch.nobs:,} estimated, {batch.excluded.height:,} excluded"
        + (f" [{why}]" if why else "")
        + f"; other events {'flagged' if args.flag_other_events else 'masked'})"
    )
    print(
        f"  batch engine        : {t_batch:10.3f} s   ({n / t_batch:,.0f} firm-events/s; "
        f"prepare {tb['prepare']:.3f} s, estimate {tb['estimate']:.3f} s, assemble {tb['assemble']:.3f} s)"
    )
    print(f"  batch engine, min / median of {args.repeats}: {t_batch:.3f} / {t_batch_med:.3f} s wall, "
          f"{c_min:.3f} / {c_med:.3f} s CPU ({n / c_min:,.0f} firm-events per CPU second; {load_avg()})")
    print("  batch fits in order (the first in this process, then warm): " + "; ".join(
        f"{w:.3f} s wall, {c:.3f} s CPU (prepare {tm['prepare_cpu']:.3f}), sys {tm['sys']:.3f} s, "
        f"{tm['minflt']:,.0f} minor faults" for w, c, tm in runs))
    if args.floor:
        f_min, f_med, fl, f_cpu = min_median(
            lambda: numpy_floor(ret, events, study.estimation, list(study.windows)), args.repeats
        )
        print(f"  numpy floor         : min {f_min:.3f} s, median {f_med:.3f} s (dense build + OLS + CARs)")
        print(f"  ratio engine / floor: {t_batch / f_min:.2f}x (min), {t_batch_med / f_med:.2f}x (median); "
              f"CPU {c_min:.3f} / {f_cpu:.3f} s = {c_min / f_cpu:.2f}x (min)")
        if args.flag_other_events:
            both_f = fl.join(batch.car.select("event_id", "window", "car", "se"), on=["event_id", "window"])
            d_f = float((both_f["car"] - both_f["car_right"]).abs().max())  # type: ignore[arg-type]
            print(f"  floor vs engine: max |CAR diff| = {d_f:.2e} over {both_f.height:,} rows")
    if not args.million and n <= 200_000:
        tracemalloc.start()
        study.fit("batch")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  batch peak traced memory: {peak / 2**20:,.0f} MiB")
    if args.million:
        print(f"  process peak RSS    : {peak_rss_gib():.2f} GiB")
        return
    m = min(n, args.sm_limit)
    sub = EventStudy(
        ret,
        events.head(m),
        model="market",
        benchmarks=("SPY",),
        chunk_size=args.chunk,
        mask_other_events=not args.flag_other_events,
        overlap="keep",
    )
    t = time.perf_counter()
    ref = sub.fit("statsmodels")
    t_sm = time.perf_counter() - t
    ts = dict(sub.timings)
    scale = n / m
    note = "" if m == n else f" (measured on {m:,} events, loop time scaled x{scale:g})"
    # Preparation (the shared dense gather) does not grow with the event count the same way; only the
    # per-event estimation loop is scaled when a subsample is timed.
    sm_est = ts["estimate"] * scale
    sm_total = ts["prepare"] + sm_est + ts["assemble"] * scale
    print(
        f"  statsmodels loop    : {sm_total:10.3f} s{note}; per-event OLS loop {sm_est:.3f} s "
        f"({sm_est / n * 1e3:.2f} ms/event)"
    )
    print(f"  ratio end-to-end (statsmodels route / batch): {sm_total / t_batch:,.1f}x "
          f"(batch min; {sm_total / t_batch_med:,.1f}x against the batch median)")
    print(f"  ratio estimation only (same prepared arrays): {sm_est / tb['estimate']:,.1f}x")
    sm_cpu = ts["prepare_cpu"] + (ts["estimate_cpu"] + ts["assemble_cpu"]) * scale
    print(f"  statsmodels loop CPU: {sm_cpu:10.3f} s (scaled as above); ratio CPU (statsmodels route / batch): "
          f"{sm_cpu / c_min:,.1f}x min, {sm_cpu / c_med:,.1f}x median")
    _ = t_sm
    # Agreement on the same events: with a subsample, masking sees only the subsample's events, so
    # compare against a batch fit of that same subsample.
    same = batch if m == n else sub.fit("batch")
    both = same.car.join(ref.car, on=["event_id", "window"], suffix="_sm")
    diff = float((both["car"] - both["car_sm"]).abs().max())  # type: ignore[arg-type]
    dse = float(((both["se"] - both["se_sm"]).abs() / both["se_sm"]).max())  # type: ignore[arg-type]
    print(f"  max |CAR diff| = {diff:.2e}, max rel SE diff = {dse:.2e} over {both.height:,} rows")
    if args.package_loop:
        # The package-style loop (its own data access per event) on a subsample, scaled to n.
        mp = min(n, args.package_loop)
        sub_ev = events.head(mp)
        pk_cpu: dict[str, float] = {}
        pk, t_pivot, t_pk = package_style_loop(ret, sub_ev, (-250, -11), list(study.windows), cpu=pk_cpu)
        t_pk_n = t_pivot + t_pk * n / mp
        ref_b = EventStudy(
            ret, sub_ev, model="market", benchmarks=("SPY",), mask_other_events=False, overlap="keep"
        ).fit("batch")
        both_p = pk.join(ref_b.car.select("event_id", "window", "car", "se"), on=["event_id", "window"])
        d_car = float((both_p["car"] - both_p["car_right"]).abs().max())  # type: ignore[arg-type]
        d_se = float(((both_p["se"] - both_p["se_right"]).abs() / both_p["se_right"]).max())  # type: ignore[arg-type]
        note_p = "" if mp == n else f" (loop measured on {mp:,} events, scaled x{n / mp:g})"
        print(f"  package-style loop  : {t_pk_n:10.3f} s{note_p}; pivot {t_pivot:.2f} s once, {t_pk / mp * 1e3:.2f} ms/event")
        print(f"  ratio package-style loop / batch: {t_pk_n / t_batch:,.1f}x")
        c_pk_n = pk_cpu["pivot"] + pk_cpu["loop"] * n / mp
        print(f"  package-style loop CPU: {c_pk_n:.3f} s; ratio CPU (package-style / batch, min): {c_pk_n / c_min:,.1f}x")
        print(f"  package-style vs batch (no masking): max |CAR diff| = {d_car:.2e}, max rel SE diff = {d_se:.2e} over {both_p.height:,} rows")
    print(f"  process peak RSS    : {peak_rss_gib():.2f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, action="append", help="firm-events (repeatable; default 1000 and 10000)"
    )
    ap.add_argument("--tickers", type=int, default=3000)
    ap.add_argument("--years", type=float, default=12.0)
    ap.add_argument(
        "--million", action="store_true", help="1,000,000 firm-events, batch engine only"
    )
    ap.add_argument(
        "--sm-limit", type=int, default=10_000, help="max events for the statsmodels loop"
    )
    ap.add_argument("--chunk", type=int, default=1_000)
    ap.add_argument(
        "--package-loop", type=int, default=2_000,
        help="events timed with the package-style per-event loop (0: skip); scaled to N",
    )
    ap.add_argument(
        "--flag-other-events", action="store_true", help="flag, do not mask (--million sets it)"
    )
    ap.add_argument("--seed", type=int, default=20251006)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the engine and the floor (min, median)")
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the numpy floor")
    ap.add_argument("--marginal", action="store_true",
                    help="batch fits at 10k, 100k and 1M in one process: marginal cost per event")
    args = ap.parse_args()
    if args.million:
        args.flag_other_events = True
        args.repeats = 1  # the machine is shared: one run at 1M
        args.floor = False  # the floor's N x L float64 arrays would dominate the RSS being measured
    n_days = int(args.years * 252)
    t = time.perf_counter()
    ret, tickers, days = synthetic_panel(args.tickers, n_days, args.seed)
    print(
        f"synthetic panel: {args.tickers:,} tickers x {n_days:,} trading days "
        f"({days[0]} .. {days[-1]}), {ret.height:,} returns, built in {time.perf_counter() - t:.1f} s"
    )
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, polars {pl.__version__}, {dt.date.today()}"
    )
    if args.marginal:
        marginal(ret, tickers, days, args)
        return
    sizes = [1_000_000] if args.million else (args.n or [1_000, 10_000])
    for n in sizes:
        run(n, ret, tickers, days, args)


if __name__ == "__main__":
    main()
