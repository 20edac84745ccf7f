"""User data is printed verbatim by the shell's commands, never read as rich markup.

Before: ``carousel sql`` (table format) dropped "[headline reconstructed from URL/lede]" from shipped
titles, and ``SELECT '[/x]'`` crashed with a MarkupError traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import carousel_runs
import duckdb

REPO = Path(__file__).resolve().parents[2]


def carousel(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, so that rich does not wrap long titles across lines.
    return carousel_runs.carousel(*args, env={"COLUMNS": "3000"}, keep_db_env=True)


def test_sql_table_prints_every_shipped_title_verbatim(ledger_db: Path) -> None:
    with duckdb.connect(str(ledger_db), read_only=True) as con:
        titles = [r[0] for r in con.execute("SELECT title FROM deals WHERE title IS NOT NULL").fetchall()]
    assert any("[headline reconstructed from URL/lede]" in t for t in titles)  # the case that broke
    res = carousel("sql", "SELECT title FROM deals ORDER BY deal_id", "--db", str(ledger_db))
    assert res.returncode == 0, res.stderr
    lines = [line.strip("│ ") for line in res.stdout.splitlines()]
    for t in titles:
        assert t in lines, t


def test_sql_values_and_column_names_that_look_like_markup(ledger_db: Path) -> None:
    res = carousel("sql", "SELECT '[/x]' AS \"[bold]c[/bold]\", '[red]y[/red] [/]' AS z", "--db", str(ledger_db))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "[/x]" in res.stdout and "[red]y[/red] [/]" in res.stdout and "[bold]c[/bold]" in res.stdout


def test_market_status_prints_a_batch_message_with_brackets_verbatim(ledger_db: Path, tmp_path: Path) -> None:
    prices = tmp_path / "[bold]prices[x]"
    prices.mkdir()
    for name in ("SPY.csv", "AMD.csv"):
        shutil.copy(REPO / "data" / "prices" / name, prices / name)
    res = carousel("market", "load-snapshot", "--prices-dir", str(prices), "--db", str(ledger_db))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    res = carousel("market", "status", "--db", str(ledger_db))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert f"2 files from {prices}" in res.stdout
