"""``carousel ledger ...``: import, record, inspect and verify the deal ledger.

Write commands open the database read-write (one writer at a time); read commands open it read-only so
that any number of them can run beside each other.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from carousel.cli.options import DbOption
from core.errors import ConflictError, InputError
from core.paths import resolve_db

# duckdb, polars and pyarrow (through carousel.db and ledger.api/log/load) are imported inside the
# commands: `carousel --help` must not pay for them (carousel/cli/__init__.py). ledger.model is light.
from ledger.model import (
    CURRENT_VERSION,
    MUTABLE_FIELDS,
    NewEvent,
    StoredEvent,
    canonical_json,
    deal_stream,
    event_id_for,
)

if TYPE_CHECKING:
    import duckdb

app = typer.Typer(no_args_is_help=True, add_completion=False)


class _Out:
    """stdout console, sized when printing: a pipe or file gets a wide console so that tables (deal ids
    especially) are never cut to fit an assumed 80 columns; a terminal keeps its own width."""

    def print(self, *objects: Any) -> None:
        width = None if sys.stdout.isatty() else 200
        Console(highlight=False, soft_wrap=True, width=width).print(*objects)


_out = _Out()


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="deals CSV or YAML file")],
    record_changes: Annotated[bool, typer.Option(
        "--record-changes", help="A row that changed since it was imported is recorded as a DealCorrected "
        "(default: refused, exit 5).")] = False,
    db: DbOption = None,
) -> None:
    """Import a deals file: atomic (one bad row imports nothing) and idempotent (re-import adds 0)."""
    from carousel.db import connect
    from ledger.load import import_file

    with connect(db) as con:
        rep = import_file(con, file, record_changes=record_changes)
    _out.print(f"imported {rep.file}: {rep.rows} deals, {rep.appended} events appended, "
               f"{rep.skipped} already present")
    if rep.corrected:
        _out.print(f"recorded DealCorrected for {len(rep.corrected)} changed row(s): {', '.join(rep.corrected)}")
    if rep.retracted_changed:
        _out.print(f"left {len(rep.retracted_changed)} retracted deal(s) unchanged although their rows changed: "
                   f"{', '.join(rep.retracted_changed)}")


@app.command("add")
def add_cmd(file: Annotated[Path, typer.Argument(help="CSV/YAML file with the new deal(s)")], db: DbOption = None) -> None:
    """Record new deal announcements (same format as import; existing deals are refused)."""
    from carousel.db import connect
    from ledger import log
    from ledger.load import company_events, load_registry, parse_deals

    reg = load_registry(file.parent)
    deals = parse_deals(file, reg)
    # The companies come along, as with import: a deal must never name a company the ledger has not
    # registered (on a fresh database ``companies`` would stay empty). Already registered ones are skipped.
    events = company_events(reg) + deals
    with connect(db) as con:
        known = {r[0] for r in con.execute(
            "SELECT event_id FROM ledger_log WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [[e.event_id for e in deals]]).fetchall()}
        res = log.append(con, events, expected={e.stream_id: "no_stream" for e in deals})
    added = sum(e.event_id not in known for e in deals)
    _out.print(f"added {added} deal(s), {res.appended - added} company registration(s); "
               f"head position {res.head_position}")


def _parse_changes(con: duckdb.DuckDBPyConnection, pairs: list[str]) -> dict[str, Any]:
    """``--set`` pairs, each validated exactly as import validates that field (``ledger.load.parse_change``)."""
    from ledger import api
    from ledger.load import parse_change, registry_from_companies

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


def _date_option(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise InputError(f"{value!r} is not a date YYYY-MM-DD", field=option)
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise InputError(f"{value!r} is not a real calendar date", field=option) from None


def _record(db: Path | None, deal_id: str, event_type: str, build: Any, expected_version: int | None) -> None:
    """Append one amend/correct/retract event, idempotently.

    The event id derives from the payload and the id of the event it follows (the stream's event at the
    expected version, or its latest), so:

    * an identical retry (same command, nothing recorded on the deal since) writes nothing and says where
      the event already is. Without ``--expected-version`` a retry is recognised because the deal's latest
      event has the same type and content; with it, because the id is the same;
    * amending A, then B, then A again records three events: the third follows B, so it has a new id;
    * a different change at a version that has moved on is an optimistic-concurrency conflict.

    ``build(con)`` validates the arguments and returns the payload; it runs before anything is written.
    """
    from carousel.db import connect
    from ledger import log

    stream = deal_stream(deal_id)
    if not resolve_db(db).exists():  # no deal to change; a read-write open would create an empty database
        raise InputError(f"unknown deal {deal_id!r} (database {resolve_db(db)} does not exist)", field="deal_id")
    with connect(db) as con:
        events = log.read(con, streams=[stream])
        if not events:
            raise InputError(f"unknown deal {deal_id!r}", field="deal_id")
        payload: dict[str, Any] = build(con)
        content = canonical_json(payload)
        head = events[-1]
        if expected_version is None:
            if head.event_type == event_type and canonical_json(head.payload) == content:
                _already(event_type, deal_id, head)
                return
            base = head
        else:
            found = [e for e in events if e.stream_version == expected_version]
            if not found:
                raise ConflictError(f"stream {stream} is at version {head.stream_version}, expected {expected_version}")
            base = found[0]
        eid = event_id_for(stream, event_type, f"{content}\x1fafter {base.event_id}")
        same = [e for e in events if e.event_id == eid]
        if same:
            _already(event_type, deal_id, same[0])
            return
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
        res = log.append(con, [NewEvent(eid, stream, event_type, payload)], expected={stream: base.stream_version})
    _out.print(f"{event_type} recorded for {deal_id} at position {res.head_position}")


def _amount_pair_problem(deal: dict[str, Any]) -> str | None:
    """The deal's amount without a kind, or kind without an amount, described; None if consistent."""
    amount, kind = deal.get("amount_usd"), deal.get("amount_kind") or "undisclosed"
    if (amount is None) == (kind == "undisclosed"):
        return None
    return f"amount_usd {amount} with amount_kind {kind!r}" if amount is not None else f"no amount_usd with amount_kind {kind!r}"


def _check_amount_pair(events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change that leaves the deal with an amount but kind 'undisclosed', or a kind but no amount,
    on some valid date (import never produces either; ``_parse_changes`` catches it only when one command
    sets both fields). A pair that was already inconsistent before the change is not blamed on it."""
    from ledger import project

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
    from ledger import project

    _refuse_new_problem(events, new, ("payer_amount_usd", "amount_usd", "payers", "payees"),
                        project.payer_share_problem)


def _check_session_time(events: list[StoredEvent], new: StoredEvent) -> None:
    """Refuse a change after which the session label contradicts the time of day (what import refuses)."""
    from ledger.load import session_problem

    _refuse_new_problem(events, new, ("announced_time_et", "session", "announced_date"), session_problem)


def _refuse_new_problem(events: list[StoredEvent], new: StoredEvent, fields: tuple[str, ...],
                        check: Callable[[dict[str, Any]], str | None]) -> None:
    from ledger import project

    changes = new.payload.get("changes", {})
    if not set(fields) & set(changes):
        return
    found = project.new_problem(events, new, check)
    if found is not None:
        day, problem = found
        when = "" if day == dt.date.min else f" from {day}"
        raise InputError(f"after this change {problem}{when}", field=next(f for f in fields if f in changes))


def _already(event_type: str, deal_id: str, ev: StoredEvent) -> None:
    _out.print(f"{event_type} for {deal_id} already recorded at position {ev.position} (version "
               f"{ev.stream_version}); nothing written")


_SetOpt = Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (repeatable); lists use ';'")]
_ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the ledger).")]
_VersionOpt = Annotated[int | None, typer.Option(help="Expected current version of the deal (optimistic lock).")]


_IDEMPOTENT = (
    " Retrying the identical command writes nothing (exit 0, 'already recorded at position N'). The event id"
    " derives from the content and the event it follows, so recording A, then B, then A again records three"
    " events. A retracted deal cannot be changed."
)


@app.command("amend", help="Record a business change of a deal (new tranche, revised amount) with its effective date."
             " Values are checked as import checks them." + _IDEMPOTENT)
def amend_cmd(deal_id: str, effective: Annotated[str, typer.Option(help="Effective date YYYY-MM-DD of the business change.")],
              set_: _SetOpt, reason: _ReasonOpt = "", expected_version: _VersionOpt = None, db: DbOption = None) -> None:
    eff = _date_option(effective, "--effective")
    _record(db, deal_id, "DealAmended", lambda con: {"deal_id": deal_id, "effective_date": eff,
                                                     "changes": _parse_changes(con, set_), "reason": reason},
            expected_version)


@app.command("correct", help="Correct our record of a deal (it was wrong from the start)."
             " Values are checked as import checks them." + _IDEMPOTENT)
def correct_cmd(deal_id: str, set_: _SetOpt, reason: _ReasonOpt = "", expected_version: _VersionOpt = None,
                db: DbOption = None) -> None:
    _record(db, deal_id, "DealCorrected",
            lambda con: {"deal_id": deal_id, "changes": _parse_changes(con, set_), "reason": reason}, expected_version)


@app.command("retract", help="Record that a deal announcement was retracted." + _IDEMPOTENT)
def retract_cmd(deal_id: str, reason: _ReasonOpt = "",
                effective: Annotated[str | None, typer.Option(help="Effective date YYYY-MM-DD (default: always).")] = None,
                expected_version: _VersionOpt = None, db: DbOption = None) -> None:
    eff = _date_option(effective, "--effective")
    _record(db, deal_id, "DealRetracted", lambda con: {"deal_id": deal_id, "reason": reason, "effective_date": eff},
            expected_version)


@app.command("show")
def show_cmd(deal_id: str, db: DbOption = None) -> None:
    """Show a deal's current state and its event history."""
    from carousel.db import connect
    from ledger import api

    with connect(db, read_only=True) as con:
        d = api.deals(con).filter(deal_id=deal_id)
        hist = api.history(con, deal_id)
    if d.height == 0:
        raise InputError(f"unknown deal {deal_id!r}", field="deal_id")
    row = d.row(0, named=True)
    t = Table(title=deal_id, show_header=False)
    for k, v in row.items():
        t.add_row(k, str(v))
    _out.print(t)
    for h in hist:
        _out.print(f"  v{h['version']} #{h['position']} {h['type']}")


@app.command("log")
def log_cmd(stream: Annotated[str | None, typer.Option(help="Only this stream (e.g. deal-<id>).")] = None,
            limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 50, db: DbOption = None) -> None:
    """Print the latest events of the log."""
    from carousel.db import connect
    from ledger import log

    with connect(db, read_only=True) as con:
        events = log.read(con, streams=[stream] if stream else None)
    t = Table("pos", "stream", "v", "type", "recorded_at")
    for e in events[-limit:]:
        t.add_row(str(e.position), e.stream_id, str(e.stream_version), e.event_type,
                  dt.datetime.fromtimestamp(e.recorded_at_us / 1e6, dt.UTC).isoformat())
    _out.print(t)


@app.command("verify")
def verify_cmd(anchor: Annotated[Path | None, typer.Option(help="Anchor JSON from `ledger anchor` to check too.")] = None,
               db: DbOption = None) -> None:
    """Recompute the hash chain; name the first broken position (exit 5)."""
    from carousel.db import connect
    from ledger import log

    doc = _read_anchor(anchor) if anchor else None
    with connect(db, read_only=True) as con:
        rep = log.verify(con)
        bad_anchor = log.check_anchor(con, doc) if doc is not None and rep.ok else None
    if not rep.ok:
        raise ConflictError(f"ledger verification FAILED at position {rep.broken_position}: {rep.reason}")
    if bad_anchor:
        raise ConflictError(f"ledger verification FAILED: {bad_anchor}")
    _out.print(f"ledger OK: {rep.events} events, head position {rep.head_position}, hash {rep.head_hash}")


def _read_anchor(path: Path) -> dict[str, Any]:
    """The anchor document, checked before the database is opened (a bad anchor is bad input, exit 2)."""
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a regular file", file=path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg})", file=path, line=exc.lineno) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object from `carousel ledger anchor`", file=path)
    pos, hsh = doc.get("position"), doc.get("hash")
    if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0:
        raise InputError("missing or not a non-negative integer", file=path, field="position")
    if not isinstance(hsh, str) or not re.fullmatch(r"[0-9a-f]{64}", hsh):
        raise InputError("missing or not a 64-character hex SHA-256", file=path, field="hash")
    return doc


@app.command("anchor")
def anchor_cmd(db: DbOption = None) -> None:
    """Print the chain head (position and hash) as JSON, to publish or keep."""
    from carousel.db import connect
    from ledger import log

    with connect(db, read_only=True) as con:
        print(json.dumps(log.anchor(con), sort_keys=True))


@app.command("asof")
def asof_cmd(known_at: Annotated[str | None, typer.Option(help="Transaction time, ISO 8601 with offset.")] = None,
             in_effect: Annotated[str | None, typer.Option(help="Valid date YYYY-MM-DD.")] = None,
             flows: Annotated[bool, typer.Option("--flows", help="Show flows instead of deals.")] = False,
             db: DbOption = None) -> None:
    """Deals (or flows) as known at a time and/or in effect on a date."""
    ts = None
    if known_at:
        try:
            ts = dt.datetime.fromisoformat(known_at)
        except ValueError:
            raise InputError(f"{known_at!r} is not an ISO 8601 timestamp", field="--known-at") from None
        if ts.tzinfo is None:
            raise InputError(f"{known_at!r} has no time zone; add an offset such as +00:00", field="--known-at")
    day = None
    if in_effect:
        try:
            day = dt.date.fromisoformat(in_effect)
        except ValueError:
            raise InputError(f"{in_effect!r} is not a date YYYY-MM-DD", field="--in-effect") from None
    from carousel.db import connect
    from ledger import api

    with connect(db, read_only=True) as con:
        frame = (api.flows if flows else api.deals)(con, as_known_at=ts, in_effect_on=day)
    cols = (["deal_id", "payer", "payee", "amount_usd", "counts_toward_total"] if flows
            else ["deal_id", "status", "announced_date", "amount_usd", "amount_kind", "version"])
    t = Table(*cols)
    for r in frame.select(cols).iter_rows():
        t.add_row(*("" if v is None else str(v) for v in r))
    _out.print(t)
    _out.print(f"{frame.height} rows")
