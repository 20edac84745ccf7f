"""Timing evidence (issue 15 item 6): recorded as events beside the official announcement."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from carousel.cli.ledger import app
from carousel.db import connect
from core.errors import InputError
from core.paths import DATA_DIR
from ledger import api, log
from ledger.load import import_file

EVIDENCE = DATA_DIR / "events" / "timing_evidence.csv"


@pytest.fixture
def db(ledger_db: Path) -> Path:
    """A private copy of the shipped deals' ledger (conftest's ``ledger_db``, imported once per run)."""
    return ledger_db


def _rows() -> list[dict[str, str]]:
    with EVIDENCE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_evidence_is_recorded_idempotently_and_leaves_the_official_columns(db: Path) -> None:
    with connect(db) as con:
        before = api.deals(con)
        first = import_file(con, EVIDENCE)
        again = import_file(con, EVIDENCE)
        after = api.deals(con)
        assert log.verify(con).ok
    rows = _rows()
    assert (first.rows, first.appended, first.skipped) == (len(rows), len(rows), 0)
    assert (again.appended, again.skipped) == (0, len(rows))
    official = ["deal_id", "announced_date", "announced_time_et", "session"]
    assert after.select(official).equals(before.select(official))
    by_id = {r["deal_id"]: r for r in after.to_dicts()}
    for r in rows:  # every row of the file, as written
        d = by_id[r["id"]]
        assert d["timing_time_et"] == (r["first_public_time_et"] or None)
        assert d["timing_session"] == r["session"]
        assert d["timing_evidence_kind"] == r["evidence_kind"]
        assert d["timing_confidence"] == r["confidence"]
        want = r["first_report_date"] or r["announced_date"] or None
        assert (d["first_report_date"].isoformat() if d["first_report_date"] else None) == want
    g = by_id["anthropic-googl-2025-10-23"]
    assert (g["first_report_date"], g["first_report_session"]) == (dt.date(2025, 10, 21), "after_close")
    assert by_id["amzn-openai-2026-02-27"]["first_report_date"] == dt.date(2026, 2, 25)
    assert by_id["amd-openai-2025-10-06"]["first_report_time_et"] == "07:00"
    no_evidence = set(by_id) - {r["id"] for r in rows}
    assert no_evidence and all(by_id[k]["timing_confidence"] is None for k in no_evidence)


def test_evidence_is_visible_as_known_at(db: Path) -> None:
    with connect(db) as con:
        t_before = dt.datetime.now(dt.UTC)
        import_file(con, EVIDENCE)
        old = api.deals(con, as_known_at=t_before)
        many = api.deals_as_known_at_many(con, [t_before, dt.datetime.now(dt.UTC)])
    assert old["timing_confidence"].null_count() == old.height
    latest = many.filter(pl.col("as_known_at") == many["as_known_at"].max())
    assert latest["timing_confidence"].null_count() == latest.height - len(_rows())


def test_ledger_show_prints_the_evidence(db: Path) -> None:
    with connect(db) as con:
        import_file(con, EVIDENCE)
    res = CliRunner().invoke(app, ["show", "amd-openai-2025-10-06", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "DealTimingEvidenced" in res.output and "press_release" in res.output
    assert "first_report_time_et" in res.output


@pytest.mark.parametrize(("column", "value", "message"), [
    ("evidence_kind", "rumour", "is not one of"),
    ("confidence", "certain", "is not one of"),
    ("first_public_time_et", "4pm", "not a time of day"),
    ("session", "intraday", "does not fit"),  # 07:00 is before the open
    ("first_report_date", "2025-10-07", "must be before the announcement"),
    ("evidence_url", "ftp://x", r"not an http\(s\) URL"),
    ("id", "no-such-deal-2025", "unknown deal"),
    ("announced_date", "2025-10-07", "differs from the ledger"),
])
def test_bad_rows_name_file_line_and_field_and_write_nothing(db: Path, tmp_path: Path, column: str, value: str,
                                                             message: str) -> None:
    rows = _rows()
    i = next(k for k, r in enumerate(rows) if r["id"] == "amd-openai-2025-10-06")
    rows[i][column] = value
    bad = tmp_path / "timing_evidence.csv"
    with bad.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    shutil.copy(DATA_DIR / "events" / "companies.csv", tmp_path / "companies.csv")
    with connect(db) as con:
        n = log.head_summary(con)[0]
        with pytest.raises(InputError, match=message) as exc:
            import_file(con, bad)
        assert log.head_summary(con)[0] == n
    assert exc.value.line == i + 2 and exc.value.field == column
