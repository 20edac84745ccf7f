"""Timing evidence: the earliest public time found for a deal's announcement, recorded as events.

``data/events/timing_evidence.csv`` gives, per deal, the earliest public time found (US Eastern), the
session it implies, the kind of evidence (press release, 8-K, wire, leak report, blog, other), its URL, a
short quote, a second source, a confidence (never a guess: empty where nothing was found) and notes; the
three ``first_report_*`` columns give the first credible report where the notes place it on an *earlier
date* than the announcement (a leak).

Why events of their own (``DealTimingEvidenced``) and not corrections of ``announced_*``: the official
announcement stays what the deal row says; the evidence sits beside it (``ledger.api.deals`` columns
``timing_*`` and ``first_report_*``), visible in ``ledger show`` and as-of queries. The study's official
basis reads its time of day only where the row has none; other bases read more (analysis.date_basis). A row
equal to the deal's evidence in effect appends nothing, and a revised row is a new event that supersedes
the earlier evidence; each event records whose file it came from (``origin``), so the shipped file, which
``carousel run`` imports every time, never supersedes a user's own evidence (:func:`plan_timing`).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
from ledger.model import NewEvent, StoredEvent, canonical_json, deal_stream, event_id_for

TIMING_COLUMNS = ("id", "announced_date", "first_public_time_et", "session", "evidence_kind", "evidence_url",
                  "evidence_quote", "second_source_url", "confidence", "notes")
FIRST_REPORT_COLUMNS = ("first_report_date", "first_report_time_et", "first_report_session")
EVIDENCE_KINDS = ("press_release", "8-K", "wire", "leak_report", "blog", "other")
TIMING_CONFIDENCE = ("high", "medium", "low")


def is_timing_file(path: Path) -> bool:
    """Whether a CSV file's header is the timing-evidence one (read before anything else). Read with the
    csv module, as the rows are: a quoted header, or the column last before a "\\r\\n", is still the name."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "first_public_time_et" in {name.strip() for name in header}


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


#: The origin of the main job's import of the shipped file (``ledger.load`` uses the same word).
SHIPPED = "shipped"


@dataclass(frozen=True)
class TimingPlan:
    """What importing a timing file does: the events to append, the rows already in effect (counted as
    present), and the shipped rows left out because the user's own record of the deal stands
    (``(deal_id, why)``; only ever for ``origin='shipped'``)."""

    events: list[NewEvent]
    present: int
    kept: tuple[tuple[str, str], ...]


def _content(payload: Mapping[str, Any]) -> str:
    """The evidence a payload states, without whose file it came from: what rows are compared by and
    what a first event's id derives from (so a v1 event, which has no origin, keeps its id)."""
    return canonical_json({k: v for k, v in payload.items() if k != "origin"})


def plan_timing(con: duckdb.DuckDBPyConnection, path: Path, rows: list[tuple[int, dict[str, Any]]], *,
                origin: str = "import") -> TimingPlan:
    """Reconcile validated ``rows`` with each deal's log.

    A row equal to the deal's evidence in effect (its latest DealTimingEvidenced) is present, whatever the
    rest of the row's deal now says, so re-running an import never fails on what it already recorded. A
    row that differs is a new DealTimingEvidenced with ``origin`` in its payload; if the very same content
    was recorded earlier and superseded since, it is recorded again (its id then names the event it
    follows), so re-importing one's file restores it.

    Two rules keep the shipped file (``origin='shipped'``, the main job) from undoing a user's record:
    its row is left out when the deal's evidence in effect is not the shipped file's (a user's import, or
    a v1 event whose origin is unknown), and when the deal's announced_date differs from the row only
    because a correction or amendment not from the shipped file changed it. Both are listed in
    :attr:`TimingPlan.kept`. Otherwise a deal missing from the ledger, or an announced_date other than the
    ledger's, is an InputError naming the file, the line and the field.
    """
    deals = {r["deal_id"]: r["announced_date"]
             for r in api.deals(con).select("deal_id", "announced_date").to_dicts()}
    for line, payload in rows:
        if payload["deal_id"] not in deals:
            raise InputError(f"unknown deal {payload['deal_id']!r} (import its announcement first)", file=path,
                             line=line, field="id")
    streams: dict[str, list[StoredEvent]] = {}
    for ev in log.read(con, streams=[deal_stream(p["deal_id"]) for _line, p in rows]):
        streams.setdefault(ev.stream_id, []).append(ev)
    first_ids = {p["deal_id"]: event_id_for(deal_stream(p["deal_id"]), "DealTimingEvidenced", _content(p))
                 for _line, p in rows}
    stored = log.stored_payloads(con, first_ids.values())
    events: list[NewEvent] = []
    kept: list[tuple[str, str]] = []
    present = 0
    for line, payload in rows:
        did = payload["deal_id"]
        stream = deal_stream(did)
        history = streams.get(stream, [])
        evidence = [ev for ev in history if ev.event_type == "DealTimingEvidenced"]
        latest = evidence[-1] if evidence else None
        if latest is not None and _content(latest.payload) == _content(payload):
            present += 1
            continue
        if origin == SHIPPED and latest is not None and latest.payload.get("origin") != SHIPPED:
            whose = "your import" if latest.payload.get("origin") else "an import of unknown origin"
            kept.append((did, f"its timing evidence from {whose} (log position {latest.position}) stands"))
            continue
        have = deals[did]
        have_text = have.isoformat() if have else None
        if have_text != payload["announced_date"]:
            if origin == SHIPPED and _shipped_date(history) == payload["announced_date"]:
                kept.append((did, f"its announced_date was changed to {have_text or '(none)'} after the shipped "
                                  f"{payload['announced_date']}; the shipped timing row is for that date"))
                continue
            raise InputError(f"announced_date {payload['announced_date'] or '(empty)'} differs from the ledger's "
                             f"{have or '(none)'} for {did}", file=path, line=line, field="announced_date")
        eid = first_ids[did]
        if eid in stored:  # recorded before and superseded since: record it again, after the evidence in effect
            assert latest is not None  # (the stored one is evidence of this stream)
            eid = event_id_for(stream, "DealTimingEvidenced", f"{_content(payload)}\x1fafter {latest.event_id}")
        events.append(NewEvent(eid, stream, "DealTimingEvidenced", {**payload, "origin": origin}))
    return TimingPlan(events, present, tuple(kept))


def _shipped_date(history: list[StoredEvent]) -> str | None:
    """The deal's announced_date as the shipped deals file gave it: its announcement with the shipped
    file's recorded corrections (``origin: shipped``) applied, hand changes left out."""
    date = history[0].payload.get("announced_date") if history else None
    for ev in history[1:]:
        if ev.event_type == "DealCorrected" and ev.payload.get("origin") == SHIPPED:
            date = ev.payload["changes"].get("announced_date", date)
    return str(date) if date is not None else None


def import_timing(con: duckdb.DuckDBPyConnection, path: Path, *, today: dt.date | None = None,
                  dry_run: bool = False, origin: str = "import") -> tuple[int, TimingPlan, int]:
    """Validate the whole file, then append its new evidence events in one batch: (rows, plan, appended)
    (:func:`plan_timing`); ``dry_run`` plans without writing (appended = the plan's events)."""
    rows = list(parse_timing(path, today=today))
    if not rows:
        raise InputError("no rows in file", file=path)
    plan = plan_timing(con, path, rows, origin=origin)
    if dry_run or not plan.events:
        return len(rows), plan, len(plan.events)
    res = log.append(con, plan.events)
    return len(rows), plan, res.appended
