"""``carousel ledger ...``: import, record, inspect and verify the deal ledger.

Write commands open the database read-write (one writer at a time); read commands open it read-only so
that any number of them can run beside each other.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from carousel.db import DbOption, connect
from carousel.errors import ConflictError, InputError
from ledger import api, log
from ledger.load import import_file, load_registry, parse_deals
from ledger.model import MUTABLE_FIELDS, NewEvent, deal_stream, event_id_for

app = typer.Typer(no_args_is_help=True, add_completion=False)
_out = Console(highlight=False, soft_wrap=True)


@app.command("import")
def import_cmd(file: Annotated[Path, typer.Argument(help="deals CSV or YAML file")], db: DbOption = None) -> None:
    """Import a deals file: atomic (one bad row imports nothing) and idempotent (re-import adds 0)."""
    with connect(db) as con:
        rep = import_file(con, file)
    _out.print(f"imported {rep.file}: {rep.rows} deals, {rep.appended} events appended, "
               f"{rep.skipped} already present")


@app.command("add")
def add_cmd(file: Annotated[Path, typer.Argument(help="CSV/YAML file with the new deal(s)")], db: DbOption = None) -> None:
    """Record new deal announcements (same format as import; existing deals are refused)."""
    reg = load_registry(file.parent)
    events = parse_deals(file, reg)
    with connect(db) as con:
        res = log.append(con, events, expected={e.stream_id: "no_stream" for e in events})
    _out.print(f"added {res.appended} deal(s); head position {res.head_position}")


def _parse_changes(pairs: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise InputError(f"{pair!r} is not FIELD=VALUE", field="--set")
        if key not in MUTABLE_FIELDS:
            raise InputError(f"unknown or immutable field {key!r}; one of {', '.join(sorted(MUTABLE_FIELDS))}", field="--set")
        if key in ("payers", "payees", "tickers"):
            changes[key] = [v.strip() for v in value.split(";") if v.strip()]
        elif key == "counts_toward_total":
            if value.lower() not in ("true", "false"):
                raise InputError("must be true or false", field="counts_toward_total")
            changes[key] = value.lower() == "true"
        elif key == "amount_usd":
            try:
                amt = Decimal(value)
            except InvalidOperation:
                raise InputError(f"{value!r} is not a number of US dollars", field="amount_usd") from None
            if amt < 0:
                raise InputError("must not be negative", field="amount_usd")
            changes[key] = format(amt.quantize(Decimal("0.01")), "f")
        elif key == "announced_date":
            try:
                changes[key] = dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise InputError(f"{value!r} is not a date YYYY-MM-DD", field="announced_date") from None
        else:
            changes[key] = value or None
    if not changes:
        raise InputError("nothing to change: give at least one --set FIELD=VALUE", field="--set")
    return changes


def _record(db: Path | None, deal_id: str, event_type: str, payload: dict[str, Any], expected_version: int | None) -> None:
    stream = deal_stream(deal_id)
    with connect(db) as con:
        current = con.execute("SELECT max(stream_version) FROM ledger_log WHERE stream_id = ?", [stream]).fetchall()[0][0]
        if current is None:
            raise InputError(f"unknown deal {deal_id!r}", field="deal_id")
        version = int(current) if expected_version is None else expected_version
        discriminator = json.dumps(payload, sort_keys=True) + f"@{version}"
        ev = NewEvent(event_id_for(stream, event_type, discriminator), stream, event_type, payload)
        res = log.append(con, [ev], expected={stream: version})
    _out.print(f"{event_type} recorded for {deal_id} at position {res.head_position}")


_SetOpt = Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (repeatable); lists use ';'")]
_ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the ledger).")]
_VersionOpt = Annotated[int | None, typer.Option(help="Expected current version of the deal (optimistic lock).")]


@app.command("amend")
def amend_cmd(deal_id: str, effective: Annotated[str, typer.Option(help="Effective date YYYY-MM-DD of the business change.")],
              set_: _SetOpt, reason: _ReasonOpt = "", expected_version: _VersionOpt = None, db: DbOption = None) -> None:
    """Record a business change of a deal (new tranche, revised amount) with its effective date."""
    try:
        eff = dt.date.fromisoformat(effective)
    except ValueError:
        raise InputError(f"{effective!r} is not a date YYYY-MM-DD", field="--effective") from None
    _record(db, deal_id, "DealAmended", {"deal_id": deal_id, "effective_date": eff.isoformat(),
                                          "changes": _parse_changes(set_), "reason": reason}, expected_version)


@app.command("correct")
def correct_cmd(deal_id: str, set_: _SetOpt, reason: _ReasonOpt = "", expected_version: _VersionOpt = None,
                db: DbOption = None) -> None:
    """Correct our record of a deal (it was wrong from the start)."""
    _record(db, deal_id, "DealCorrected", {"deal_id": deal_id, "changes": _parse_changes(set_), "reason": reason},
            expected_version)


@app.command("retract")
def retract_cmd(deal_id: str, reason: _ReasonOpt = "", effective: Annotated[str | None, typer.Option()] = None,
                expected_version: _VersionOpt = None, db: DbOption = None) -> None:
    """Record that a deal announcement was retracted."""
    payload: dict[str, Any] = {"deal_id": deal_id, "reason": reason,
                               "effective_date": dt.date.fromisoformat(effective).isoformat() if effective else None}
    _record(db, deal_id, "DealRetracted", payload, expected_version)


@app.command("show")
def show_cmd(deal_id: str, db: DbOption = None) -> None:
    """Show a deal's current state and its event history."""
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
    with connect(db, read_only=True) as con:
        rep = log.verify(con)
        bad_anchor = log.check_anchor(con, json.loads(anchor.read_text())) if anchor and rep.ok else None
    if not rep.ok:
        raise ConflictError(f"ledger verification FAILED at position {rep.broken_position}: {rep.reason}")
    if bad_anchor:
        raise ConflictError(f"ledger verification FAILED: {bad_anchor}")
    _out.print(f"ledger OK: {rep.events} events, head position {rep.head_position}, hash {rep.head_hash}")


@app.command("anchor")
def anchor_cmd(db: DbOption = None) -> None:
    """Print the chain head (position and hash) as JSON, to publish or keep."""
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
    with connect(db, read_only=True) as con:
        frame = (api.flows if flows else api.deals)(con, as_known_at=ts, in_effect_on=day)
    cols = (["deal_id", "payer", "payee", "amount_usd", "counts_toward_total"] if flows
            else ["deal_id", "status", "announced_date", "amount_usd", "amount_kind", "version"])
    t = Table(*cols)
    for r in frame.select(cols).iter_rows():
        t.add_row(*("" if v is None else str(v) for v in r))
    _out.print(t)
    _out.print(f"{frame.height} rows")
