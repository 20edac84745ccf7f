"""The attack corpus of issue 17 (outside the ledger's own input rules), run through the real CLI.

    python3 bench/bench_attack.py

Prints, per group and in total: cases, clean errors (the expected exit code, one message, no traceback),
tracebacks (must be 0), databases changed wrongly (must be 0; a tamper case counts only if the command
changed the database further), then every case that was not clean. Exit 1 if any.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))
from attack import campaign  # noqa: E402


def main() -> None:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = campaign(Path(tmp), report=lambda o: print(
            f"  {'clean' if o.clean else 'NOT CLEAN'}{' TRACEBACK' if o.traceback else ''}"
            f"{' DB-CHANGED' if o.changed_wrongly else ''}: {o.case.name}: {o.detail}", flush=True))
    groups: dict[str, list] = defaultdict(list)
    for o in outcomes:
        groups[o.case.group].append(o)
    print(f"{'group':<18} {'cases':>6} {'clean':>6} {'tracebacks':>11} {'db changed wrongly':>19}")
    for name, rows in [*sorted(groups.items()), ("total", outcomes)]:
        print(f"{name:<18} {len(rows):>6} {sum(o.clean for o in rows):>6} {sum(o.traceback for o in rows):>11} "
              f"{sum(o.changed_wrongly for o in rows):>19}")
    bad = [o for o in outcomes if not o.clean or o.traceback or o.changed_wrongly]
    for o in bad:
        print(f"  NOT CLEAN: {o.case.name}: {o.detail} (changed: {o.changed_wrongly})")
    print(f"({time.perf_counter() - t:.0f} s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
