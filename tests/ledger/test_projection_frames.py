"""Projection frames (``ledger.project.rows_frame``): the rows the writer inserts, built column-wise.

Compared with Polars' own row constructor (a slower, independent route) on the shipped ledger and on
edge cases, and checked not to import pandas (pyarrow's ``array`` from Python lists does, 0.6-1.1 s
that every ledger-writing process paid).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from carousel.db import connect
from ledger import log, project

REPO = Path(__file__).resolve().parents[2]


def _by_rows(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def test_shipped_ledger_frames_equal_polars_row_constructor(ledger_db: Path) -> None:
    con = connect(ledger_db, read_only=True)
    try:
        state = project.fold(log.read(con))
    finally:
        con.close()
    deals = project.deal_rows(state)
    flows = project.flow_rows(deals)
    companies = project.company_rows(state)
    assert len(deals) == 44 and len(companies) == 18 and len(flows) >= len(deals)
    for rows, schema in ((deals, project.DEAL_COLUMNS), (flows, project.FLOW_COLUMNS),
                         (companies, project.COMPANY_COLUMNS)):
        got = project.rows_frame(rows, schema)
        assert got.schema == pl.Schema(schema)
        assert_frame_equal(got, _by_rows(rows, schema))
    # The stored projection is what the writer built: verify replays and compares it.
    assert project.rows_frame(deals, project.DEAL_COLUMNS)["amount_usd"].sum() == sum(
        d["amount_usd"] for d in deals if d["amount_usd"] is not None)


@pytest.mark.parametrize("lists", [
    [["a"], [], ["b", "c", "d"]],
    [[], [], []],
    [["ü", "日本"], [""], ["x"]],
    [["a"], None, ["b"]],  # a None list: Polars' own constructor
    [[None], ["a", None], []],
])
def test_edge_rows_equal_polars_row_constructor(lists: list[list[str | None] | None]) -> None:
    schema = {"k": pl.String, "tickers": pl.List(pl.String), "d": pl.Date, "amt": pl.Decimal(38, 2),
              "n": pl.Int64, "flag": pl.Boolean, "x": pl.Float64}
    rows = [{"k": f"k{i}", "tickers": v, "d": dt.date(2025, 1, i + 1) if i else None,
             "amt": Decimal("123456789012345678901234567890123.45") if i == 1 else (Decimal("0.01") if i else None),
             "n": i, "flag": bool(i % 2), "x": None if i else 1.5} for i, v in enumerate(lists)]
    got = project.rows_frame(rows, schema)
    assert_frame_equal(got, _by_rows(rows, schema))
    assert got["tickers"].to_list() == lists
    assert got["amt"].to_list()[1] == Decimal("123456789012345678901234567890123.45")


def test_empty_rows_give_the_schema() -> None:
    got = project.rows_frame([], project.DEAL_COLUMNS)
    assert got.height == 0 and got.schema == pl.Schema(project.DEAL_COLUMNS)


def test_writing_projections_does_not_import_pandas(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from carousel.db import connect\n"
        "from ledger import log\n"
        "from ledger.model import NewEvent, deal_stream, event_id_for\n"
        "con = connect(sys.argv[1])\n"
        "p = {'deal_id': 'd1', 'payers': ['openai'], 'payees': ['oracle'], 'deal_type': 'cloud_compute_purchase',\n"
        "     'amount_usd': '300000000000.00', 'amount_kind': 'exact', 'session': 'unknown',\n"
        "     'announced_date': '2025-09-10', 'tickers': ['ORCL'], 'title': 't'}\n"
        "s = deal_stream('d1')\n"
        "assert log.append(con, [NewEvent(event_id_for(s, 'DealAnnounced'), s, 'DealAnnounced', p)]).appended == 1\n"
        "assert log.verify(con).ok\n"
        "print('pandas' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.duckdb")], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
