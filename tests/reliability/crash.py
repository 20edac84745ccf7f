"""Crash harness: start a real carousel process, SIGKILL it at a random moment, check the database.

Used by ``tests/reliability/test_faults.py`` (a handful of runs) and ``bench/bench_crash.py`` (hundreds).
The invariants checked after every kill are the ones users rely on:

* the hash chain verifies and positions are gapless (no torn write of the log);
* an import is all or nothing: the log holds either none or all of the file's events;
* price batches are whole: every committed batch has exactly ``row_count`` rows appended
  (the ``prices`` view is consistent with the last committed batch), and no rows without a batch;
* every committed batch's rows hash and chain link verify, and the file carries carousel's marker.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
DEALS = REPO / "data" / "events" / "deals.csv"
N_IMPORT_EVENTS = 44 + len((REPO / "data" / "events" / "companies.csv").read_text().splitlines()) - 1


@dataclass(frozen=True)
class Outcome:
    delay: float
    killed: bool
    returncode: int | None
    events: int
    price_batches: int
    problems: tuple[str, ...]


KINDS = ("import", "snapshot", "refresh")


def _cmd(kind: str, db: Path) -> list[str]:
    if kind == "import":
        return [sys.executable, "-m", "carousel", "ledger", "import", str(DEALS), "--db", str(db)]
    if kind == "refresh":
        # The scheduled job's code path (lock file, universe from the ledger, per-ticker validation)
        # with the offline source.
        return [sys.executable, "-m", "carousel", "refresh", "--source", "snapshot", "--db", str(db)]
    return [sys.executable, "-m", "carousel", "market", "load-snapshot", "--db", str(db)]


def check(db: Path) -> tuple[int, int, list[str]]:
    """Invariants of a database after a crash; returns (events, committed price batches, problems)."""
    from ledger import log

    problems: list[str] = []
    if not db.exists():
        return 0, 0, problems
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "ledger_log" not in tables:
            return 0, 0, problems
        rep = log.verify(con)
        if not rep.ok:
            problems.append(f"verify failed at {rep.broken_position}: {rep.reason}")
        events = rep.events
        if events not in (0, N_IMPORT_EVENTS):
            problems.append(f"partial import: {events} events")
        batches = con.execute(
            "SELECT b.batch_id, b.row_count, count(r.batch_id) FROM price_batches b "
            "LEFT JOIN price_rows r USING (batch_id) GROUP BY ALL ORDER BY 1"
        ).fetchall()
        for bid, want, got in batches:
            if want != got:
                problems.append(f"price batch {bid}: row_count {want} but {got} rows")
        orphans = con.execute(
            "SELECT count(*) FROM price_rows WHERE batch_id NOT IN (SELECT batch_id FROM price_batches)"
        ).fetchall()[0][0]
        if orphans:
            problems.append(f"{orphans} price rows without a committed batch")
        from market.chain import verify_prices

        problems += [f"price chain: {p}" for p in verify_prices(con).problems]  # hashes committed with the batch
        if "carousel_schema" not in tables:
            problems.append("database without carousel's marker")
        return events, len(batches), problems
    finally:
        con.close()


def kill_once(kind: str, db: Path, delay: float) -> Outcome:
    """Run ``kind`` (one of KINDS), SIGKILL it after ``delay`` seconds, check the database."""
    proc = subprocess.Popen(_cmd(kind, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    events, batches, problems = check(db)
    if proc.returncode == 0 and kind == "import" and events != N_IMPORT_EVENTS:
        problems.append("import reported success but its events are missing (acknowledged write lost)")
    return Outcome(delay, killed, proc.returncode, events, batches, tuple(problems))


def campaign(tmp: Path, runs: int, seed: int = 20261125, max_delay: float = 4.0) -> list[Outcome]:
    """``runs`` kills at seeded random delays, rotating import, snapshot load and refresh, on one
    database per run; a second, un-killed run afterwards must complete and leave a consistent database
    (a killed refresh leaves its lock file behind: the flock dies with the process, so the recovery
    run must not be refused)."""
    rng = random.Random(seed)
    out = []
    # Kill inside the command's lifetime, not after it has finished: each kind's delay is drawn up to
    # its last un-killed (recovery) run's duration, learnt as the campaign goes.
    span = dict.fromkeys(KINDS, max_delay)
    for i in range(runs):
        db = tmp / f"crash{i}.duckdb"
        kind = KINDS[i % len(KINDS)]
        if kind == "refresh":
            # The refresh universe is the ledger's listed tickers: import first, un-killed.
            pre = subprocess.run(_cmd("import", db), capture_output=True, text=True, timeout=300)
            if pre.returncode != 0:
                raise RuntimeError(f"import before refresh failed: {pre.stderr[-300:]}")
        o = kill_once(kind, db, rng.uniform(0.3, max(0.6, span[kind])))
        # Recovery: the same command, not killed, must now succeed on the crashed database.
        t = time.perf_counter()
        rec = subprocess.run(_cmd(kind, db), capture_output=True, text=True, timeout=300)
        span[kind] = min(max_delay, time.perf_counter() - t)
        events, batches, problems = check(db)
        extra = list(o.problems) + problems
        if kind in ("snapshot", "refresh") and batches == 0:
            extra.append("after recovery no committed price batch")
        if rec.returncode != 0:
            extra.append(f"recovery run failed: {rec.stderr.strip()[-300:]}")
        if kind in ("import", "refresh") and events != N_IMPORT_EVENTS:
            extra.append(f"after recovery {events} events")
        out.append(Outcome(o.delay, o.killed, o.returncode, events, batches, tuple(extra)))
    return out
