"""Cold start of the main job: `carousel run` on a fresh database, figures saved in parallel or serially.

    python3 bench/bench_run.py [--repeat 3] [--modes parallel,serial,png,png-serial]

Each run is a new process on a new database (ledger import, snapshot load, study, graph, 33 figure
files, tables, report). The alternative is the same job with the figures saved in the main process
(``--jobs 0``, how every release before this one wrote them); ``png`` is ``--formats png`` (the report's
figures only). Modes are interleaved run by run so that a change in the machine's load hits them alike.

Wall time is from spawn to exit. CPU time is user + system of the job *and every process it started*:
the figure workers are forked by a forkserver that outlives the job by a moment, so this script makes
itself a child subreaper (Linux prctl) and reaps every orphan before reading its children's usage.
The main process's own CPU (os.wait4) is the job's critical path: with the figures in workers, an idle
machine cannot finish sooner than max(main CPU, all CPU / cores), printed as the "idle-machine bound".
The serial/parallel ratios are of medians measured in this one run; on a loaded machine (see the load
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
    "png-pdf": ["--formats", "png,pdf"],
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


def once(args: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s of the main process, CPU s of the job and all its processes, figure files)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp, open(f"{tmp}/stderr", "w+b") as err:
        cpu0 = _children_cpu()
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "carousel", "run", "--db", f"{tmp}/c.duckdb", "--out",
                                 f"{tmp}/out", *args], stdout=subprocess.DEVNULL, stderr=err, env=env)
        # wait4: the main process's own usage (the forkserver is not its waited-for child, so its
        # workers are not in it): on an idle machine the job cannot end sooner than this.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"carousel run {' '.join(args)} failed:\n{err.read().decode(errors='replace')}")
        _reap()
        n_files = sum(1 for _ in Path(tmp, "out", "figures").iterdir())
        return wall, usage.ru_utime + usage.ru_stime, _children_cpu() - cpu0, n_files


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
    mains: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    files: dict[str, int] = {}
    for _ in range(a.repeat):
        for m in modes:
            w, mc, c, n = once(MODES[m])
            walls[m].append(w)
            mains[m].append(mc)
            cpus[m].append(c)
            files[m] = n
    load1 = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    print(f"carousel run, cold, {a.repeat} runs per mode, {cores} cores, load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after"
          + ("" if reaper else " (no subreaper: the workers' CPU is not counted)"))
    for m in modes:
        bound = [max(mc, c / cores) for mc, c in zip(mains[m], cpus[m], strict=True)]
        print(f"  {m:10s} {files[m]:2d} figure files")
        print(f"    wall             {_fmt(walls[m])}   ({', '.join(f'{x:.2f}' for x in walls[m])})")
        print(f"    CPU, all         {_fmt(cpus[m])}")
        print(f"    CPU, main        {_fmt(mains[m])}")
        print(f"    idle-machine bound max(main, all / {cores}) {_fmt(bound)}")
    if "parallel" in modes and "serial" in modes:
        def med(d: dict[str, list[float]], m: str) -> float:
            return statistics.median(d[m])

        print(f"  serial / parallel, medians: wall {med(walls, 'serial') / med(walls, 'parallel'):.2f}x, "
              f"CPU all {med(cpus, 'serial') / med(cpus, 'parallel'):.2f}x, "
              f"main {med(mains, 'serial') / med(mains, 'parallel'):.2f}x")


if __name__ == "__main__":
    main()
