"""Crash soak: SIGKILL `carousel ledger import` and `carousel market load-snapshot` at random points.

    python3 bench/bench_crash.py [--runs 100] [--seed 20261125]

After each kill the database is reopened and checked (hash chain, gapless positions, all-or-nothing
import, whole price batches), then the same command runs again un-killed and must succeed. Prints the
number of runs, how many were killed mid-flight, and every violation (there should be none).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))
from crash import campaign  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261125)
    a = ap.parse_args()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = campaign(Path(tmp), a.runs, seed=a.seed)
    bad = [o for o in outcomes if o.problems]
    killed = sum(o.killed for o in outcomes)
    print(f"crash soak: {len(outcomes)} runs, {killed} killed mid-flight, {len(bad)} with violations "
          f"({time.perf_counter() - t:.0f} s)")
    for o in bad:
        print(f"  delay {o.delay:.2f}s: {'; '.join(o.problems)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
