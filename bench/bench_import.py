"""Streaming import: rows/s and peak RSS of ``carousel ledger import`` for large deals files.

Each import runs in its own child process (a fresh interpreter: ``python -m carousel ledger import``), so
its peak resident set (``ru_maxrss`` of the waited-for child's rusage, ``os.wait4``) is that import's
alone. The file is synthetic (:func:`write_deals`: the shipped companies, deals between real parties with
random dates, amounts and types, one fixed seed), every row valid, every deal new, into a fresh database.

Run: ``python3 bench/bench_import.py`` (100k rows x 3, then 1M rows x 1); ``--sizes 100000 --repeat 3``.
The 1,000,000-row target of issue 17: peak RSS under 500 MB (it was 3.1 GB and 182 s before streaming).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledger.files import DEAL_FIELDS  # noqa: E402

#: (payer, payee, the tickers a row lists): parties of the shipped ledger whose tickers belong to them.
PAIRS = (
    ("Microsoft", "OpenAI", "MSFT"),
    ("Nvidia", "OpenAI", "NVDA"),
    ("OpenAI", "Oracle", "ORCL"),
    ("OpenAI", "AMD", "AMD"),
    ("OpenAI", "CoreWeave", "CRWV"),
    ("Nvidia", "CoreWeave", "NVDA;CRWV"),
    ("Meta", "CoreWeave", "META;CRWV"),
    ("OpenAI", "Broadcom", "AVGO"),
)
TYPES = ("equity_investment", "cloud_compute_purchase", "chip_purchase", "compute_purchase_commitment")


def write_deals(folder: Path, n: int, seed: int = 20261201, *, name: str = "deals.csv") -> Path:
    """A valid deals CSV of ``n`` new deals (plus the shipped companies.csv beside it); deterministic."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "data" / "events" / "companies.csv", folder / "companies.csv")
    rng = np.random.default_rng(seed)
    pair = rng.integers(len(PAIRS), size=n)
    kind = rng.integers(len(TYPES), size=n)
    day = rng.integers(0, 2200, size=n)
    amount = np.round(rng.lognormal(1.0, 1.5, size=n), 2)
    undisclosed = rng.random(n) < 0.2
    start = dt.date(2019, 1, 2)
    path = folder / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(DEAL_FIELDS)
        for k in range(n):
            payer, payee, tickers = PAIRS[pair[k]]
            d = (start + dt.timedelta(days=int(day[k]))).isoformat()
            amt = "" if undisclosed[k] else f"{max(float(amount[k]), 0.01):.2f}"
            w.writerow([f"bench-{k:07d}", d, "", "unknown", payer, payee, amt, "", TYPES[kind[k]], tickers, "",
                        "bench", f"synthetic deal {k}", d, f"https://example.org/deal/{k}", "verified"])
    return path


def run_import(deals: Path, db: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, stdout) of one ``carousel ledger import`` in a child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CAROUSEL_DB", None)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "carousel", "ledger", "import", str(deals), "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed ({os.waitstatus_to_exitcode(status)}): {err}")
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_maxrss * 1024, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs at sizes up to 100,000 (larger: one run)")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = Path(tmp) / f"n{n}"
            t = time.perf_counter()
            deals = write_deals(folder, n, args.seed)
            print(f"{n:>9,} rows: file {deals.stat().st_size / 1e6:.0f} MB written in {time.perf_counter() - t:.1f} s")
            runs = args.repeat if n <= 100_000 else 1
            secs, rss = [], []
            for i in range(runs):
                db = folder / f"run{i}.duckdb"
                s, r, out = run_import(deals, db)
                secs.append(s)
                rss.append(r)
                print(f"    run {i + 1}: {s:7.1f} s  {n / s:8,.0f} rows/s  peak RSS {r / 2**20:6.0f} MiB  "
                      f"db {db.stat().st_size / 1e6:.0f} MB  [{out.splitlines()[-1] if out else ''}]")
                db.unlink()
            print(f"  {n:>9,} rows: time min {min(secs):.1f} s median {statistics.median(secs):.1f} s; "
                  f"rows/s max {n / min(secs):,.0f} median {n / statistics.median(secs):,.0f}; peak RSS min "
                  f"{min(rss) / 2**20:.0f} MiB median {statistics.median(rss) / 2**20:.0f} MiB")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (after)")


if __name__ == "__main__":
    main()
