"""Benchmark: loading the price snapshot and querying the latest-value view.

1. Snapshot load (20 files, 38,381 rows) through ``market.snapshot.load_snapshot`` (one transaction,
   Arrow insert) against the obvious alternatives, in the same run on fresh databases:
   a. one transaction per ticker (same Arrow path, 20 commits), and
   b. row-by-row parameterised INSERTs (``executemany``) on a subset, extrapolated per row.
2. The ``prices`` view (``row_number() OVER (PARTITION BY ticker, date ORDER BY batch_id DESC) = 1``
   with QUALIFY) against a hash aggregate with ``arg_max`` over a struct, on the snapshot plus three
   revised batches of every row (so that the "latest" rule matters), both as a full aggregate
   (engine time) and as a full fetch to Python (what a caller pays).

    python bench/bench_market.py [--subset-rows 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

from carousel.db import connect  # noqa: E402
from core.db import transaction  # noqa: E402
from core.paths import DATA_DIR  # noqa: E402
from market.snapshot import load_snapshot, read_snapshot  # noqa: E402
from market.store import append_batch  # noqa: E402

PRICES = DATA_DIR / "prices"
# The alternative: a hash aggregate taking arg_max over a STRUCT (a scalar arg_max would skip NULLs).
ARGMAX_VIEW = """
SELECT ticker, date, v.open AS open, v.high AS high, v.low AS low, v.close AS close,
       v.adj_close AS adj_close, v.volume AS volume, v.dividends AS dividends, v.splits AS splits,
       v.batch_id AS batch_id
FROM (SELECT ticker, date, arg_max({'open': open, 'high': high, 'low': low, 'close': close,
             'adj_close': adj_close, 'volume': volume, 'dividends': dividends, 'splits': splits,
             'batch_id': batch_id}, batch_id) AS v
      FROM price_rows GROUP BY ticker, date)
"""


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _fetch(con: duckdb.DuckDBPyConnection, q: str) -> None:
    con.execute(q).fetchall()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subset-rows", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = read_snapshot(PRICES)
    n = rows.height

    loads = []
    for i in range(a.repeat):
        con = connect(tmp / f"one_{i}.duckdb")
        loads.append(timed(partial(load_snapshot, con, PRICES)))
        con.close()
    t_one = statistics.median(loads)

    per = []
    for i in range(a.repeat):
        con = connect(tmp / f"per_{i}.duckdb")

        def per_ticker(con: duckdb.DuckDBPyConnection = con) -> None:
            for (t,), part in rows.group_by("ticker", maintain_order=True):
                append_batch(con, part, source="bench", tickers=[str(t)], start=None, end=None)

        per.append(timed(per_ticker))
        con.close()
    t_per = statistics.median(per)

    con = connect(tmp / "rows.duckdb")
    sub = rows.head(a.subset_rows)
    params = [[1, *r] for r in sub.select(
        "ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "dividends",
        "splits").iter_rows()]

    def row_by_row() -> None:
        with transaction(con):
            con.executemany("INSERT INTO price_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", params)

    t_rows_sub = timed(row_by_row)
    t_rows = t_rows_sub / sub.height * n
    con.close()

    print(f"snapshot load, {n} rows from {rows['ticker'].n_unique()} files (median of {a.repeat}):")
    print(f"  load_snapshot (1 transaction, Arrow):   {t_one * 1e3:8.1f} ms  (includes CSV parse + validation)")
    print(f"  one transaction per ticker (20):        {t_per * 1e3:8.1f} ms  ratio {t_per / t_one:5.2f}x")
    print(f"  row-by-row executemany ({sub.height} rows):  {t_rows_sub * 1e3:8.1f} ms  "
          f"-> {t_rows:6.2f} s extrapolated to {n} rows, ratio {t_rows / t_one:7.1f}x")

    # View query: snapshot + three batches revising every adj_close.
    con = connect(tmp / "view.duckdb")
    load_snapshot(con, PRICES)
    for k in range(3):
        append_batch(con, rows.with_columns(adj_close=pl.col("close") * (0.99 - 0.01 * k)),
                     source="bench-revision", tickers=["*"], start=None, end=None)
    total = con.execute("SELECT count(*) FROM price_rows").fetchall()[0][0]
    same = con.execute(
        f"SELECT count(*) FROM ((SELECT * FROM prices) EXCEPT ALL (SELECT * FROM ({ARGMAX_VIEW})))"
    ).fetchall()[0][0]
    agg = "SELECT count(*), sum(adj_close), sum(volume) FROM "
    queries = {
        "aggregate, prices view (window)": agg + "prices",
        "aggregate, arg_max struct": agg + f"({ARGMAX_VIEW})",
        "fetch all, prices view (window)": "SELECT * FROM prices ORDER BY ticker, date",
        "fetch all, arg_max struct": f"SELECT * FROM ({ARGMAX_VIEW}) ORDER BY ticker, date",
        "one ticker, prices view (window)": "SELECT * FROM prices WHERE ticker = 'NVDA'",
        "one ticker, arg_max struct": f"SELECT * FROM ({ARGMAX_VIEW}) WHERE ticker = 'NVDA'",
        "returns view, fetch all": "SELECT * FROM returns",
    }
    res = {}
    for name, q in queries.items():
        con.execute(q).fetchall()  # warm
        res[name] = statistics.median(
            timed(partial(_fetch, con, q)) for _ in range(a.repeat * 2))
    print(f"latest-value view over {total} stored rows (median of {a.repeat * 2}); "
          f"rows differing between the two forms: {same}")
    for name, v in res.items():
        alt = name.replace("prices view (window)", "arg_max struct")
        ratio = f"  arg_max/window {res[alt] / v:5.2f}x" if alt != name and alt in res else ""
        print(f"  {name:36s} {v * 1e3:8.1f} ms{ratio}")
    con.close()


if __name__ == "__main__":
    main()
