"""Ledger throughput: batched appends, full replay, verify; against one transaction per event.

    python3 bench/bench_ledger.py [--events 100000] [--batch 1000] [--naive 2000]

Prints events/s for each phase and the batched/naive append ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from carousel.db import connect
from ledger import log, project
from ledger.model import NewEvent, deal_stream, event_id_for


def deal(i: int) -> NewEvent:
    did = f"bench-{i:07d}"
    s = deal_stream(did)
    payload = {"deal_id": did, "contract_id": did, "counts_toward_total": True, "announced_date": "2025-01-02",
               "announced_time_et": None, "session": "unknown", "payers": ["openai"], "payees": ["oracle"],
               "amount_usd": f"{i}.00", "amount_kind": "exact", "deal_type": "cloud_compute_purchase",
               "horizon": None, "tickers": ["ORCL"], "title": f"deal {i}", "confidence": "verified", "sources": []}
    return NewEvent(event_id_for(s, "DealAnnounced"), s, "DealAnnounced", payload)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--naive", type=int, default=2_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with connect(Path(tmp) / "bench.duckdb") as con:
            events = [deal(i) for i in range(a.events)]
            t = time.perf_counter()
            for k in range(0, a.events, a.batch):
                log.append(con, events[k : k + a.batch])
            t_append = time.perf_counter() - t
            t = time.perf_counter()
            state = project.fold(log.read(con))
            t_replay = time.perf_counter() - t
            assert len(state.deals) == a.events
            t = time.perf_counter()
            rep = log.verify(con)
            t_verify = time.perf_counter() - t
            assert rep.ok and rep.events == a.events
        with connect(Path(tmp) / "naive.duckdb") as con:
            naive = [deal(i) for i in range(a.naive)]
            t = time.perf_counter()
            for ev in naive:
                log.append(con, [ev])
            t_naive = time.perf_counter() - t
    batched_rate = a.events / t_append
    naive_rate = a.naive / t_naive
    print(f"append  {a.events:>8} events in batches of {a.batch}: {t_append:7.2f} s  {batched_rate:>10,.0f} events/s")
    print(f"append  {a.naive:>8} events one transaction each:  {t_naive:7.2f} s  {naive_rate:>10,.0f} events/s")
    print(f"ratio   batched / one-per-transaction: {batched_rate / naive_rate:.1f}x")
    print(f"replay  {a.events:>8} events (read + upcast + fold):  {t_replay:7.2f} s  {a.events / t_replay:>10,.0f} events/s")
    print(f"verify  {a.events:>8} events (chain, head, projections): {t_verify:7.2f} s  {a.events / t_verify:>10,.0f} events/s")


if __name__ == "__main__":
    main()
