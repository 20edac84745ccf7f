"""Cold start of the main job: `carousel run` on a fresh database, batch engine vs statsmodels route.

    python3 bench/bench_run.py [--repeat 3]

Each run is a new process on a new database (ledger import, snapshot load, study, graph, figures,
tables, report). The obvious alternative is the same pipeline with the per-event statsmodels study.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def once(method: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carousel", "run", "--db", f"{tmp}/c.duckdb", "--out", f"{tmp}/out",
                        "--method", method], check=True, capture_output=True)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    batch = [once("batch") for _ in range(a.repeat)]
    sm = [once("statsmodels") for _ in range(a.repeat)]
    b, s = statistics.median(batch), statistics.median(sm)
    print(f"carousel run, cold, batch engine:       median {b:6.2f} s over {a.repeat} runs ({', '.join(f'{x:.2f}' for x in batch)})")
    print(f"carousel run, cold, statsmodels route:  median {s:6.2f} s over {a.repeat} runs ({', '.join(f'{x:.2f}' for x in sm)})")
    print(f"ratio statsmodels / batch: {s / b:.2f}x")


if __name__ == "__main__":
    main()
