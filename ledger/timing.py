"""Timing evidence: the earliest public time found for a deal's announcement, recorded as events.

``data/events/timing_evidence.csv`` gives, per deal, the earliest public time found (US Eastern), the
session it implies, the kind of evidence (press release, 8-K, wire, leak report, blog, other), its URL, a
short quote, a second source, a confidence (never a guess: empty where nothing was found) and notes; the
three ``first_report_*`` columns give the first credible report where the notes place it on an *earlier
date* than the announcement (a leak).

Why events of their own (``DealTimingEvidenced``) and not corrections of ``announced_*``: the official
announcement stays what the deal row says; the evidence sits beside it (``ledger.api.deals`` columns
``timing_*`` and ``first_report_*``), visible in ``ledger show`` and as-of queries. The study's official
basis reads its time of day only where the row has none; other bases read more (analysis.date_basis). The event id derives from the
content, so re-importing the same file appends nothing and a revised row is a new event that supersedes
the earlier evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from core.errors import InputError
from ledger import api, log
from ledger.fields import (
    _ID_RE,
    ErrFn,
    _check_text,
    _parse_date,
    _session,
    _time,
    _url,
    session_time_problem,
)
from ledger.files import csv_rows
from ledger.model import NewEvent, canonical_json, deal_stream, event_id_for

TIMING_COLUMNS = ("id", "announced_date", "first_public_time_et", "session", "evidence_kind", "evidence_url",
                  "evidence_quote", "second_source_url", "confidence", "notes")
FIRST_REPORT_COLUMNS = ("first_report_date", "first_report_time_et", "first_report_session")
EVIDENCE_KINDS = ("press_release", "8-K", "wire", "leak_report", "blog", "other")
TIMING_CONFIDENCE = ("high", "medium", "low")


def is_timing_file(path: Path) -> bool:
    """Whether a CSV file's header is the timing-evidence one (read before anything else)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return "first_public_time_et" in header.split(",")


def parse_timing(path: Path, *, today: dt.date | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, payload) per row, validated field by field (file/line/field errors); pure apart from reading."""
    today = today or dt.date.today()
    seen: dict[str, int] = {}
    for line, row in csv_rows(path, TIMING_COLUMNS, allowed=FIRST_REPORT_COLUMNS):
        def err(msg: str, fld: str, line: int = line) -> InputError:
            return InputError(msg, file=path, line=line, field=fld)

        payload = timing_payload(row, err, today)
        did = row["id"]
        if did in seen:
            raise err(f"duplicate deal id {did!r} (first on line {seen[did]})", "id")
        seen[did] = line
        yield line, payload


def timing_payload(row: dict[str, str], err: ErrFn, today: dt.date) -> dict[str, Any]:
    for k, v in row.items():
        _check_text(v, err, k)
    did = row["id"]
    if not _ID_RE.match(did):
        raise err(f"{did!r} is not a deal id (lowercase letters, digits, '-', '.')", "id")
    ann = _parse_date(row["announced_date"], err, "announced_date", today)
    time_et = _time(row["first_public_time_et"], err, "first_public_time_et")
    session = _session(row["session"] or "unknown", err, "session")
    problem = session_time_problem(session, time_et, ann)
    if problem:
        raise err(problem, "session")
    kind = row["evidence_kind"]
    if kind not in EVIDENCE_KINDS:
        raise err(f"{kind!r} is not one of {', '.join(EVIDENCE_KINDS)}", "evidence_kind")
    url = _url(row["evidence_url"], err, "evidence_url")
    second = _url(row["second_source_url"], err, "second_source_url") if row["second_source_url"] else None
    conf = row["confidence"]
    if conf not in TIMING_CONFIDENCE:
        raise err(f"{conf!r} is not one of {', '.join(TIMING_CONFIDENCE)}", "confidence")
    fr_date = _parse_date(row.get("first_report_date", ""), err, "first_report_date", today)
    fr_time = _time(row.get("first_report_time_et", ""), err, "first_report_time_et")
    fr_session_text = row.get("first_report_session", "")
    if fr_date is None and (fr_time or fr_session_text):
        raise err("a first-report time or session needs its first_report_date", "first_report_date")
    if fr_date is not None:
        if ann is None or fr_date >= ann:
            raise err(f"first_report_date {fr_date} must be before the announcement ({ann or 'no date'}); "
                      "leave it empty when the first report is the announcement", "first_report_date")
        fr_session = _session(fr_session_text or "unknown", err, "first_report_session")
        problem = session_time_problem(fr_session, fr_time, fr_date)
        if problem:
            raise err(problem, "first_report_session")
    return {
        "deal_id": did,
        "announced_date": ann.isoformat() if ann else None,
        "first_public_time_et": time_et,
        "session": session,
        "evidence_kind": kind,
        "evidence_url": url,
        "evidence_quote": row["evidence_quote"] or None,
        "second_source_url": second,
        "confidence": conf,
        "notes": row["notes"] or None,
        # The first credible report: an earlier leak where the file gives one, else the evidence itself.
        "first_report_date": fr_date.isoformat() if fr_date else (ann.isoformat() if ann else None),
        "first_report_time_et": fr_time if fr_date else time_et,
        "first_report_session": fr_session if fr_date else session,
    }


def timing_events(con: duckdb.DuckDBPyConnection, path: Path, rows: list[tuple[int, dict[str, Any]]]) -> list[NewEvent]:
    """The DealTimingEvidenced events of validated ``rows``; each deal must be in the ledger with the
    announced date the file states (an InputError naming file, line and field otherwise)."""
    deals = {r["deal_id"]: r for r in api.deals(con).select("deal_id", "announced_date").to_dicts()}
    events = []
    for line, payload in rows:
        did = payload["deal_id"]
        if did not in deals:
            raise InputError(f"unknown deal {did!r} (import its announcement first)", file=path, line=line, field="id")
        have = deals[did]["announced_date"]
        if (have.isoformat() if have else None) != payload["announced_date"]:
            raise InputError(f"announced_date {payload['announced_date'] or '(empty)'} differs from the ledger's "
                             f"{have or '(none)'} for {did}", file=path, line=line, field="announced_date")
        stream = deal_stream(did)
        events.append(NewEvent(event_id_for(stream, "DealTimingEvidenced", canonical_json(payload)), stream,
                               "DealTimingEvidenced", payload))
    return events


def import_timing(con: duckdb.DuckDBPyConnection, path: Path, *, today: dt.date | None = None,
                  dry_run: bool = False) -> tuple[int, int, int]:
    """Validate the whole file, then append its evidence events in one batch: (rows, appended, skipped);
    ``dry_run`` counts what would be appended without writing."""
    rows = list(parse_timing(path, today=today))
    if not rows:
        raise InputError("no rows in file", file=path)
    events = timing_events(con, path, rows)
    if dry_run:
        new = len(events) - len(log.already_stored(con, events))
        return len(rows), new, len(events) - new
    res = log.append(con, events)
    return len(rows), res.appended, res.skipped
