"""The ledger's write commands (add, amend, correct, retract): validate, then append one event batch.

Why a module of its own: the CLI (``carousel ledger ...``) parses arguments and prints; what a command
*means* (which checks run, how a retry is recognised, which event id it gets) belongs to the ledger, so
any other caller (a script, a test) records exactly what the CLI records. Each function takes an open
read-write connection; opening it (and refusing to create a database for a change) is the caller's job.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.errors import ConflictError, InputError
from ledger import api, log, project
from ledger.fields import parse_change, self_deal_problem, session_problem, ticker_owner_problem
from ledger.load import company_events, counting_reports, load_registry, parse_deals
from ledger.model import (
    CURRENT_VERSION,
    MUTABLE_FIELDS,
    NewEvent,
    StoredEvent,
    canonical_json,
    deal_stream,
    event_id_for,
)
from ledger.registry import registry_from_companies


@dataclass(frozen=True)
class Recorded:
    """What a change command did: ``written`` False means an identical event was already recorded (at
    ``position``, stream ``version``) and nothing was written."""

    event_type: str
    deal_id: str
    written: bool
    position: int
    version: int


@dataclass(frozen=True)
class Added:
    deals: int
    companies: int
    head_position: int


def parse_deal_file(file: Path) -> list[NewEvent]:
    """The company registrations and announcements of a deals file (validated; nothing opened)."""
    reg = load_registry(file.parent)
    deals = parse_deals(file, reg)
    # The companies come along, as with import: a deal must never name a company the ledger has not
    # registered (on a fresh database ``companies`` would stay empty). Already registered ones are skipped.
    return company_events(reg) + deals


def add(con: duckdb.DuckDBPyConnection, events: list[NewEvent]) -> Added:
    """Record new deal announcements (from :func:`parse_deal_file`); an existing deal is a ConflictError."""
    deals = [e for e in events if e.event_type == "DealAnnounced"]
    known = set(log.stored_payloads(con, [e.event_id for e in deals]))
    res = log.append(con, events, expected={e.stream_id: "no_stream" for e in deals})
    added = sum(e.event_id not in known for e in deals)
    return Added(added, res.appended - added, res.head_position)


def parse_changes(con: duckdb.DuckDBPyConnection, pairs: list[str]) -> dict[str, Any]:
    """``--set`` pairs, each validated exactly as import validates that field (:mod:`ledger.fields`)."""
    reg = registry_from_companies(api.companies(con).to_dicts())
    today = dt.date.today()
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"{pair!r} is not FIELD=VALUE", field="--set")
        if key not in MUTABLE_FIELDS:
            raise InputError(f"unknown or immutable field {key!r}; one of {', '.join(sorted(MUTABLE_FIELDS))}", field="--set")
        if key in changes:
            raise InputError(f"{key!r} is given twice", field="--set")
        changes[key] = parse_change(key, value, reg, today=today)
    if not changes:
        raise InputError("nothing to change: give at least one --set FIELD=VALUE", field="--set")
    # A disclosed amount has a kind and an undisclosed one has none: keep the pair consistent when both move.
    if ("amount_usd" in changes and "amount_kind" in changes
            and (changes["amount_usd"] is None) != (changes["amount_kind"] == "undisclosed")):
        raise InputError("amount_kind 'undisclosed' goes with an empty amount_usd, and only with it",
                         field="amount_kind")
    return changes


def date_option(value: str | None, option: str) -> str | None:
    """A YYYY-MM-DD option value as an ISO date string (None stays None)."""
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise InputError(f"{value!r} is not a date YYYY-MM-DD", field=option)
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise InputError(f"{value!r} is not a real calendar date", field=option) from None


def amend(con: duckdb.DuckDBPyConnection, deal_id: str, *, effective: str, changes: list[str], reason: str = "",
          expected_version: int | None = None, dry_run: bool = False) -> Recorded:
    """Record a business change of a deal with its effective date (valid time)."""
    eff = date_option(effective, "--effective")
    return record(con, deal_id, "DealAmended", lambda c: {"deal_id": deal_id, "effective_date": eff,
                                                          "changes": parse_changes(c, changes), "reason": reason},
                  expected_version, dry_run=dry_run)


def correct(con: duckdb.DuckDBPyConnection, deal_id: str, *, changes: list[str], reason: str = "",
            expected_version: int | None = None, dry_run: bool = False) -> Recorded:
    """Correct our record of a deal (it was wrong from the start)."""
    return record(con, deal_id, "DealCorrected",
                  lambda c: {"deal_id": deal_id, "changes": parse_changes(c, changes), "reason": reason},
                  expected_version, dry_run=dry_run)


def retract(con: duckdb.DuckDBPyConnection, deal_id: str, *, reason: str = "", effective: str | None = None,
            expected_version: int | None = None, dry_run: bool = False) -> Recorded:
    """Record that a deal announcement was retracted (from ``effective``, default always)."""
    eff = date_option(effective, "--effective")
    return record(con, deal_id, "DealRetracted", lambda c: {"deal_id": deal_id, "reason": reason, "effective_date": eff},
                  expected_version, dry_run=dry_run)


def record(con: duckdb.DuckDBPyConnection, deal_id: str, event_type: str,
           build: Callable[[duckdb.DuckDBPyConnection], dict[str, Any]], expected_version: int | None,
           *, dry_run: bool = False) -> Recorded:
    """Append one amend/correct/retract event, idempotently.

    The event id derives from the payload and the id of the event it follows (the stream's event at the
    expected version, or its latest), so:

    * an identical retry (same command, nothing recorded on the deal since) writes nothing and says where
      the event already is. Without ``expected_version`` a retry is recognised because the deal's latest
      event has the same type and content; with it, because the id is the same;
    * amending A, then B, then A again records three events: the third follows B, so it has a new id;
    * a different change at a version that has moved on is an optimistic-concurrency conflict.

    ``build(con)`` validates the arguments and returns the payload; it runs before anything is written.
    ``dry_run``: run every check (on a read-only connection) and report what would be recorded, writing
    nothing, so that bad input is refused before the database is opened read-write.
    """
    stream = deal_stream(deal_id)
    events = log.read(con, streams=[stream])
    if not events:
        raise InputError(f"unknown deal {deal_id!r}", field="deal_id")
    payload = build(con)
    content = canonical_json(payload)
    head = events[-1]
    if expected_version is None:
        if head.event_type == event_type and canonical_json(head.payload) == content:
            return Recorded(event_type, deal_id, False, head.position, head.stream_version)
        base = head
    else:
        found = [e for e in events if e.stream_version == expected_version]
        if not found:
            raise ConflictError(f"stream {stream} is at version {head.stream_version}, expected {expected_version}")
        base = found[0]
    eid = event_id_for(stream, event_type, f"{content}\x1fafter {base.event_id}")
    same = [e for e in events if e.event_id == eid]
    if same:
        return Recorded(event_type, deal_id, False, same[0].position, same[0].stream_version)
    retracted = [e for e in events if e.event_type == "DealRetracted"]
    if retracted:
        raise ConflictError(f"deal {deal_id!r} was retracted (position {retracted[0].position}); "
                            f"a retracted deal cannot be amended, corrected or retracted again")
    if base is head:  # (otherwise the append below refuses the stale version)
        new = StoredEvent(head.position + 1, eid, stream, head.stream_version + 1, event_type,
                          CURRENT_VERSION[event_type], payload, 0)
        _check_amount_pair(events, new)
        _check_payer_share(events, new)
        _check_session_time(events, new)
        _refuse_new_problem(events, new, ("payers", "payees"), self_deal_problem)
        _check_one_counting_report(con, events, new)
        owners = {t: c["company_id"] for c in api.companies(con).to_dicts() for t in c["tickers"] or []}
        _refuse_new_problem(events, new, ("tickers", "payers", "payees"),
                            lambda d: ticker_owner_problem(d, owners))
    if dry_run:  # every check passed; the caller re-runs it on a read-write connection to record it
        return Recorded(event_type, deal_id, True, head.position + 1, base.stream_version + 1)
    res = log.append(con, [NewEvent(eid, stream, event_type, payload)], expected={stream: base.stream_version})
    return Recorded(event_type, deal_id, True, res.head_position, base.stream_version + 1)


def _amount_pair_problem(deal: dict[str, Any]) -> str | None:
    """The deal's amount without a kind, or kind without an amount, described; None if consistent."""
    amount, kind = deal.get("amount_usd"), deal.get("amount_kind") or "undisclosed"
    if (amount is None) == (kind == "undisclosed"):
        return None
    return f"amount_usd {amount} with amount_kind {kind!r}" if amount is not None else f"no amount_usd with amount_kind {kind!r}"


def _check_amount_pair(events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change that leaves the deal with an amount but kind 'undisclosed', or a kind but no amount,
    on some valid date (import never produces either; :func:`parse_changes` catches it only when one command
    sets both fields). A pair that was already inconsistent before the change is not blamed on it."""
    changes = new.payload.get("changes", {})
    if not {"amount_usd", "amount_kind"} & set(changes):
        return
    found = project.new_problem(events, new, _amount_pair_problem)
    if found is not None:
        day, state = found
        when = "" if day == dt.date.min else f" from {day}"
        fld = "amount_kind" if "amount_kind" in changes else "amount_usd"
        raise InputError(f"the deal would have {state}{when}; an amount has a kind (exact, up_to, estimate) and only "
                         "an empty amount is 'undisclosed': set amount_usd and amount_kind together", field=fld)


def _check_payer_share(events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change after which the deal's payer share (``payer_amount_usd``) cannot stand on some valid
    date: above the amount, without an amount, zero, or on a multi-party deal. Checked whenever a field
    the rule reads changes, so amending the amount below an existing share is refused too."""
    _refuse_new_problem(events, new, ("payer_amount_usd", "amount_usd", "payers", "payees"),
                        project.payer_share_problem)


def _check_one_counting_report(con: duckdb.DuckDBPyConnection, events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change after which two reports of one contract both count toward flow totals with amounts
    (the contract's money would be added twice: $30bn of Nvidia -> OpenAI became $130bn when the LOI of
    the same contract was set to count). The other reports are taken as the projection holds them now;
    the changed deal on each of its valid dates. A contract already counted twice is not blamed on the
    change."""
    deal_id = new.payload["deal_id"]
    others: dict[str, list[tuple[str, Any]]] = {}

    def problem(deal: dict[str, Any]) -> str | None:
        if not deal.get("counts_toward_total") or deal.get("amount_usd") in (None, "") or deal.get("status") != "active":
            return None
        cid = str(deal.get("contract_id"))
        if cid not in others:  # one query per contract the deal is in on some date (usually one)
            others[cid] = [(d, a) for d, a in counting_reports(con, [cid]).get(cid, []) if d != deal_id]
        found = others[cid]
        if not found:
            return None
        other, amount = found[0]
        return (f"{deal_id} (US$ {deal['amount_usd']}) and {other} (US$ {amount}) would both count toward flow "
                f"totals in contract {deal.get('contract_id')!r}; only one report of a contract counts: set "
                f"counts_toward_total=false on one of them, or give {deal_id} its own contract_id")

    _refuse_new_problem(events, new, ("counts_toward_total", "contract_id", "amount_usd"), problem)


def _check_session_time(events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change after which the session label contradicts the time of day (what import refuses)."""
    _refuse_new_problem(events, new, ("announced_time_et", "session", "announced_date"), session_problem)


def _refuse_new_problem(events: list[StoredEvent], new: StoredEvent, fields: tuple[str, ...],
                        check: Callable[[dict[str, Any]], str | None]) -> None:
    changes = new.payload.get("changes", {})
    if not set(fields) & set(changes):
        return
    found = project.new_problem(events, new, check)
    if found is not None:
        day, problem = found
        when = "" if day == dt.date.min else f" from {day}"
        raise InputError(f"after this change {problem}{when}", field=next(f for f in fields if f in changes))
