"""Every `carousel sql` example in the README runs against the database `carousel run` writes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_sql_examples() -> list[str]:
    out = []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("carousel sql "):
            argv = shlex.split(line, comments=True)
            out.append(argv[2])
    return out


def test_readme_has_sql_examples() -> None:
    assert len(readme_sql_examples()) >= 4


@pytest.fixture(scope="module")
def db(main_job_run: tuple[Path, Path]) -> Path:
    """The database `carousel run` wrote (tests/conftest.py; `carousel sql` opens it read-only)."""
    return main_job_run[0]


@pytest.mark.parametrize("sql", readme_sql_examples())
def test_readme_sql_example_runs(sql: str, db: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "carousel", "sql", sql, "--db", str(db), "--format", "csv"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    header, *rows = res.stdout.splitlines()
    assert header, res.stdout
    # Revised prices need a second fetch (online); offline there is one batch, so no revisions.
    assert rows or "price_rows" in sql, res.stdout
    if re.search(r"FROM car\b", sql):
        # The top event-day abnormal return in the shipped data is Oracle on 2025-09-10 (+35.5%).
        assert rows[0].startswith("openai-orcl-2025-09-10"), rows[0]


def test_sql_json_is_one_document_and_jsonl_one_object_per_line(db: Path) -> None:
    def sql(query: str, fmt: str) -> str:
        res = subprocess.run([sys.executable, "-m", "carousel", "sql", query, "--db", str(db), "--format", fmt],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout

    q = "SELECT event_id, car, t FROM car WHERE \"window\" = '[0,0]' ORDER BY car DESC LIMIT 2"
    doc = json.loads(sql(q, "json"))
    assert [r["event_id"] for r in doc] == ["openai-orcl-2025-09-10:ORCL", "amd-openai-2025-10-06:AMD"]
    assert doc[0]["car"] == pytest.approx(0.355286, abs=1e-6)
    lines = sql(q, "jsonl").splitlines()
    assert [json.loads(x) for x in lines] == doc
    assert json.loads(sql("SELECT 1 AS a WHERE false", "json")) == []
    assert json.loads(sql("SELECT 'nan'::DOUBLE AS x", "json")) == [{"x": None}]
