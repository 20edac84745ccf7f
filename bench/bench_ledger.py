"""Ledger throughput against its floors, measured in the same run (issue 16 items 2-3).

    python3 bench/bench_ledger.py [--events 100000] [--batch 1000] [--dates 10000] [--runs 3] [--naive N]
                                  [--append-verify-only | --asof-only] [--sequential]

Each run uses a fresh database. Printed per target: min and median over ``--runs`` runs, and the ratio
to the floor or alternative measured in the same run. The append and its floor are also timed in CPU
seconds of this process (``time.process_time``, DuckDB's threads included): on a shared machine the wall
clock also counts other processes' turns, so the CPU ratio is the steadier one.

* append: ``--events`` DealAnnounced events in batches of ``--batch`` (log, chain, head, projections)
  against the floor = DuckDB inserting the same log rows through Arrow in one transaction + canonical
  JSON and SHA-256 in Python; target >= 15,000 events/s and <= 2x the floor;
* verify: ``log.verify`` (its fast route: the chain in SQL, the head, the projection digest) against
  ``log.verify(full=True)`` (the Python replay of every event) on the same database; target < 1 s at
  100,000 events;
* as-of at ``--dates`` instants in one pass (``ledger.api.deals_as_known_at_many``) against one
  ``deals(as_known_at=t)`` query (the alternative: one such query per instant); target < 2 s;
* a single as-of query (``deals(as_known_at=mid-log)``, folded in SQL) against the Python replay of the
  same log prefix (``ledger.project.fold``, what it was before) in the same run; target < 200 ms; and
  the same target for ``flows(as_known_at=)`` and for ``in_effect_on`` as of that time (deals and flows),
  each checked equal to the replay. Also their CPU seconds (DuckDB's threads included: above the wall
  time on an idle machine when the query runs on two threads, the steadier figure on a busy one).

``--asof-only`` skips the append floor, verify and the naive append (the logs are still written by
``ledger.log.append``); ``--single-only`` also skips the many-instant lines (minutes at full size), to
iterate on the single queries. ``--sequential`` also times the append with ``ledger.log.OVERLAP`` off
(DuckDB's calls not overlapped with the Python work, :mod:`ledger.overlap`) in the same runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from carousel.db import connect
from ledger import api, log, project
from ledger.model import NewEvent, deal_stream, event_id_for


def deal(i: int) -> NewEvent:
    did = f"bench-{i:07d}"
    s = deal_stream(did)
    payload = {"deal_id": did, "contract_id": did, "counts_toward_total": True, "announced_date": "2025-01-02",
               "announced_time_et": None, "session": "unknown", "payers": ["openai"], "payees": ["oracle"],
               "amount_usd": f"{i}.00", "amount_kind": "exact", "deal_type": "cloud_compute_purchase",
               "horizon": None, "tickers": ["ORCL"], "title": f"deal {i}", "confidence": "verified", "sources": []}
    return NewEvent(event_id_for(s, "DealAnnounced"), s, "DealAnnounced", payload)


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _floor(tmp: Path, events: list[NewEvent], batch: int | None = None) -> tuple[float, float]:
    """Canonical JSON + SHA-256 of every event in Python, then one Arrow insert of the rows into a fresh
    ledger_log in one transaction: what any append must at least do. (wall, CPU) seconds."""
    t, c = time.perf_counter(), time.process_time()
    prev = "0" * 64
    rows: dict[str, list[object]] = {k: [] for k in ("position", "event_id", "stream_id", "stream_version",
                                                       "event_type", "schema_version", "payload", "recorded_at_us",
                                                       "prev_hash", "hash")}
    for pos, e in enumerate(events, 1):
        payload = e.payload_json
        h = hashlib.sha256("|".join((prev, str(pos), e.event_id, e.stream_id, "1", e.event_type, "2", str(pos),
                                     payload)).encode()).hexdigest()
        for k, v in (("position", pos), ("event_id", e.event_id), ("stream_id", e.stream_id), ("stream_version", 1),
                     ("event_type", e.event_type), ("schema_version", 2), ("payload", payload),
                     ("recorded_at_us", pos), ("prev_hash", prev), ("hash", h)):
            rows[k].append(v)
        prev = h
    hashed, hashed_cpu = time.perf_counter() - t, time.process_time() - c
    name = "floor.duckdb" if batch is None else "floor-batched.duckdb"
    with connect(tmp / name) as con:  # opening (schema DDL) is not timed, as for the append
        t, c = time.perf_counter(), time.process_time()
        frame = pl.DataFrame(rows)
        step = batch or frame.height
        for start in range(0, frame.height, step):  # one transaction per batch when ``batch`` is given
            con.register("b", frame.slice(start, step).to_arrow())
            con.execute("BEGIN")
            con.execute("INSERT INTO ledger_log SELECT position, event_id, stream_id, stream_version, event_type, "
                        "schema_version, payload, make_timestamptz(recorded_at_us), prev_hash, hash FROM b")
            con.execute("COMMIT")
            con.unregister("b")
        return hashed + time.perf_counter() - t, hashed_cpu + time.process_time() - c


def _corrections(n: int, n_deals: int) -> list[NewEvent]:
    """``n_deals`` announcements, then corrections of their titles round-robin up to ``n`` events: a log
    whose state changes at almost every event, for as-of at many instants (output = instants x deals)."""
    out = [deal(i) for i in range(n_deals)]
    for k in range(n - n_deals):
        did = f"bench-{k % n_deals:07d}"
        s = deal_stream(did)
        out.append(NewEvent(event_id_for(s, "DealCorrected", str(k)), s, "DealCorrected",
                            {"deal_id": did, "changes": {"title": f"title {k}"}, "reason": ""}))
    return out


def asof_many_run(tmp: Path, n: int, n_deals: int, n_dates: int, batch: int) -> tuple[float, float, int]:
    """(seconds for all instants in one pass, seconds for one as-of query, rows) on a corrections log."""
    events = _corrections(n, n_deals)
    with connect(tmp / "asof.duckdb") as con:
        for k in range(0, n, batch):
            log.append(con, events[k : k + batch])
    with connect(tmp / "asof.duckdb", read_only=True) as con:
        us = [r[0] for r in con.execute("SELECT epoch_us(recorded_at) FROM ledger_events ORDER BY position").fetchall()]
        lo, hi = us[0], us[-1]
        times = [dt.datetime.fromtimestamp((lo + (hi - lo) * k // max(n_dates - 1, 1)) / 1e6, dt.UTC)
                 for k in range(n_dates)]
        many: list[pl.DataFrame] = []
        t_many = _timed(lambda: many.append(api.deals_as_known_at_many(con, times)))
        t_one = _timed(lambda: api.deals(con, as_known_at=times[n_dates // 2]))
        last = many[0].filter(pl.col("as_known_at") == times[-1])
        assert last.height == n_deals and last.sort("deal_id").drop("as_known_at").equals(api.deals(con))
    return t_many, t_one, many[0].height


def append_verify_run(tmp: Path, events: list[NewEvent], batch: int, *, measure: bool = True,
                      sequential: bool = False) -> dict[str, float]:
    """The append (and its floor) and verify (fast and full routes) figures of one run, into ``tmp``;
    with ``measure=False`` only the log is written (for the as-of figures); ``sequential`` also times the
    append with ``ledger.log.OVERLAP`` off, into another database."""
    n = len(events)
    if not measure:
        with connect(tmp / "bench.duckdb") as con:
            for k in range(0, n, batch):
                log.append(con, events[k : k + batch])
        return {}
    out: dict[str, float] = {}
    out["floor"], out["floor_cpu"] = _floor(tmp, events)
    # the same rows committed one batch at a time, as the append must (each batch durable on its own):
    # what part of the gap to the floor is the per-transaction cost of the batch size, not the append's
    out["floor_batched"], out["floor_batched_cpu"] = _floor(tmp, events, batch)
    with connect(tmp / "bench.duckdb") as con:
        out["append"], out["append_cpu"] = _timed_cpu(
            lambda: [log.append(con, events[k : k + batch]) for k in range(0, n, batch)])
    if sequential:  # the same append without the overlap of DuckDB and Python work (ledger.overlap)
        log.OVERLAP = False
        try:
            with connect(tmp / "sequential.duckdb") as con:
                out["append_seq"], out["append_seq_cpu"] = _timed_cpu(
                    lambda: [log.append(con, events[k : k + batch]) for k in range(0, n, batch)])
        finally:
            log.OVERLAP = True
    with connect(tmp / "bench.duckdb", read_only=True) as con:
        rep: list[log.VerifyReport] = []
        out["verify"], out["verify_cpu"] = _timed_cpu(lambda: rep.append(log.verify(con)))
        out["verify_full"], out["verify_full_cpu"] = _timed_cpu(lambda: rep.append(log.verify(con, full=True)))
        assert rep[0] == rep[1] and rep[0].ok and rep[0].events == n
    return out


def one_run(n: int, batch: int, n_dates: int, *, asof: bool = True, append_verify: bool = True,
            many: bool = True, sequential: bool = False) -> dict[str, float]:
    events = [deal(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        out = append_verify_run(tmp, events, batch, measure=append_verify, sequential=sequential)
        if not asof:
            return out
        with connect(tmp / "bench.duckdb", read_only=True) as con:
            us = [r[0] for r in con.execute("SELECT epoch_us(recorded_at) FROM ledger_events ORDER BY position").fetchall()]
            lo, hi = us[0], us[-1]
            times = [dt.datetime.fromtimestamp((lo + (hi - lo) * k // max(n_dates - 1, 1)) / 1e6, dt.UTC)
                     for k in range(n_dates)]
            mid = times[len(times) // 2]
            single: list[pl.DataFrame] = []
            out["asof_one"], out["asof_one_cpu"] = _timed_cpu(lambda: single.append(api.deals(con, as_known_at=mid)))
            # the first query of the connection also reads the log's pages; the same query again, warm
            out["asof_one_warm"] = min(_timed(lambda: api.deals(con, as_known_at=mid)) for _ in range(2))
            replayed: list[pl.DataFrame] = []
            out["asof_one_py"] = _timed(lambda: replayed.append(
                project.deals_frame(project.fold(log.read(con, as_known_at=mid)))))
            assert single[0].equals(replayed[0])
            # the same target for flows and for in_effect_on as of a time (each checked against the replay)
            day = dt.date(2025, 6, 30)
            for key, query in (("flows", lambda: api.flows(con, as_known_at=mid)),
                               ("in_effect", lambda: api.deals(con, as_known_at=mid, in_effect_on=day)),
                               ("flows_in_effect", lambda: api.flows(con, as_known_at=mid, in_effect_on=day))):
                t0, c0 = time.perf_counter(), time.process_time()
                got = query()
                out[f"asof_one_{key}"], out[f"asof_one_{key}_cpu"] = time.perf_counter() - t0, time.process_time() - c0
                state = project.fold(log.read(con, as_known_at=mid), in_effect_on=day if "in_effect" in key else None)
                want = project.flows_frame(state) if key.startswith("flows") else project.deals_frame(state)
                assert got.equals(want), key
            if not many:
                return out
            passes: list[pl.DataFrame] = []
            out["asof_many"] = _timed(lambda: passes.append(api.deals_as_known_at_many(con, times[-min(n_dates, 50):])))
            out["asof_many_rows"] = passes[0].height
            assert passes[0].filter(pl.col("as_known_at") == times[-1]).height == n
        out["asof_c_many"], out["asof_c_one"], rows = asof_many_run(tmp, n, 100, n_dates, batch)
        out["asof_c_rows"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--dates", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--naive", type=int, default=0,
                    help="also time this many events appended one transaction each (0: skip)")
    ap.add_argument("--append-verify-only", action="store_true", help="only the append and verify figures")
    ap.add_argument("--asof-only", action="store_true", help="only the as-of figures (the logs are still "
                    "written by ledger.log.append)")
    ap.add_argument("--single-only", action="store_true", help="only the single as-of queries (implies "
                    "--asof-only: no append, verify or many-instant figures)")
    ap.add_argument("--sequential", action="store_true", help="also time the append without the overlap of "
                    "its DuckDB calls and its Python work (ledger.log.OVERLAP off), in the same runs")
    a = ap.parse_args()
    a.asof_only = a.asof_only or a.single_only
    runs = [one_run(a.events, a.batch, a.dates, asof=not a.append_verify_only, append_verify=not a.asof_only,
                    many=not a.single_only, sequential=a.sequential) for _ in range(a.runs)]

    def stat(key: str) -> tuple[float, float]:
        xs = [r[key] for r in runs]
        return min(xs), statistics.median(xs)

    n = a.events
    print(f"{a.runs} runs, {n:,} events, batches of {a.batch:,}; load average {os.getloadavg()[0]:.1f} at the end")
    if not a.asof_only:
        ap_min, ap_med = stat("append")
        fl_min, fl_med = stat("floor")
        ratios = [r["append"] / r["floor"] for r in runs]
        cpu_ratios = [r["append_cpu"] / r["floor_cpu"] for r in runs]
        print(f"append      min {ap_min:6.2f} s  median {ap_med:6.2f} s  = {n / ap_med:>9,.0f} events/s (target >= 15,000)")
        print(f"floor       min {fl_min:6.2f} s  median {fl_med:6.2f} s  (JSON + SHA-256 in Python + one Arrow insert)")
        print(f"ratio       append / floor: min {min(ratios):.2f}x  median {statistics.median(ratios):.2f}x (target <= 2x)")
        fb_min, fb_med = stat("floor_batched")
        b_ratios = [r["append"] / r["floor_batched"] for r in runs]
        print(f"floor, one transaction per batch: min {fb_min:6.2f} s  median {fb_med:6.2f} s  (the same rows, "
              f"{a.batch:,} per commit; {fb_min / fl_min:.2f}x the floor, min); append / this: min "
              f"{min(b_ratios):.2f}x  median {statistics.median(b_ratios):.2f}x")
        ac_min, ac_med = stat("append_cpu")
        fc_min, fc_med = stat("floor_cpu")
        print(f"append CPU  min {ac_min:6.2f} s  median {ac_med:6.2f} s  = {n / ac_med:>9,.0f} events per CPU second; "
              f"floor CPU min {fc_min:.2f} s median {fc_med:.2f} s; ratio min {min(cpu_ratios):.2f}x "
              f"median {statistics.median(cpu_ratios):.2f}x")
        if a.sequential:
            sq_min, sq_med = stat("append_seq")
            sc_min, sc_med = stat("append_seq_cpu")
            gain = [r["append_seq"] / r["append"] for r in runs]
            print(f"sequential  min {sq_min:6.2f} s  median {sq_med:6.2f} s  (the append without the overlap; CPU min "
                  f"{sc_min:.2f} s median {sc_med:.2f} s); sequential / overlapped: min {min(gain):.2f}x "
                  f"median {statistics.median(gain):.2f}x")
        v_min, v_med = stat("verify")
        vf_min, vf_med = stat("verify_full")
        v_ratios = [r["verify_full"] / r["verify"] for r in runs]
        vc_min, vc_med = stat("verify_cpu")
        vfc_min, vfc_med = stat("verify_full_cpu")
        print(f"verify      min {v_min:6.2f} s  median {v_med:6.2f} s  = {n / v_med:>9,.0f} events/s (target < 1 s); "
              f"CPU min {vc_min:.2f} s median {vc_med:.2f} s (full route CPU min {vfc_min:.2f} s median {vfc_med:.2f} s)")
        print(f"verify full min {vf_min:6.2f} s  median {vf_med:6.2f} s  (replay of every event; the fast route is "
              f"min {min(v_ratios):.1f}x median {statistics.median(v_ratios):.1f}x faster)")
    if a.append_verify_only:
        return
    o_min, o_med = stat("asof_one")
    p_min, p_med = stat("asof_one_py")
    one_ratio = [r["asof_one_py"] / r["asof_one"] for r in runs]
    oc_min, oc_med = stat("asof_one_cpu")
    print(f"as-of one   min {o_min:6.3f} s  median {o_med:6.3f} s  deals(as_known_at=mid-log), SQL fold (target < 0.2 s); "
          f"CPU min {oc_min:.3f} s median {oc_med:.3f} s")
    w_min, w_med = stat("asof_one_warm")
    print(f"            the same query again on the connection (warm, best of 2): min {w_min:6.3f} s  "
          f"median {w_med:6.3f} s")
    print(f"            Python replay of the same prefix: min {p_min:6.3f} s  median {p_med:6.3f} s; "
          f"ratio min {min(one_ratio):.1f}x  median {statistics.median(one_ratio):.1f}x")
    for key, what in (("flows", "flows(as_known_at=mid-log)"),
                      ("in_effect", "deals(as_known_at=mid-log, in_effect_on=2025-06-30)"),
                      ("flows_in_effect", "flows(as_known_at=mid-log, in_effect_on=2025-06-30)")):
        k_min, k_med = stat(f"asof_one_{key}")
        kc_min, kc_med = stat(f"asof_one_{key}_cpu")
        print(f"as-of one   min {k_min:6.3f} s  median {k_med:6.3f} s  {what} (target < 0.2 s); "
              f"CPU min {kc_min:.3f} s median {kc_med:.3f} s")
    if a.single_only:
        return
    if a.naive:
        with tempfile.TemporaryDirectory() as tmp, connect(Path(tmp) / "naive.duckdb") as con:
            naive = [deal(i) for i in range(a.naive)]
            t_naive = _timed(lambda: [log.append(con, [ev]) for ev in naive])
        print(f"one-by-one  {a.naive:,} events one transaction each: {a.naive / t_naive:,.0f} events/s "
              f"(batched is {n / ap_med / (a.naive / t_naive):.0f}x)")
    m_min, m_med = stat("asof_many")
    k = min(a.dates, 50)
    print(f"as-of many  min {m_min:6.3f} s  median {m_med:6.3f} s  {k} instants in one pass, "
          f"{int(runs[0]['asof_many_rows']):,} rows; {k} single queries would take ~{k * o_med:.1f} s "
          f"(ratio {k * o_med / m_med:.1f}x)")

    c_min, c_med = stat("asof_c_many")
    c1_min, c1_med = stat("asof_c_one")
    print(f"as-of many  min {c_min:6.3f} s  median {c_med:6.3f} s  {a.dates:,} instants on {n:,} events of 100 deals "
          f"(corrections), {int(runs[0]['asof_c_rows']):,} rows (target < 2 s); one as-of query there: median "
          f"{c1_med:.3f} s, so {a.dates:,} single queries ~{a.dates * c1_med:,.0f} s (ratio {a.dates * c1_med / c_med:,.0f}x)")


if __name__ == "__main__":
    main()
