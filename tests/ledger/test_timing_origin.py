"""Timing evidence and whose file it came from (review s15, ledger findings 2, 6, 8).

The shipped ``timing_evidence.csv`` is imported by every ``carousel run``; it must never supersede a
user's own evidence of a deal (origin rule), never stop the run because the user changed a deal's
announced_date, and a timing file is recognised however its valid CSV header is written.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import duckdb
import pytest
from carousel_runs import carousel_here
from rich.console import Console

from carousel.db import connect
from carousel.mainjob import RunSummary, import_ledger, print_summary
from core.paths import DATA_DIR
from ledger import api, commands, log
from ledger.load import import_file
from ledger.model import NewEvent, canonical_json, deal_stream, event_id_for
from ledger.timing import parse_timing

REPO = Path(__file__).resolve().parents[2]
EVIDENCE = DATA_DIR / "events" / "timing_evidence.csv"
STARGATE = "stargate-2025-01-21"
MSFT = "msft-openai-2019-07-22"


def _rows() -> list[dict[str, str]]:
    with EVIDENCE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]], **kw: object) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), **kw)  # type: ignore[arg-type]
        w.writeheader()
        w.writerows(rows)
    return path


def _line_of(deal_id: str) -> int:
    return 2 + next(i for i, r in enumerate(_rows()) if r["id"] == deal_id)


@pytest.fixture
def db(ledger_db: Path) -> Path:
    """A private copy of the shipped deals' ledger (conftest's ``ledger_db``, imported once per run)."""
    return ledger_db


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``carousel *args --db db`` through ``carousel.cli.main`` in this process (exit code and messages as
    the process gives them, :mod:`carousel_runs`)."""
    return carousel_here(*args, "--db", db, cwd=REPO)


def _run_import_step(db: Path) -> RunSummary:
    """What ``carousel run`` does to the ledger (its import step), on ``db``."""
    summary = RunSummary(db=db, out=db.parent / "out")
    with connect(db) as con:
        import_ledger(None, con, summary)  # type: ignore[arg-type]  # the step reads nothing of the job
    return summary


def _timing(db: Path, deal_id: str) -> dict[str, object]:
    with connect(db, read_only=True) as con:
        return api.deals(con).filter(deal_id=deal_id).to_dicts()[0]


def _origins(db: Path) -> list[tuple[str, str | None]]:
    with duckdb.connect(str(db), read_only=True) as c:
        rows = c.execute("SELECT stream_id, payload FROM ledger_log WHERE event_type = 'DealTimingEvidenced' "
                         "ORDER BY position").fetchall()
    return [(s, json.loads(p).get("origin")) for s, p in rows]


def test_the_run_never_supersedes_a_users_own_evidence(db: Path, tmp_path: Path) -> None:
    rows = _rows()
    shipped = next(r for r in rows if r["id"] == STARGATE)
    assert shipped["confidence"] == "low"  # what the run used to put back
    mine = _write(tmp_path / "my_timing.csv", [{**shipped, "confidence": "high", "notes": "own check"}])
    first = _cli(db, "ledger", "import", str(mine))
    assert first.returncode == 0, first.stderr
    summary = _run_import_step(db)
    assert _timing(db, STARGATE)["timing_confidence"] == "high"
    assert summary.events_appended == len(rows) - 1  # every other shipped row is applied
    assert [d for d, _why in summary.timing_kept] == [STARGATE]
    origins = _origins(db)
    assert origins[0] == (deal_stream(STARGATE), "import")
    assert [o for _s, o in origins[1:]] == ["shipped"] * (len(rows) - 1)
    console = Console(record=True, width=200)
    print_summary(summary, console)
    assert f"shipped timing row not applied: {STARGATE}" in console.export_text()
    again = _cli(db, "ledger", "import", str(mine))  # and a second run changes nothing
    assert again.returncode == 0 and "0 events appended, 1 already present" in again.stdout
    assert _run_import_step(db).events_appended == 0
    assert _timing(db, STARGATE)["timing_confidence"] == "high"


def test_reimporting_superseded_evidence_records_it_again(db: Path, tmp_path: Path) -> None:
    """A log that already lost the user's row (the shipped file imported after it) gets it back."""
    shipped = next(r for r in _rows() if r["id"] == STARGATE)
    mine = _write(tmp_path / "my_timing.csv", [{**shipped, "confidence": "high"}])
    with connect(db) as con:
        import_file(con, mine)
        import_file(con, EVIDENCE)  # as the run did before origins were recorded
        assert api.deals(con).filter(deal_id=STARGATE)["timing_confidence"].item() == "low"
        back = import_file(con, mine)
        twice = import_file(con, mine)
        assert log.verify(con).ok
        assert api.deals(con).filter(deal_id=STARGATE)["timing_confidence"].item() == "high"
    assert (back.appended, twice.appended, twice.skipped) == (1, 0, 1)


def test_v1_evidence_keeps_its_id_hash_and_is_never_superseded_by_the_shipped_file(db: Path) -> None:
    """A log written before origins (schema v1) verifies, reads with origin None, the shipped rows it holds
    are recognised (nothing appended), and a deal whose v1 evidence differs keeps it."""
    rows = list(parse_timing(EVIDENCE))
    events = []
    for _line, p in rows:
        if p["deal_id"] == STARGATE:
            p = {**p, "confidence": "high"}
        stream = deal_stream(p["deal_id"])
        events.append(NewEvent(event_id_for(stream, "DealTimingEvidenced", canonical_json(p)), stream,
                               "DealTimingEvidenced", p, schema_version=1))
    with connect(db) as con:
        log.append(con, events)
        stored = con.execute("SELECT DISTINCT schema_version FROM ledger_log "
                             "WHERE event_type = 'DealTimingEvidenced'").fetchall()
        assert stored == [(1,)]
        read = [e for e in log.read(con) if e.event_type == "DealTimingEvidenced"]
        assert {e.payload["origin"] for e in read} == {None} and len(read) == len(rows)
        assert log.verify(con).ok
    summary = _run_import_step(db)
    assert summary.events_appended == 0
    assert summary.timing_kept == ((STARGATE, "its timing evidence from an import of unknown origin "
                                    f"(log position {read[[e.payload['deal_id'] for e in read].index(STARGATE)].position}) "
                                    "stands"),)
    assert _timing(db, STARGATE)["timing_confidence"] == "high"


@pytest.mark.parametrize("how", ["correct", "amend"])
def test_a_users_date_change_never_stops_the_run(db: Path, how: str) -> None:
    with connect(db) as con:
        if how == "correct":
            commands.correct(con, MSFT, changes=["announced_date=2019-07-23"], reason="dated the 23rd")
        else:
            commands.amend(con, MSFT, effective="2019-07-23", changes=["announced_date=2019-07-23"], reason="moved")
    summary = _run_import_step(db)  # raised InputError (exit 2) on the shipped file before
    assert summary.timing_kept == ((MSFT, "its announced_date was changed to 2019-07-23 after the shipped "
                                          "2019-07-22; the shipped timing row is for that date"),)
    assert summary.events_appended == len(_rows()) - 1
    assert _timing(db, MSFT)["timing_confidence"] is None
    assert _run_import_step(db).events_appended == 0
    # A user's own import of that row still gets the clear error, naming the file, line and field.
    res = _cli(db, "ledger", "import", str(EVIDENCE))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (f"{EVIDENCE}:{_line_of(MSFT)}, field 'announced_date': announced_date 2019-07-22 differs from the "
            f"ledger's 2019-07-23 for {MSFT}") in res.stderr


def test_rows_already_recorded_are_present_before_the_date_check(db: Path) -> None:
    """Evidence recorded before a hand date change is simply present on the next import (no error)."""
    with connect(db) as con:
        import_file(con, EVIDENCE)
        commands.correct(con, MSFT, changes=["announced_date=2019-07-23"], reason="dated the 23rd")
        rep = import_file(con, EVIDENCE)
    assert (rep.appended, rep.skipped, rep.kept) == (0, len(_rows()), ())
    assert _run_import_step(db).events_appended == 0


def _quoted(path: Path) -> Path:
    with EVIDENCE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    return path


def _time_last_crlf(path: Path) -> Path:
    rows = _rows()
    names = [c for c in rows[0] if c != "first_public_time_et"] + ["first_public_time_et"]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize("variant", [_quoted, _time_last_crlf])
def test_a_timing_file_is_recognised_by_its_csv_header(db: Path, tmp_path: Path, variant: object) -> None:
    path = variant(tmp_path / "timing.csv")  # type: ignore[operator]
    res = _cli(db, "ledger", "import", str(path))
    assert res.returncode == 0, res.stderr  # was exit 2: "missing column(s): announced_time_et, payer, ..."
    n = len(_rows())
    assert f"{n} deals, {n} events appended, 0 already present" in res.stdout
    same = _cli(db, "ledger", "import", str(EVIDENCE))  # the same evidence as the plain file
    assert same.returncode == 0 and f"0 events appended, {n} already present" in same.stdout


def test_timing_import_into_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    res = _cli(db, "ledger", "import", str(EVIDENCE))
    first = _rows()[0]["id"]
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{EVIDENCE}:2, field 'id': unknown deal {first!r}" in res.stderr
    assert not db.exists()
