"""Cold starts: `carousel --help`, `carousel study` for one deal, and a first fit, each in fresh processes.

    python3 bench/bench_coldstart.py [--repeat 7] [--root CHECKOUT]

``--root`` measures another checkout (e.g. ``git worktree add /tmp/before <commit>``) with the same
script and floors, for a before/after comparison in one session.

Every figure is a new Python process (``sys.executable``, this checkout first on PYTHONPATH), timed from
spawn to exit, min and median over ``--repeat`` runs, wall clock and CPU (user + system of the child).
Beside each target the script times its floor in the same run, so the ratio says how much carousel adds
to what it cannot avoid:

* ``python -c pass`` (the interpreter and site-packages' .pth files), ``import typer`` (the CLI
  framework), the ``--help`` of a two-command typer app (typer's rich help formatter alone imports
  rich.markdown, markdown_it and rich.traceback), ``import duckdb, polars, numpy`` (what any command
  that reads the database must load), plus pyarrow (DuckDB's ``.pl()`` goes through it) and
  scipy.special (the t tails of the study's p-values);
* the study with an empty calendar cache (each run builds the exchange_calendars calendars, as every
  run did before market.session_cache) against the study with the cache in place;
* the first ``run_study`` on the shipped deals in a fresh process against the second one in the same
  process (what a notebook user pays once).

The database (shipped deals + price snapshot) and the calendar cache live in a temporary folder;
XDG_CACHE_HOME points there, so the user's own cache is neither used nor touched. On a shared machine
wall times move with the load; CPU times and ratios are steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEAL = "amd-openai-2025-10-06"

TYPER_APP = """
import typer
app = typer.Typer(add_completion=False)
@app.command()
def one(x: int = 1) -> None:
    "First command."
@app.command()
def two(y: str = "") -> None:
    "Second command."
try:
    app(["--help"])
except SystemExit:
    pass
"""

FIRST_FIT = r"""
import json, sys, time
import duckdb
from analysis.study import load_inputs, run_study
con = duckdb.connect(sys.argv[1], read_only=True)
deals, returns = load_inputs(con, ["SPY"])
con.close()
times, cpu = [], []
for _ in range(3):
    t, c = time.perf_counter(), time.process_time()
    res = run_study(deals, returns)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
print(json.dumps({"times": times, "cpu": cpu, "nobs": res.nobs}))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """(wall s, child CPU s, result) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res


def series(cmd: list[str], env: dict[str, str], repeat: int, before_each: object = None) -> dict[str, float]:
    walls: list[float] = []
    cpus: list[float] = []
    timed(cmd, env)  # one unmeasured run: .pyc files and the OS page cache, as for any user's second call
    for _ in range(repeat):
        if callable(before_each):
            before_each()
        wall, cpu, _ = timed(cmd, env)
        walls.append(wall)
        cpus.append(cpu)
    return {"min": min(walls), "median": statistics.median(walls), "cpu_min": min(cpus),
            "cpu_median": statistics.median(cpus)}


def line(label: str, s: dict[str, float], floor: dict[str, float] | None = None, floor_name: str = "") -> None:
    ratio = ""
    if floor is not None:
        ratio = (f"  {s['median'] / floor['median']:4.2f}x {floor_name} (wall median), "
                 f"{s['cpu_median'] / floor['cpu_median']:4.2f}x (CPU)")
    print(f"  {label:<46} wall min {s['min']:6.3f} s  median {s['median']:6.3f} s   "
          f"CPU min {s['cpu_min']:6.3f} s  median {s['cpu_median']:6.3f} s{ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7, help="measured runs per figure (>= 5 recommended)")
    ap.add_argument("--root", type=Path, default=ROOT, help="carousel checkout to measure (default: this one)")
    a = ap.parse_args()
    root = a.root.resolve()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="carousel-coldstart-"))
    try:
        cache = tmp / "xdg"
        env = {**os.environ, "PYTHONPATH": str(root), "XDG_CACHE_HOME": str(cache)}
        env.pop("CAROUSEL_DB", None)
        db = tmp / "c.duckdb"
        for args in (["ledger", "import", str(root / "data" / "events" / "deals.csv")],
                     ["market", "load-snapshot"]):
            timed([py, "-m", "carousel", *args, "--db", str(db)], env)
        print(f"cold starts of {root}, {a.repeat} fresh processes each (+1 unmeasured), "
              f"python {sys.version.split()[0]}")

        print("floors:")
        f_pass = series([py, "-c", "pass"], env, a.repeat)
        line("python -c pass", f_pass)
        f_typer = series([py, "-c", "import typer"], env, a.repeat)
        line("python -c 'import typer'", f_typer)
        f_app = series([py, "-c", TYPER_APP], env, a.repeat)
        line("--help of a two-command typer app", f_app)
        f_data = series([py, "-c", "import duckdb, polars, numpy"], env, a.repeat)
        line("python -c 'import duckdb, polars, numpy'", f_data)
        f_special = series([py, "-c", "import typer, duckdb, polars, numpy, pyarrow, scipy.special"],
                           env, a.repeat)
        line("... + typer, pyarrow, scipy.special", f_special)

        print("carousel --help (target < 0.3 s):")
        helped = series([py, "-m", "carousel", "--help"], env, a.repeat)
        line("carousel --help", helped, f_typer, "import typer")
        line("", helped, f_app, "typer app --help")
        print(f"  {'':<46} {helped['median'] - f_pass['median']:+.3f} s wall, "
              f"{helped['cpu_median'] - f_pass['cpu_median']:+.3f} s CPU above python -c pass")

        print(f"carousel study --deal {DEAL} --format json (target < 1.5 s):")
        study = [py, "-m", "carousel", "study", "--deal", DEAL, "--format", "json", "--db", str(db)]
        warm = series(study, env, a.repeat)
        line("calendar cache in place", warm, f_special, "imports floor")

        def drop_cache() -> None:
            shutil.rmtree(cache, ignore_errors=True)

        cold = series(study, env, a.repeat, before_each=drop_cache)
        line("empty calendar cache (builds exchange_calendars)", cold, warm, "cached")
        out_warm = timed(study, env)[2].stdout
        drop_cache()
        out_cold = timed(study, env)[2].stdout
        print(f"  JSON identical with and without the cache: {out_warm == out_cold} ({len(out_warm)} bytes)")

        print("first fit in a fresh process vs a warm fit (target: at most 0.3 s above):")
        recs = [json.loads(timed([py, "-c", FIRST_FIT, str(db)], env)[2].stdout) for _ in range(a.repeat)]
        print(f"  run_study on the shipped deals ({recs[0]['nobs']} firm-events), first call in a fresh process "
              "vs the faster of the next two:")
        for key, what in (("times", "wall"), ("cpu", "CPU (process time)")):
            first = [r[key][0] for r in recs]
            warm_fit = [min(r[key][1:]) for r in recs]
            extra = [f - w for f, w in zip(first, warm_fit, strict=True)]
            print(f"    {what:<19} first median {statistics.median(first):.3f} s (min {min(first):.3f}), "
                  f"warm median {statistics.median(warm_fit):.3f} s (min {min(warm_fit):.3f}); first - warm "
                  f"median {statistics.median(extra):+.3f} s (min {min(extra):+.3f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
