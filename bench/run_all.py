"""Run every benchmark in bench/ and print their figures (the source of BENCHMARKS.md).

    python3 bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    a = ap.parse_args()
    jobs = [
        ["bench_ledger.py"] + (["--events", "10000", "--naive", "300"] if a.quick else []),
        ["bench_market.py"],
        ["bench_eventstudy.py"] + (["--n", "1000"] if a.quick else []),
        ["bench_run.py"] + (["--repeat", "1"] if a.quick else []),
        ["bench_coldstart.py"] + (["--repeat", "5"] if a.quick else []),
        ["bench_crash.py"] + (["--runs", "6"] if a.quick else []),
        ["bench_crosssection.py"] + (["--quick"] if a.quick else []),
        ["bench_crosssection_scale.py"] + (["--events", "1000", "--days", "50", "--repeat", "1"] if a.quick else []),
        ["bench_inference_size.py"] + (["--sims", "300", "--boot", "199"] if a.quick else []),
    ]
    failed = 0
    for job in jobs:
        print(f"\n=== {' '.join(job)} ===", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / job[0]), *job[1:]]).returncode
    sys.exit(failed)


if __name__ == "__main__":
    main()
