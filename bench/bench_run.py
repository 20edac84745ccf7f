"""Cold start of the main job: `carousel run` on a fresh database, figures saved in parallel or serially.

    python3 bench/bench_run.py [--repeat 3] [--modes parallel,serial,png,png-serial]

Each run is a new process on a new database (ledger import, snapshot load, study, graph, 33 figure
files, tables, report). The alternative is the same job with the figures saved in the main process
(``--jobs 0``, how every release before this one wrote them); ``png`` is ``--formats png`` (the report's
figures only). Modes are interleaved run by run so that a change in the machine's load hits them alike.

Wall time is from spawn to exit. CPU time is user + system of the job *and every process it started*:
the figure workers are forked by a forkserver that outlives the job by a moment, so this script makes
itself a child subreaper (Linux prctl) and reaps every orphan before reading its children's usage.
The serial/parallel ratio is of medians measured in this one run; on a loaded machine (see the load
average printed) wall times can be several times the CPU times.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES: dict[str, list[str]] = {
    "parallel": [],
    "serial": ["--jobs", "0"],
    "png": ["--formats", "png"],
    "png-serial": ["--formats", "png", "--jobs", "0"],
}
_PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _reap() -> None:
    """Wait for every child left (the orphaned forkserver and its workers), so their CPU is counted."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def once(args: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the job and its descendants, figure files written)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _children_cpu()
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carousel", "run", "--db", f"{tmp}/c.duckdb", "--out",
                        f"{tmp}/out", *args], check=True, capture_output=True, env=env)
        wall = time.perf_counter() - t
        _reap()
        n_files = sum(1 for _ in Path(tmp, "out", "figures").iterdir())
        return wall, _children_cpu() - cpu0, n_files


def _fmt(xs: list[float]) -> str:
    return f"min {min(xs):6.2f} s  median {statistics.median(xs):6.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="parallel,serial,png")
    a = ap.parse_args()
    modes = [m.strip() for m in a.modes.split(",")]
    reaper = _subreaper()
    load0 = os.getloadavg()
    once([])  # unmeasured: file-system caches and the calendar cache
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    files: dict[str, int] = {}
    for _ in range(a.repeat):
        for m in modes:
            w, c, n = once(MODES[m])
            walls[m].append(w)
            cpus[m].append(c)
            files[m] = n
    load1 = os.getloadavg()
    print(f"carousel run, cold, {a.repeat} runs per mode, {os.cpu_count()} cores, load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after"
          + ("" if reaper else " (no subreaper: the workers' CPU is not counted)"))
    for m in modes:
        print(f"  {m:11s} {files[m]:2d} figure files  wall {_fmt(walls[m])}   CPU {_fmt(cpus[m])}   "
              f"(wall {', '.join(f'{x:.2f}' for x in walls[m])})")
    if "parallel" in modes and "serial" in modes:
        ratio = statistics.median(walls["serial"]) / statistics.median(walls["parallel"])
        cpu_ratio = statistics.median(cpus["serial"]) / statistics.median(cpus["parallel"])
        print(f"  serial / parallel, medians: wall {ratio:.2f}x, CPU {cpu_ratio:.2f}x")


if __name__ == "__main__":
    main()
