"""Import deal files (CSV in the ``deals.csv`` format, or YAML with the same fields) into the ledger.

The whole file is parsed and validated before anything is written, then appended in one transaction:
one bad row means nothing is imported, and the error names the file, the line and the field. Event ids
are derived from the content's identity (deal id + event type), so importing the same file twice
appends nothing, and importing a *changed* row for an existing deal is a conflict (record a
correction with ``carousel ledger correct`` instead).

Companies come from ``companies.csv`` next to the deals file (or ``data/events/companies.csv``),
``contracts.csv`` there says which rows report the same contract, and ``amount_terms.csv`` gives each
deal's ``amount_kind`` and ``horizon`` explicitly (see ``data/events/NOTES.md``). Deals it does not list
fall back to reading the leading clause of ``amount_note`` (:func:`note_terms`).

Each field is validated by its rule in :data:`ledger.fields.FIELDS`, the rule ``carousel ledger
amend/correct`` apply to ``--set`` values, so no value can enter the ledger by a route that import
refuses. Reading files is :mod:`ledger.files`, the reference files :mod:`ledger.registry`, the notes'
amount terms :mod:`ledger.notes`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.errors import ConflictError, InputError
from core.paths import DATA_DIR
from ledger import log, project, timing
from ledger.fields import (
    _ID_RE,
    BN,
    FIELDS,
    REQUIRED,
    Context,
    _check_text,
    _parse_date,
    _session_fits_time,
    _url,
    named_companies,
    self_deal_problem,
    session_problem,
    ticker_owner_problem,
)
from ledger.fields import (
    _TICKER_RE as _TICKER_RE,  # re-exported: market.sources and tests pin the pattern
)
from ledger.fields import session_time_problem as session_time_problem
from ledger.files import DEAL_FIELDS, check_file, csv_rows, yaml_rows
from ledger.model import (
    CURRENT_VERSION,
    MUTABLE_FIELDS,
    NewEvent,
    StoredEvent,
    canonical_json,
    company_stream,
    deal_stream,
    event_id_for,
)
from ledger.notes import note_terms
from ledger.registry import AmountTerms as AmountTerms
from ledger.registry import Registry, _bn_text, load_registry
from ledger.registry import registry_from_companies as registry_from_companies


@dataclass(frozen=True)
class ImportReport:
    file: str
    rows: int
    appended: int
    skipped: int
    #: Deals whose row changed since an earlier import and for which a DealCorrected was recorded.
    corrected: tuple[str, ...] = ()
    #: Deals whose row changed but which were retracted, so nothing was recorded (``record_changes``).
    retracted_changed: tuple[str, ...] = ()
    #: Shipped timing rows left out because the user's own record of the deal stands: (deal_id, why)
    #: (:func:`ledger.timing.plan_timing`).
    kept: tuple[tuple[str, str], ...] = ()


#: Deals per batch of a streaming import: each batch is one bulk append (one Arrow insert per table) inside
#: the import's single transaction, so memory is bounded by the batch, not the file.
CHUNK_ROWS = 10_000
#: Row errors a validation pass collects before it stops: the user fixes a file in one round, not twenty,
#: and a file of a million bad rows does not fill memory with error messages.
MAX_ERRORS = 20


@dataclass(frozen=True)
class DealScan:
    """A deals file that :func:`scan_deals` validated in full (every row and every cross-row rule).

    :func:`import_file` given a scan skips its own validation pass when the file is still the one scanned
    (same size and modification time, same ``today``); its append pass re-validates each row anyway."""

    path: Path
    rows: int
    size: int
    mtime_ns: int
    today: dt.date

    def still_current(self, path: Path, today: dt.date) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        return (path == self.path and today == self.today and st.st_size == self.size
                and st.st_mtime_ns == self.mtime_ns)


def validate_file(path: str | Path, *, today: dt.date | None = None,
                  max_errors: int = MAX_ERRORS) -> DealScan | None:
    """Validate a deals or timing-evidence file without a database (InputError naming file, line and
    field; up to ``max_errors`` row errors in one message): what the CLI runs before it opens the database
    read-write. Streams the file. Returns the :class:`DealScan` of a deals file (None for timing evidence)."""
    path = Path(path)
    check_file(path)
    if path.suffix.lower() == ".csv" and timing.is_timing_file(path):
        for _ in timing.parse_timing(path, today=today):
            pass
        return None
    return scan_deals(path, load_registry(path.parent), today=today, max_errors=max_errors)


def _deal_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml_rows(path)
    if suffix == ".csv":
        return csv_rows(path, DEAL_FIELDS)
    raise InputError("unsupported file type (use .csv, .yaml or .yml)", file=path)


def _announcement(payload: dict[str, Any]) -> NewEvent:
    stream = deal_stream(payload["deal_id"])
    return NewEvent(event_id_for(stream, "DealAnnounced"), stream, "DealAnnounced", payload)


def _bare(e: InputError) -> str:
    """An InputError's message without its "file:line, field 'x': " prefix."""
    return str(e)[len(str(InputError("", file=e.file, line=e.line, field=e.field))):]


def _raise_errors(errors: list[InputError], *, stopped: bool) -> None:
    """Raise the first error (by line) naming its file, line and field; the others follow in its message."""
    if not errors:
        return
    errors = sorted(errors, key=lambda e: (e.line or 0))
    first = errors[0]
    if len(errors) == 1:
        raise first
    more = "\n".join(f"  {e}" for e in errors[1:])
    tail = f" (reading stopped after {len(errors)} errors)" if stopped else ""
    raise InputError(f"{_bare(first)}\n{len(errors) - 1} more error(s) in the file{tail}:\n{more}".rstrip(":\n"),
                     file=first.file, line=first.line, field=first.field)


def _duplicate_errors(ids: list[pl.DataFrame], path: Path, limit: int) -> list[InputError]:
    """A duplicate deal id, found over the whole file at once: ids are kept as compact Polars string
    columns (about 40 bytes a row), not a Python set (about 150), so a million rows stay small."""
    if not ids:
        return []
    frame = pl.concat(ids)
    dup = (frame.filter(pl.col("id").is_duplicated())
           .with_columns(first=pl.col("line").min().over("id"))
           .filter(pl.col("line") != pl.col("first")).sort("line").head(limit))
    return [InputError(f"duplicate deal id {did!r} (first on line {first})", file=path, line=line, field="id")
            for did, line, first in dup.select("id", "line", "first").iter_rows()]


def _validated(path: Path, registry: Registry, today: dt.date, *, max_errors: int) -> Iterator[dict[str, Any]]:
    """One streaming pass: every row validated (:func:`deal_payload`) and its payload yielded while no
    row has failed. Row errors are collected (up to ``max_errors``); duplicate ids are checked at
    the end over the whole file; then every error found is raised at once (:func:`_raise_errors`)."""
    errors: list[InputError] = []
    ids: list[pl.DataFrame] = []
    chunk_ids: list[str] = []
    chunk_lines: list[int] = []
    stopped = False
    rows = 0
    try:
        for line, row in _deal_rows(path):
            rows += 1
            try:
                payload = deal_payload(row, registry, file=path, line=line, today=today)
            except InputError as exc:
                errors.append(exc)
                if len(errors) >= max_errors:
                    stopped = True
                    break
                continue
            chunk_ids.append(payload["deal_id"])
            chunk_lines.append(line)
            if len(chunk_ids) >= CHUNK_ROWS:
                ids.append(pl.DataFrame({"id": chunk_ids, "line": chunk_lines}, schema={"id": pl.String, "line": pl.Int64}))
                chunk_ids, chunk_lines = [], []
            if not errors:
                yield payload
    except InputError as exc:  # the file itself is malformed at this point: nothing after it can be read
        errors.append(exc)
        _raise_errors(errors, stopped=False)
    if chunk_ids:
        ids.append(pl.DataFrame({"id": chunk_ids, "line": chunk_lines}, schema={"id": pl.String, "line": pl.Int64}))
    if not stopped:
        errors += _duplicate_errors(ids, path, max_errors - len(errors))
    _raise_errors(errors, stopped=stopped)
    if rows == 0:
        raise InputError("no deals in file", file=path)


def scan_deals(path: Path, registry: Registry, *, today: dt.date | None = None,
               max_errors: int = MAX_ERRORS) -> DealScan:
    """Validate every row of a deals file in one streaming pass (memory independent of its length);
    InputError with up to ``max_errors`` errors, the first naming file, line and field."""
    today = today or dt.date.today()
    st = path.stat() if path.exists() else None
    rows = sum(1 for _ in _validated(path, registry, today, max_errors=max_errors))
    return DealScan(path, rows, st.st_size if st else 0, st.st_mtime_ns if st else 0, today)


def parse_deals(path: Path, registry: Registry, *, today: dt.date | None = None,
                max_errors: int = 1) -> list[NewEvent]:
    """Validate every row and return the events to append (pure apart from reading the file); for files
    small enough to hold (``ledger add``); :func:`import_file` streams instead."""
    return [_announcement(p) for p in _validated(path, registry, today or dt.date.today(), max_errors=max_errors)]


def iter_deal_batches(path: Path, registry: Registry, *, today: dt.date, size: int = CHUNK_ROWS
                      ) -> Iterator[list[NewEvent]]:
    """The announcements of a deals file in batches of ``size``, each row validated as it is read (the
    first error raises). Cross-row rules (duplicate ids) are :func:`scan_deals`'s: run it first."""
    batch: list[NewEvent] = []
    for line, row in _deal_rows(path):
        batch.append(_announcement(deal_payload(row, registry, file=path, line=line, today=today)))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def deal_payload(
    row: Mapping[str, str], reg: Registry, *, file: Path | str, line: int, today: dt.date
) -> dict[str, Any]:
    def err(msg: str, fld: str) -> InputError:
        return InputError(msg, file=file, line=line, field=fld)

    for k, v in row.items():
        _check_text(v, err, k)
    for k in REQUIRED:
        if not row.get(k):
            raise err("required value is empty", k)
    did = row["id"]
    if not _ID_RE.match(did):
        raise err(f"{did!r} is not a deal id (lowercase letters, digits, '-', '.')", "id")
    # Each field by its rule in ledger.fields.FIELDS (the rule amend/correct apply to --set), in the order
    # errors have always been reported.
    ctx = Context(reg, err, today, scale=BN, unit="US$ billions")

    def field(name: str, default: str = "") -> Any:
        rule = FIELDS[name]
        assert rule.column is not None
        return rule.parse(row.get(rule.column) or default, ctx, rule.column)

    ann_text = field("announced_date")
    ann = dt.date.fromisoformat(ann_text) if ann_text else None
    _parse_date(row.get("source_date", ""), err, "source_date", today)
    time_et = field("announced_time_et")
    session = field("session")
    _session_fits_time(session, time_et, ann, err)
    deal_type = field("deal_type")
    payers = field("payers")
    payees = field("payees")
    amount_text = field("amount_usd")
    amount = None if amount_text is None else Decimal(amount_text)
    note = row.get("amount_note", "")
    terms = reg.terms.get(did)
    if terms is None:
        terms = note_terms(note, disclosed=amount is not None)
    elif amount is None:
        raise err(f"amount_terms.csv says the amount is {terms.amount_kind!r}, but no amount is given",
                  "amount_usd_bn")
    if terms.payer_amount is not None and (amount is None or terms.payer_amount > amount):
        given = "none given" if amount is None else f"US$ {_bn_text(amount)} billion"
        raise err(f"amount_terms.csv says the payer pays US$ {_bn_text(terms.payer_amount)} billion of it, more than "
                  f"the amount ({given})", "amount_usd_bn")
    if terms.payer_amount is not None and (len(payers) != 1 or len(payees) != 1 or terms.payer_amount == 0):
        raise err(f"amount_terms.csv gives a payer share of US$ {_bn_text(terms.payer_amount)} billion, but "
                  + ("a share must be positive" if terms.payer_amount == 0 else
                     "the deal has several payers or payees, so no single payer's share"), "payer")
    problem = self_deal_problem({"payers": payers, "payees": payees})
    if problem:
        raise err(problem, "payee")
    tickers = field("tickers")
    named = named_companies(" ".join((note, row.get("source_title", ""), row.get("headline_reaction", ""))),
                            reg.aliases)
    problem = ticker_owner_problem({"payers": payers, "payees": payees, "tickers": tickers}, reg.tickers, named)
    if problem:
        raise err(problem, "counterparty_tickers")
    conf = field("confidence", "partial")
    url = _url(row["source_url"], err, "source_url")
    contract_id, counts = reg.contracts.get(did, (did, True))
    payload: dict[str, Any] = {
        "deal_id": did,
        "contract_id": contract_id,
        "counts_toward_total": counts,
        "announced_date": ann_text,
        "announced_time_et": time_et,
        "session": session,
        "payers": payers,
        "payees": payees,
        "amount_usd": amount_text,
        "amount_kind": terms.amount_kind,
        "deal_type": deal_type,
        "horizon": terms.horizon,
        "tickers": tickers,
        "title": field("title"),
        "confidence": conf,
        "note": note or None,
        "headline_reaction": row.get("headline_reaction") or None,
        "sources": [
            {
                "publisher": row.get("source_publisher") or None,
                "title": row.get("source_title") or None,
                "url": url,
                "date": row.get("source_date") or None,
            }
        ],
    }
    # Only where amount_terms.csv gives one: every other announcement keeps its earlier canonical payload
    # (and so its event id's content), so adding the column changed exactly the rows that use it.
    if terms.payer_amount is not None:
        payload["payer_amount_usd"] = format(terms.payer_amount, "f")
    return payload


def company_events(reg: Registry, used: set[str] | None = None) -> list[NewEvent]:
    out = []
    for cid in sorted(reg.companies):
        if used is not None and cid not in used:
            continue
        stream = company_stream(cid)
        out.append(NewEvent(event_id_for(stream, "CompanyRegistered"), stream, "CompanyRegistered", reg.companies[cid]))
    return out


def import_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    today: dt.date | None = None,
    record_changes: bool = False,
    origin: str = "import",
    dry_run: bool = False,
    scan: DealScan | None = None,
    chunk_rows: int = CHUNK_ROWS,
    first_new_only: bool = False,
    commit_each_batch: bool = False,
) -> ImportReport:
    """Validate ``path`` fully, then append companies and deals in one atomic, idempotent transaction.

    Streaming: a first pass validates every row (skipped when ``scan``, from :func:`validate_file` or
    :func:`scan_deals`, is of this very file), a second reads the file again in batches of ``chunk_rows``
    deals, reconciles each batch with the log and appends it (:func:`ledger.log.append_batches`), all in
    one transaction: memory is bounded by a batch, and a failure (or a kill) anywhere leaves nothing.

    A timing-evidence CSV (its header has ``first_public_time_et``, ``data/events/timing_evidence.csv``)
    is imported as DealTimingEvidenced events instead (:mod:`ledger.timing`), equally atomic and idempotent.

    A row whose deal was imported before with different content cannot be appended (events are
    immutable; its DealAnnounced id exists). What the *file* says about a deal is its announcement plus
    the corrections earlier imports recorded (marked ``origin: import``); corrections made by hand are
    not the file's. A row that equals that file view adds nothing. A row that differs is a ConflictError
    naming the deal and the fields, unless ``record_changes``: then one DealCorrected with exactly those
    fields is recorded in the same batch (a fixed source file, or shipped data revised by a newer
    carousel). So an import never reverts a hand correction of a field the file did not change, and
    re-importing an older version of the file is a change like any other.

    ``dry_run``: validate and reconcile exactly as an import would, on a read-only connection, and report
    how many events it *would* append (an event already stored with the same content counts as present;
    one with other content counts as new, so the real import then raises the conflict). With
    ``first_new_only`` it stops at the first batch holding a new event (enough to know the import is not a
    no-op; the counts then cover only the batches read).

    ``commit_each_batch``: each batch is its own transaction (:func:`ledger.log.append`), so memory stays
    bounded however large the file (DuckDB keeps a transaction's uncommitted rows in memory). Only for a
    connection to a private copy of the database that replaces the original when the import is complete
    (:func:`core.db.staged_copy`): on the live file a failure would leave the first batches behind.

    A retracted deal whose row changed is left alone under ``record_changes`` (a retracted deal cannot
    be corrected, and ``carousel run`` must not stop on it for good) and listed in the report.

    ``origin`` names whose view of the file the corrections belong to: ``carousel run`` imports the
    shipped data as ``'shipped'``, so its file view is the announcement plus the shipped revisions only,
    and a user's own import (``'import'``) of a fixed file is never taken back by the next run.
    """
    path = Path(path)
    check_file(path)  # before looking for companies.csv beside it
    if path.suffix.lower() == ".csv" and timing.is_timing_file(path):
        rows, plan, appended = timing.import_timing(con, path, today=today, dry_run=dry_run, origin=origin)
        return ImportReport(str(path), rows, appended, rows - appended - len(plan.kept), kept=plan.kept)
    today = today or dt.date.today()
    reg = load_registry(path.parent)
    if scan is None or not scan.still_current(path, today):
        scan = scan_deals(path, reg, today=today)
    companies = company_events(reg)
    _refuse_changed_companies(con, companies, path.parent)
    rows = dropped = 0
    corrected: list[str] = []
    retracted: list[str] = []

    twice_before = set(counting_reports(con))

    def batches() -> Iterator[tuple[list[NewEvent], dict[str, log.ExpectedVersion]]]:
        nonlocal rows, dropped
        yield companies, {}
        for deals in iter_deal_batches(path, reg, today=today, size=chunk_rows):
            rows += len(deals)
            kept, corrections, expected, retr = _reconcile(con, deals, path, record_changes=record_changes,
                                                           origin=origin)
            dropped += len(deals) - len(kept) - len(corrections)
            corrected.extend(str(e.payload["deal_id"]) for e in corrections)
            retracted.extend(retr)
            yield kept + corrections, expected
        # Inside the import's transaction (or before the staged copy replaces the database): a refusal
        # here leaves nothing written. A dry run appends nothing, so the real import is the one that refuses.
        _refuse_counted_twice(con, path, twice_before)

    if dry_run:
        new = present = 0
        for events, _expected in batches():
            found = len(events) - len(log.already_stored(con, events))
            new, present = new + found, present + len(events) - found
            if first_new_only and new:
                break
        return ImportReport(str(path), rows, new, present, tuple(corrected), tuple(retracted))
    if commit_each_batch:
        appended = skipped = 0
        for events, expected in batches():
            if events:
                one = log.append(con, events, expected=expected)
                appended, skipped = appended + one.appended, skipped + one.skipped
    else:
        res = log.append_batches(con, batches())
        appended, skipped = res.appended, res.skipped
    return ImportReport(str(path), rows, appended, skipped + dropped, tuple(corrected), tuple(retracted))


#: The active reports that count toward flow totals with an amount: the rows a flow sum adds up.
_COUNTING = ("SELECT contract_id, deal_id, amount_usd FROM ledger_deals WHERE counts_toward_total "
             "AND amount_usd IS NOT NULL AND status = 'active'")


def counting_reports(con: duckdb.DuckDBPyConnection, contracts: Iterable[str] | None = None
                     ) -> dict[str, list[tuple[str, Any]]]:
    """contract_id -> [(deal_id, amount_usd)] of its counting reports (:data:`_COUNTING`), for
    ``contracts`` (None: only the contracts with more than one, the ones a flow sum counts twice)."""
    if contracts is None:
        sql = (f"SELECT * FROM ({_COUNTING}) WHERE contract_id IN (SELECT contract_id FROM ({_COUNTING}) "  # noqa: S608
               "GROUP BY contract_id HAVING count(*) > 1) ORDER BY contract_id, deal_id")
        params: list[Any] = []
    else:
        sql = f"{_COUNTING} AND contract_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY contract_id, deal_id"
        params = [sorted(set(contracts))]
    out: dict[str, list[tuple[str, Any]]] = {}
    for cid, did, amount in con.execute(sql, params).fetchall():
        out.setdefault(cid, []).append((did, amount))
    return out


def _refuse_counted_twice(con: duckdb.DuckDBPyConnection, path: Path, before: set[str]) -> None:
    """ConflictError naming the contract and its counting reports if the import left a contract with two
    reports that count toward flow totals with amounts (a new deal in an existing contract, or a changed
    contracts.csv), which the ledger's commands refuse too; a contract already counted twice is not
    blamed on this import."""
    for cid, reports in counting_reports(con).items():
        if cid not in before:
            deals = " and ".join(f"{d} (US$ {a})" for d, a in reports)
            raise ConflictError(f"{path}: after this import {deals} would all count toward flow totals in contract "
                                f"{cid!r}; only one report of a contract counts: mark the others "
                                "counts_toward_total=false in contracts.csv, or give them their own contract_id")


def _refuse_changed_companies(con: duckdb.DuckDBPyConnection, companies: list[NewEvent], folder: Path) -> None:
    """ConflictError naming companies.csv, the company and the fields if a registered company changed.

    There is no event that changes a company (its tickers decide which prices a study reads, so a silent
    change would move results), so the log's own "same id, other content" conflict would be right but
    would name only an event id.
    """
    stored = log.stored_payloads(con, [e.event_id for e in companies])
    for e in companies:
        old = stored.get(e.event_id)
        if old is None or old == e.payload_json:
            continue
        before = json.loads(old)
        fields = ", ".join(sorted(k for k in set(before) | set(e.payload)
                                  if canonical_json({"v": before.get(k)}) != canonical_json({"v": e.payload.get(k)})))
        file = folder / "companies.csv"
        raise ConflictError(
            f"{file if file.exists() else DATA_DIR / 'events' / 'companies.csv'}: company "
            f"{e.payload['company_id']!r} changed since it was registered ({fields}); a registered company "
            "cannot be changed: register it under a new company id"
        )


def _reconcile(
    con: duckdb.DuckDBPyConnection, deals: list[NewEvent], path: Path, *, record_changes: bool,
    origin: str = "import",
) -> tuple[list[NewEvent], list[NewEvent], dict[str, log.ExpectedVersion], tuple[str, ...]]:
    """Split parsed announcements into (to append, corrections to append, expected stream versions,
    retracted deals whose row changed).

    Two queries find the candidates: announcements stored with other content, and deals an earlier
    import corrected (their row may equal the announcement and still differ from what the file said
    last). Only those deals' streams are read.
    """
    stored = log.stored_payloads(con, [e.event_id for e in deals])
    imported_corrections = log.streams_corrected_by_import(con, [e.stream_id for e in deals], origin=origin)
    changed = [e for e in deals if e.event_id in stored
               and (stored[e.event_id] != e.payload_json or e.stream_id in imported_corrections)]
    if not changed:
        return deals, [], {}, ()
    by_stream: dict[str, list[Any]] = {}
    for ev in log.read(con, streams=[e.stream_id for e in changed]):
        by_stream.setdefault(ev.stream_id, []).append(ev)
    drop: set[str] = set()
    corrections: list[NewEvent] = []
    expected: dict[str, log.ExpectedVersion] = {}
    retracted: list[str] = []
    for e in changed:
        deal_id = str(e.payload["deal_id"])
        events = by_stream[e.stream_id]
        drop.add(e.event_id)
        diff = _record_diff(_file_view(events, origin), e.payload)
        if not diff:
            continue  # an earlier import already recorded what the row says
        fields = ", ".join(sorted(diff))
        frozen = sorted(set(diff) - MUTABLE_FIELDS)
        if frozen:
            raise ConflictError(f"{path}: deal {deal_id!r} changed since it was imported in {', '.join(frozen)}, "
                                "which no event can change; give the deal a new id")
        retraction = next((ev for ev in events if ev.event_type == "DealRetracted"), None)
        if not record_changes and retraction is not None:
            # `carousel ledger correct` refuses a retracted deal: do not send the user there.
            raise ConflictError(
                f"{path}: deal {deal_id!r} changed since it was imported ({fields}), but it was retracted (log "
                f"position {retraction.position}) and a retracted deal cannot be corrected; with "
                "--record-changes the import leaves it as it is and lists it"
            )
        if not record_changes:
            raise ConflictError(
                f"{path}: deal {deal_id!r} changed since it was imported ({fields}); events are immutable: "
                "re-run the import with --record-changes to record a DealCorrected for it, or use "
                "`carousel ledger correct`"
            )
        if retraction is not None:
            retracted.append(deal_id)
            continue
        head = events[-1]
        payload = {"deal_id": deal_id, "changes": diff, "origin": origin,
                   "reason": f"re-import of {path.name}: the row changed"}
        # The same id rule as `carousel ledger correct`: content plus the event it follows.
        eid = event_id_for(e.stream_id, "DealCorrected", f"{canonical_json(payload)}\x1fafter {head.event_id}")
        # What import refuses in a row, a recorded change must not produce in the record either: the row
        # may combine with an earlier hand correction of the other field (a time with a session label).
        found = project.new_problem(
            events, StoredEvent(head.position + 1, eid, e.stream_id, head.stream_version + 1, "DealCorrected",
                                CURRENT_VERSION["DealCorrected"], payload, 0),
            lambda d: session_problem(d) or project.payer_share_problem(d))
        if found is not None:
            raise ConflictError(f"{path}: deal {deal_id!r}: recording the changed row ({fields}) would leave "
                                f"{found[1]}")
        corrections.append(NewEvent(eid, e.stream_id, "DealCorrected", payload))
        expected[e.stream_id] = head.stream_version
    return [e for e in deals if e.event_id not in drop], corrections, expected, tuple(retracted)


#: A deals file's commentary columns (``amount_note`` as ``note``, ``headline_reaction``): prose about the
#: deal that no projection, study or query reads, so not part of the record an import compares. A revised
#: commentary is not a change of the deal (nothing is recorded and nothing refused): the announcement keeps
#: the text first imported. Not a correctable field either: a correction event per reworded sentence
#: would move nothing a reader sees and would make every prose edit of the shipped file an event.
COMMENTARY = frozenset({"note", "headline_reaction"})


def _file_view(events: list[Any], origin: str = "import") -> dict[str, Any]:
    """What earlier imports (of this ``origin``) said about a deal: its announcement with their
    recorded corrections applied in log order (hand corrections, amendments and other origins' imports
    are not the file's)."""
    view = {k: v for k, v in events[0].payload.items() if k not in COMMENTARY}
    for ev in events[1:]:
        if ev.event_type == "DealCorrected" and ev.payload.get("origin") == origin:
            view.update(ev.payload["changes"])
    return view


def _record_diff(base: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields whose value in ``row`` differs from ``base`` (:data:`COMMENTARY` is not part of the
    record). Compared in canonical JSON, the form the log stores."""
    keys = (set(base) | set(row)) - COMMENTARY - {"status", "version"}
    return {k: row.get(k) for k in sorted(keys)
            if canonical_json({"v": base.get(k)}) != canonical_json({"v": row.get(k)})}
