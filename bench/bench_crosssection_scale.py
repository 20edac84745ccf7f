"""Benchmark: the as-of feature build and the second-stage regression at 10,000 firm-events.

    python bench/bench_crosssection_scale.py                  # 10,000 firm-events, 3 runs
    python bench/bench_crosssection_scale.py --events 2000    # smaller

A synthetic ledger (seeded): 120 listed companies on a sparse relationship web (each pays three fixed
counterparties, so the flow graph has cycles but not an explosion of them), and N/2 two-party deals on
``--days`` distinct announcement days, each with both parties' tickers, so N firm-events. It is written
as CSV files and imported through the real importer (``ledger.load.import_file``).

1. As-of feature build (``analysis.features.firm_event_features``): one bitemporal as-of pass over
   the ledger for every day needed (each announcement day and the day before;
   ``ledger.api.deals_in_effect_many``, folded in SQL), the cycles of every day's graph found by
   whole-column joins, networkx betweenness on the announcement days. Printed apart: the as-of pass
   against one Python replay of the ledger per day (``ledger_as_known(vectorised=False)``, the
   "one query per instant" alternative) in the same run, and the graph measures. Alternative for the
   whole build, measured in the same run: a per-row loop (for each firm-event, the ledger replayed for
   its day and the day before, then its graphs), timed on ``--sample`` firm-events and scaled to N
   (stated as such).
2. Regression (``analysis.explain.explain`` -> ``fit_crosssection``) of a synthetic CAR on the built
   characteristics, HC3 and two-way clustered (date, firm), against statsmodels OLS with the same
   covariance on the same rows (pandas design from patsy).

Min and median of ``--repeat`` runs (>= 3).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.events import firm_events  # noqa: E402
from analysis.explain import explain  # noqa: E402
from analysis.features import firm_event_features, graph_features, known_days, ledger_as_known  # noqa: E402
from carousel.db import connect  # noqa: E402
from ledger import api  # noqa: E402
from ledger.load import import_file  # noqa: E402

DEAL_FIELDS = [
    "id", "announced_date", "announced_time_et", "session", "payer", "payee", "amount_usd_bn", "amount_note",
    "deal_type", "counterparty_tickers", "headline_reaction", "source_publisher", "source_title", "source_date",
    "source_url", "confidence",
]
TYPES = ["equity_investment", "cloud_compute_purchase", "chip_purchase", "compute_purchase_commitment"]


def synthetic_ledger(folder: Path, n_events: int, n_days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_comp = 120
    names = [f"Company{i:03d}" for i in range(n_comp)]
    with (folder / "companies.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["company_id", "name", "listed", "tickers", "aliases", "note"])
        for i, n in enumerate(names):
            w.writerow([f"c{i:03d}", n, "true", f"T{i:03d}:XNYS:USD", n, ""])
    (folder / "contracts.csv").write_text("deal_id,contract_id,counts_toward_total,note\n", encoding="utf-8")
    (folder / "amount_terms.csv").write_text("deal_id,amount_kind,horizon,note,payer_share_bn\n", encoding="utf-8")
    # each company pays three fixed counterparties: a sparse web with some cycles
    targets = {i: rng.choice([j for j in range(n_comp) if j != i], size=3, replace=False) for i in range(n_comp)}
    start = dt.date(2019, 1, 2)
    bdays = [start + dt.timedelta(days=int(d)) for d in range(0, 7 * 365) if (start + dt.timedelta(days=int(d))).weekday() < 5]
    days = sorted(rng.choice(len(bdays), size=n_days, replace=False))
    n_deals = n_events // 2
    with (folder / "deals.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(DEAL_FIELDS)
        for k in range(n_deals):
            a = int(rng.integers(n_comp))
            b = int(targets[a][rng.integers(3)])
            day = bdays[days[k * n_days // n_deals]]
            amount = "" if rng.random() < 0.2 else f"{float(rng.lognormal(1.0, 1.5)):.2f}"
            w.writerow([f"d{k:06d}", day.isoformat(), "", "unknown", names[a], names[b], amount, "",
                        TYPES[int(rng.integers(len(TYPES)))], f"T{a:03d};T{b:03d}", "", "bench", f"deal {k}",
                        day.isoformat(), f"https://example.org/{k}", "verified"])


def timed(fn: Any, repeat: int) -> tuple[list[float], Any]:
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def fmt(times: list[float]) -> str:
    return f"min {min(times):8.3f} s   median {statistics.median(times):8.3f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--fold-days", type=int, default=40, help="days the per-day replay alternative is timed on")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic_ledger(folder, args.events, args.days, args.seed)
        db = folder / "bench.duckdb"
        t = time.perf_counter()
        with connect(db) as con:
            rep = import_file(con, folder / "deals.csv")
        print(f"synthetic ledger: {rep.appended} events appended in {time.perf_counter() - t:.2f} s")
        with connect(db, read_only=True) as con:
            events = firm_events(api.deals(con), align_t0=_weekday_t0, calendar_for=lambda _t: "XNYS")
            n_days = events["announced_date"].n_unique()
            print(f"{events.height} firm-events on {n_days} distinct announcement days")

            times, feats = timed(lambda: firm_event_features(con, events), args.repeat)
            print(f"1. as-of feature build, {events.height} firm-events:       {fmt(times)}")
            days = known_days(events)
            t_pass, known = timed(lambda: ledger_as_known(con, days), args.repeat)
            some = days[:: max(1, len(days) // args.fold_days)]
            t_fold, folded = timed(lambda: ledger_as_known(con, some, vectorised=False), args.repeat)
            on_some = pl.col("known_on").is_in(some)
            assert known.deals.filter(on_some).equals(folded.deals) and known.flows.filter(on_some).equals(folded.flows)
            fold_scaled = [x * len(days) / len(some) for x in t_fold]
            print(f"   of which the ledger as-of pass ({len(days)} days, {known.deals.height:,} deal rows): {fmt(t_pass)}")
            print(f"   alternative: one Python replay per day ({len(some)} timed, x{len(days) / len(some):.1f}): "
                  f"{fmt(fold_scaled)}; ratio (medians) {statistics.median(fold_scaled) / statistics.median(t_pass):.1f}x")
            t_graph, _ = timed(lambda: graph_features(events, known, api.companies(con)), args.repeat)
            print(f"   graph measures (cycles by joins, betweenness per announcement day): {fmt(t_graph)}")
            # alternative: one ledger replay per firm-event (sampled, scaled)
            sample = events.head(args.sample)
            companies = api.companies(con)

            def per_row() -> None:
                for r in sample.iter_rows(named=True):
                    d = r["announced_date"]
                    known = ledger_as_known(con, [d, d - dt.timedelta(days=1)], vectorised=False)
                    graph_features(sample.filter(pl.col("event_id") == r["event_id"]), known, companies)

            alt, _ = timed(per_row, args.repeat)
            scale = events.height / sample.height
            alt_scaled = [a * scale for a in alt]
            print(f"   alternative: one replay per firm-event ({sample.height} timed, x{scale:.0f}): {fmt(alt_scaled)}")
            print(f"   ratio (alternative / ours, medians): {statistics.median(alt_scaled) / statistics.median(times):.1f}x")
            print(f"   on round-trips: {int(feats['on_round_trip'].sum())}, mean degree {feats['degree'].mean():.2f}")

    rng = np.random.default_rng(args.seed + 1)
    frame = feats.with_columns(
        pl.lit("[-1,+1]").alias("window"),
        pl.Series("se", rng.uniform(0.01, 0.05, feats.height)),
    )
    frame = frame.with_columns(
        (0.002 * pl.col("log_amount").fill_null(0) + 0.01 * pl.col("on_round_trip").cast(pl.Float64)
         + pl.Series(rng.normal(0, 1, feats.height)) * pl.col("se")).alias("car")
    )
    formula = "car ~ log_amount + on_round_trip + betweenness + degree + C(deal_kind)"
    frame = frame.with_columns(pl.col("openai_share").fill_null(0.0))
    import statsmodels.formula.api as smf

    rows = frame.drop_nulls(["car", "log_amount"]).with_columns(pl.col("on_round_trip").cast(pl.Int64)).to_pandas()
    for label, cov, sm_cov, groups in (
        ("HC3", "hc3", "HC3", None),
        ("two-way cluster (date, firm)", "cluster:date,firm", "cluster", ["t0", "company"]),
    ):
        ours, res = timed(lambda cov=cov: explain(frame, formula, cov=cov), args.repeat)

        def ref(sm_cov: str = sm_cov, groups: list[str] | None = groups) -> Any:
            import pandas as pd

            kw = None
            if groups:
                kw = {"groups": np.column_stack([pd.factorize(rows[g])[0] for g in groups])}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return smf.ols(formula, rows).fit(cov_type=sm_cov, cov_kwds=kw, use_t=True)

        theirs, fit = timed(ref, args.repeat)
        diff = max(abs(res.bse[k] - fit.bse[k]) / abs(fit.bse[k]) for k in fit.bse.index)
        print(f"2. regression, {res.nobs} rows, {label}: ours {fmt(ours)}; statsmodels {fmt(theirs)}; "
              f"ratio {statistics.median(theirs) / statistics.median(ours):.1f}x; max rel. SE difference {diff:.1e}")


def _weekday_t0(events: pl.DataFrame, calendar: str, unknown_policy: str = "same_day") -> pl.DataFrame:
    """t0 = the announcement date (the synthetic days are weekdays): keeps the bench off the calendars."""
    del calendar, unknown_policy
    return events.with_columns(pl.col("announced_date").alias("t0"), pl.lit("same_day").alias("t0_rule"))


if __name__ == "__main__":
    main()
