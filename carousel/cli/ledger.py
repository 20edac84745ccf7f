"""``carousel ledger ...``: import, record, inspect and verify the deal ledger.

Write commands open the database read-write (one writer at a time); read commands open it read-only so
that any number of them can run beside each other.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from carousel.cli.options import DbOption
from core.errors import ConflictError, DatabaseError, InputError
from core.paths import resolve_db

# duckdb, polars and pyarrow (through carousel.db and the ledger's modules) are imported inside the
# commands: `carousel --help` must not pay for them (carousel/cli/__init__.py).
if TYPE_CHECKING:
    import duckdb

    from ledger import commands
    from ledger.load import DealScan, ImportReport

app = typer.Typer(no_args_is_help=True, add_completion=False)


class _Out:
    """stdout console, sized when printing: a pipe or file gets a wide console so that tables (deal ids
    especially) are never cut to fit an assumed 80 columns; a terminal keeps its own width."""

    def print(self, *objects: Any) -> None:
        width = None if sys.stdout.isatty() else 200
        # markup=False: every ledger command prints user data (titles, ids, file names, quotes), which must
        # never be read as rich markup ("[/b] x" would vanish or crash the command).
        Console(highlight=False, markup=False, soft_wrap=True, width=width).print(*objects)


_out = _Out()


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="deals CSV or YAML file")],
    record_changes: Annotated[bool, typer.Option(
        "--record-changes", help="A row that changed since it was imported is recorded as a DealCorrected "
        "(default: refused, exit 5).")] = False,
    db: DbOption = None,
) -> None:
    """Import a deals file: atomic (one bad row imports nothing) and idempotent (re-import adds 0).

    The file is validated before the database is opened read-write, and an import that would add nothing
    (a re-import) never opens it read-write, so the database file is not touched."""
    import duckdb

    from carousel.db import connect
    from ledger.load import CHUNK_ROWS, import_file, validate_file

    scan = validate_file(file)  # streams the whole file; no database is open yet
    if scan is None and not resolve_db(db).exists():
        _refuse_timing_without_database(file, resolve_db(db))
    rep = None
    if resolve_db(db).exists():
        try:
            with connect(db, read_only=True) as con:
                # Stops at the first batch holding a new event: enough to know a read-write open is needed.
                dry = import_file(con, file, record_changes=record_changes, dry_run=True, scan=scan,
                                  first_new_only=True)
            rep = dry if dry.appended == 0 else None
        except (duckdb.Error, DatabaseError):
            rep = None  # an older or damaged database: the read-write path below says what is wrong
    if rep is None:
        with connect(db) as con:
            if scan is not None and scan.rows > CHUNK_ROWS:
                rep = _import_staged(con, resolve_db(db), file, record_changes=record_changes, scan=scan)
            else:
                rep = import_file(con, file, record_changes=record_changes, scan=scan)
    if rep.appended == 0:
        _out.print(f"nothing to import: {rep.file}: {rep.rows} deals, 0 events appended, {rep.skipped} already "
                   "present")
    else:
        _out.print(f"imported {rep.file}: {rep.rows} deals, {rep.appended} events appended, "
                   f"{rep.skipped} already present")
    if rep.corrected:
        _out.print(f"recorded DealCorrected for {len(rep.corrected)} changed row(s): {', '.join(rep.corrected)}")
    if rep.retracted_changed:
        _out.print(f"left {len(rep.retracted_changed)} retracted deal(s) unchanged although their rows changed: "
                   f"{', '.join(rep.retracted_changed)}")
    for deal_id, why in rep.kept:
        _out.print(f"timing row for {deal_id} not applied: {why}")


def _refuse_timing_without_database(file: Path, db: Path) -> None:
    """Timing evidence is of deals already in the ledger: with no database there is none, so the first row
    is refused as the import would refuse it, before a read-write open would create an empty database."""
    from ledger.timing import parse_timing

    for line, payload in parse_timing(file):
        raise InputError(f"unknown deal {payload['deal_id']!r} (import its announcement first; the database "
                         f"{db} does not exist yet)", file=file, line=line, field="id")


#: DuckDB memory of the staged import's connection: bounds its block cache and the log's indexes, which
#: spill to ``<copy>.tmp`` beyond it (a 1M-row import peaked above 500 MB RSS with 192MB and 10,000-row batches).
_STAGE_MEMORY = "128MB"
#: Deals per committed batch of a staged import: half the default, so a batch's Python objects (payloads,
#: rows, projection frames: ~5 KB a deal) stay small beside DuckDB's cache.
_STAGE_ROWS = 5_000


def _import_staged(con: duckdb.DuckDBPyConnection, db: Path, file: Path, *, record_changes: bool,
                   scan: DealScan | None, chunk_rows: int | None = None) -> ImportReport:
    """Import a file of more than one batch into a staged copy of the database, committed batch by batch
    (bounded memory), that replaces the database only when the whole import is in (all or none, also
    when killed: :func:`core.db.staged_copy`). ``con`` holds the database's lock throughout."""
    import duckdb

    from carousel.db import connect
    from core.db import is_disk_full, staged_copy
    from ledger.load import import_file

    with staged_copy(con, db) as tmp:
        stage = connect(tmp)
        try:
            stage.execute(f"SET memory_limit = '{_STAGE_MEMORY}'")
            rep = import_file(stage, file, record_changes=record_changes, scan=scan, commit_each_batch=True,
                              chunk_rows=chunk_rows or _STAGE_ROWS)
            stage.execute("CHECKPOINT")
        except duckdb.Error as exc:
            if is_disk_full(exc):
                raise DatabaseError(f"database {db} could not be written: the disk is full; nothing was "
                                    "changed") from None
            raise
        finally:
            stage.close()
    return rep


@app.command("add")
def add_cmd(file: Annotated[Path, typer.Argument(help="CSV/YAML file with the new deal(s)")], db: DbOption = None) -> None:
    """Record new deal announcements (same format as import; existing deals are refused)."""
    from carousel.db import connect
    from ledger import commands

    events = commands.parse_deal_file(file)  # validated before the database is opened
    with connect(db) as con:
        res = commands.add(con, events)
    _out.print(f"added {res.deals} deal(s), {res.companies} company registration(s); "
               f"head position {res.head_position}")


def _record(db: Path | None, deal_id: str,
            run: Callable[[duckdb.DuckDBPyConnection, bool], commands.Recorded]) -> None:
    """One amend/correct/retract: every check runs first on a read-only connection (bad input, or a retry
    already recorded, never opens the database read-write), then the change is recorded."""
    from carousel.db import connect

    if not resolve_db(db).exists():  # no deal to change; a read-write open would create an empty database
        raise InputError(f"unknown deal {deal_id!r} (database {resolve_db(db)} does not exist)", field="deal_id")
    with connect(db, read_only=True) as con:
        rec = run(con, True)
    if rec.written:
        with connect(db) as con:
            rec = run(con, False)
    if rec.written:
        _out.print(f"{rec.event_type} recorded for {deal_id} at position {rec.position}")
    else:
        _out.print(f"{rec.event_type} for {deal_id} already recorded at position {rec.position} (version "
                   f"{rec.version}); nothing written")


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
    from ledger import commands

    commands.date_option(effective, "--effective")  # checked before the database is opened
    _record(db, deal_id, lambda con, dry: commands.amend(con, deal_id, effective=effective, changes=set_, reason=reason,
                                                         expected_version=expected_version, dry_run=dry))


@app.command("correct", help="Correct our record of a deal (it was wrong from the start)."
             " Values are checked as import checks them." + _IDEMPOTENT)
def correct_cmd(deal_id: str, set_: _SetOpt, reason: _ReasonOpt = "", expected_version: _VersionOpt = None,
                db: DbOption = None) -> None:
    from ledger import commands

    _record(db, deal_id, lambda con, dry: commands.correct(con, deal_id, changes=set_, reason=reason,
                                                           expected_version=expected_version, dry_run=dry))


@app.command("retract", help="Record that a deal announcement was retracted." + _IDEMPOTENT)
def retract_cmd(deal_id: str, reason: _ReasonOpt = "",
                effective: Annotated[str | None, typer.Option(help="Effective date YYYY-MM-DD (default: always).")] = None,
                expected_version: _VersionOpt = None, db: DbOption = None) -> None:
    from ledger import commands

    commands.date_option(effective, "--effective")
    _record(db, deal_id, lambda con, dry: commands.retract(con, deal_id, reason=reason, effective=effective,
                                                           expected_version=expected_version, dry_run=dry))


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
    # User data is plain text, never rich markup: a title such as "[/b] x" is printed as written.
    t = Table(title=Text(deal_id), show_header=False)
    for k, v in row.items():
        t.add_row(k, Text(str(v)))
    _out.print(t)
    for h in hist:
        _out.print(Text(f"  v{h['version']} #{h['position']} {h['type']}"))
        if h["type"] == "DealTimingEvidenced":
            p = h["payload"]
            assert isinstance(p, dict)
            for key in ("evidence_kind", "confidence", "evidence_url", "evidence_quote", "second_source_url", "notes"):
                if p.get(key):
                    _out.print(Text(f"      {key}: {p[key]}"))


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
def verify_cmd(anchor: Annotated[Path | None, typer.Option(
        help="Anchor JSON from `ledger anchor` to check the ledger against too.")] = None,
        db: DbOption = None) -> None:
    """Recompute the hash chain; name the first broken position (exit 5). `carousel verify` checks
    everything else stored (prices, share counts, study) too."""
    from carousel import anchor as anchors
    from carousel.db import connect, ensure_schema
    from core.db import catalog_differences
    from ledger import log
    from ledger.schema import ensure_schema as ledger_schema

    doc = anchors.read(anchor) if anchor else None  # a bad anchor file: exit 2 before the database opens
    with connect(db, read_only=True) as con:
        rep = log.verify(con)
        bad_anchor = log.check_anchor(con, doc["ledger"]) if doc is not None and rep.ok else None
        # The ledger's views and tables as carousel defines them (a view replaced by hand, a dropped table)
        catalog = catalog_differences(con, ensure_schema, objects_of=ledger_schema)
    if catalog:
        bad_catalog = f"the ledger's catalog differs from carousel's: {'; '.join(catalog)}"
        bad_anchor = f"{bad_catalog}; {bad_anchor}" if bad_anchor else bad_catalog
    if not rep.ok:
        where = "" if rep.broken_position is None else f" at position {rep.broken_position}"
        also = f"; {bad_catalog}" if catalog else ""
        raise ConflictError(f"ledger verification FAILED{where}: {rep.reason}{also}")
    if bad_anchor:
        raise ConflictError(f"ledger verification FAILED: {bad_anchor}")
    _out.print(f"ledger OK: {rep.events} events, head position {rep.head_position}, hash {rep.head_hash}")


@app.command("repair")
def repair_cmd(db: DbOption = None) -> None:
    """Rebuild the ledger's tables from its log after they were dropped or edited outside carousel.

    A read-write open refuses a database whose ledger tables were dropped by hand (exit 5), so that the
    evidence stays for `carousel ledger verify`; this command is the explicit way back. It rebuilds only
    from an intact log: a log that fails its hash chain or its recorded head is refused (exit 5)."""
    from carousel.db import connect
    from ledger import log

    with connect(db, read_only=True) as con:
        problem = log.log_problem(con)
        before = log.verify(con) if problem is None else None
    if problem is not None:
        raise ConflictError(f"cannot repair the ledger: {problem}")
    assert before is not None
    if before.ok:
        _out.print(f"nothing to repair: ledger OK, {before.events} events, head position {before.head_position}")
        return
    _out.print(f"found: {before.reason}")
    with connect(db, repair=True) as con:  # recreates dropped ledger tables, rebuilding from the log
        after = log.verify(con)
        if not after.ok and after.check == "projection":
            log.rebuild_projections(con)  # no table was dropped: the schema setup had nothing to do
            after = log.verify(con)
    if not after.ok:
        raise ConflictError(f"ledger still FAILS verification after the repair: {after.reason}")
    _out.print(f"repaired: ledger tables rebuilt from the log; ledger OK, {after.events} events, head position "
               f"{after.head_position}, hash {after.head_hash}")


@app.command("anchor")
def anchor_cmd(out: Annotated[Path | None, typer.Option(
        "--out", help="Write the anchor to this file (outside the database) instead of printing it.")] = None,
        db: DbOption = None) -> None:
    """Print the heads of the ledger chain, the price and share-count chains and the study stamp as JSON,
    to publish or keep outside the database; check them later with `carousel verify --anchor FILE`."""
    from carousel import anchor as anchors

    if out is not None:
        anchors.check_out(out)  # bad input is refused before the database is opened
    from carousel.db import connect

    with connect(db, read_only=True) as con:
        doc = anchors.build(con)
    if out is None:
        print(anchors.dumps(doc))
        return
    anchors.write(doc, out)
    _out.print(f"anchor written to {out}: ledger position {doc['ledger']['position']}, price batch "
               f"{doc['prices']['batch']}, share batch {doc['shares']['batch']}, "
               + (f"study stamped {doc['study']['stamped_at']}" if doc["study"] else "no study stored"))


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
