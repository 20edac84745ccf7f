"""The append-only event log: append, read, verify, anchor.

Guarantees (each has adversarial tests in ``tests/ledger``):

* **Gapless global position in commit order.** Positions are ``head + 1 ..`` read *inside* the writing
  transaction. DuckDB admits one read-write process per file and :data:`_WRITE_LOCK` serialises writers
  inside a process, so no two transactions can pick the same head; a sequence would leave gaps.
* **Per-stream versions with expected-version checks** (``"any"``, ``"no_stream"`` or an exact int),
  raising :class:`~core.errors.ConflictError`.
* **Idempotent event ids.** An identical retry writes nothing; the same id with different content is a
  ConflictError. (No ``ON CONFLICT DO NOTHING``: a silent skip would hide the conflicting case.)
* **Atomic batches**: one transaction per append; any error rolls back everything.
* **recorded_at strictly increasing** (max(now, last + 1 µs)), so "as known at T" is a log prefix.
* **Hash chain**: ``hash = sha256(prev_hash | position | event_id | stream | version | type |
  schema_version | recorded_at_us | payload)``; :func:`verify` names the first broken position.
* **Recorded head**: every append also updates ``ledger_head`` (position, hash of the last event) in the
  same transaction, and refuses to append when the log's head no longer matches it (events were removed
  outside carousel; re-chaining on top would hide it). :func:`verify` compares the two, so a deleted head
  event is detected without an external anchor.
* **Projections are checked, not trusted**: :func:`verify` also replays the log (pure
  :func:`ledger.project.apply`) and compares the result with the stored ``ledger_companies``,
  ``ledger_deals`` and ``ledger_flows`` tables that ``carousel sql``, ``report`` and ``study`` read.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any, Literal

import duckdb
import polars as pl

from core.db import transaction
from core.errors import ConflictError
from ledger import project
from ledger.model import (
    CURRENT_VERSION,
    REGISTRY,
    NewEvent,
    StoredEvent,
    company_stream,
    deal_stream,
    upcast,
)

GENESIS = "0" * 64
ExpectedVersion = Literal["any", "no_stream"] | int

_WRITE_LOCK = threading.Lock()


def chain_hash(
    prev_hash: str,
    position: int,
    event_id: str,
    stream_id: str,
    stream_version: int,
    event_type: str,
    schema_version: int,
    recorded_at_us: int,
    payload: str,
) -> str:
    text = "|".join(
        (
            prev_hash,
            str(position),
            event_id,
            stream_id,
            str(stream_version),
            event_type,
            str(schema_version),
            str(recorded_at_us),
            payload,
        )
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AppendResult:
    appended: int
    skipped: int
    head_position: int
    head_hash: str


def _now_us() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)


def append(
    con: duckdb.DuckDBPyConnection,
    events: Sequence[NewEvent],
    *,
    expected: Mapping[str, ExpectedVersion] | None = None,
) -> AppendResult:
    """Append ``events`` atomically (one transaction, one bulk insert)."""
    with _WRITE_LOCK, transaction(con):
        return _append_locked(con, events, expected or {})


def append_batches(
    con: duckdb.DuckDBPyConnection,
    batches: Iterable[tuple[Sequence[NewEvent], Mapping[str, ExpectedVersion]]],
) -> AppendResult:
    """Append several batches, each as :func:`append` appends one, all in ONE transaction.

    Why: a streaming import holds one batch in memory at a time yet must stay all-or-none; a
    transaction per batch would leave the first batches of a failed or killed import behind. ``batches``
    may be a generator that reads the database (the batch's reconciliation): it runs inside the
    transaction, so it sees the batches already appended.
    """
    appended = skipped = 0
    head_pos, head_hash = 0, GENESIS
    with _WRITE_LOCK, transaction(con):
        for events, expected in batches:
            if not events:
                continue
            res = _append_locked(con, events, expected)
            appended, skipped = appended + res.appended, skipped + res.skipped
            head_pos, head_hash = res.head_position, res.head_hash
        if not appended and not skipped:  # nothing given: report the head as it is
            _n, pos, hash_ = head_summary(con)
            head_pos, head_hash = pos or 0, hash_ or GENESIS
    return AppendResult(appended, skipped, head_pos, head_hash)


def _append_locked(
    con: duckdb.DuckDBPyConnection, events: Sequence[NewEvent], expected: Mapping[str, ExpectedVersion]
) -> AppendResult:
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConflictError(f"event id {dup} appears twice in one batch")
    head = con.execute(
        "SELECT position, hash, epoch_us(recorded_at) FROM ledger_log ORDER BY position DESC LIMIT 1"
    ).fetchall()
    head_pos, head_hash, last_us = (int(head[0][0]), str(head[0][1]), int(head[0][2])) if head else (0, GENESIS, 0)
    recorded = con.execute("SELECT position, hash FROM ledger_head").fetchall()
    if len(recorded) > 1:
        raise ConflictError(
            f"ledger_head holds {len(recorded)} rows instead of one: it was edited outside carousel; appending "
            "now would hide it (run `carousel ledger verify`)"
        )
    if recorded and (int(recorded[0][0]), str(recorded[0][1])) != (head_pos, head_hash):
        raise ConflictError(
            f"the log ends at position {head_pos} but its recorded head is position {recorded[0][0]}: events "
            "were removed or added outside carousel; appending now would hide it (run `carousel ledger verify`)"
        )

    existing = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT event_id, stream_id, event_type, schema_version, payload FROM ledger_log "
            "WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
    }
    fresh: list[NewEvent] = []
    for e in events:
        old = existing.get(e.event_id)
        if old is None:
            fresh.append(e)
        elif tuple(old) != (e.stream_id, e.event_type, e.version, e.payload_json):
            remedy = ("record a DealCorrected instead" if str(old[1]).startswith("Deal") else
                      "a registered company cannot be changed; register it under a new company id")
            raise ConflictError(
                f"event id {e.event_id} already exists with different content "
                f"(stream {old[0]}, type {old[1]}); events are immutable: {remedy}"
            )
    if not fresh:
        return AppendResult(0, len(events), head_pos, head_hash)

    streams = sorted({e.stream_id for e in fresh} | set(expected))
    current = dict(
        con.execute(
            "SELECT stream_id, max(stream_version) FROM ledger_log "
            "WHERE stream_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY stream_id",
            [streams],
        ).fetchall()
    )
    for stream, want in expected.items():
        have = current.get(stream)
        if want == "no_stream" and have is not None:
            raise ConflictError(f"stream {stream} already exists (version {have}); expected no stream")
        if isinstance(want, int) and not isinstance(want, bool) and have != want:
            raise ConflictError(
                f"stream {stream} is at version {have if have is not None else 'none'}, expected {want}"
            )
    _check_deal_streams(fresh, current)

    rows: dict[str, list[Any]] = {k: [] for k in (
        "position", "event_id", "stream_id", "stream_version", "event_type", "schema_version",
        "payload", "recorded_at_us", "prev_hash", "hash")}
    prev, pos, ts = head_hash, head_pos, max(_now_us(), last_us + 1)
    versions = {s: int(v) for s, v in current.items()}
    stored: list[StoredEvent] = []
    for e in fresh:
        pos += 1
        sv = versions[e.stream_id] = versions.get(e.stream_id, 0) + 1
        payload = e.payload_json
        h = chain_hash(prev, pos, e.event_id, e.stream_id, sv, e.event_type, e.version, ts, payload)
        for k, v in (("position", pos), ("event_id", e.event_id), ("stream_id", e.stream_id),
                     ("stream_version", sv), ("event_type", e.event_type),
                     ("schema_version", e.version), ("payload", payload), ("recorded_at_us", ts),
                     ("prev_hash", prev), ("hash", h)):
            rows[k].append(v)
        # Exactly what read() gives back (parsed from the canonical text, so a Decimal or tuple in the
        # caller's payload projects as its stored string or list; upcast if given in an older version).
        data = upcast(e.event_type, e.version, json.loads(payload, parse_float=Decimal))
        stored.append(StoredEvent(pos, e.event_id, e.stream_id, sv, e.event_type, CURRENT_VERSION[e.event_type],
                                  data, ts))
        prev, ts = h, ts + 1
    batch = pl.DataFrame(rows, schema_overrides={"recorded_at_us": pl.Int64}).to_arrow()
    con.register("_ledger_batch", batch)
    try:
        con.execute(
            "INSERT INTO ledger_log SELECT position, event_id, stream_id, stream_version, event_type, "
            "schema_version, payload, make_timestamptz(recorded_at_us), prev_hash, hash FROM _ledger_batch"
        )
    finally:
        con.unregister("_ledger_batch")
    _refresh_projections(con, stored, current)
    _set_head(con, pos, prev, exists=bool(recorded))
    return AppendResult(len(fresh), len(events) - len(fresh), pos, prev)


def _set_head(con: duckdb.DuckDBPyConnection, position: int, hash_: str, *, exists: bool) -> None:
    """Record the new head in ``ledger_head`` (created and seeded by the schema, so no DDL here)."""
    if exists:
        con.execute("UPDATE ledger_head SET position = ?, hash = ?", [position, hash_])
    else:  # the row was removed by hand; the head check above had nothing to compare with
        con.execute("INSERT INTO ledger_head VALUES (?, ?)", [position, hash_])


def _check_deal_streams(fresh: Sequence[NewEvent], current: Mapping[str, Any]) -> None:
    """A deal stream must start with DealAnnounced, and only deal events may follow it (the event types
    say which start a stream, :data:`ledger.model.REGISTRY`)."""
    seen = set(current)
    for e in fresh:
        kind = REGISTRY[e.event_type]
        if kind.stream_kind == "deal" and kind.starts_stream and e.stream_id in seen:
            raise ConflictError(f"deal stream {e.stream_id} already has a {e.event_type}")
        if kind.stream_kind == "deal" and not kind.starts_stream and e.stream_id not in seen:
            raise ConflictError(f"{e.event_type} for unknown deal stream {e.stream_id}")
        seen.add(e.stream_id)


def _refresh_projections(
    con: duckdb.DuckDBPyConnection, fresh: Sequence[StoredEvent], existing_streams: Iterable[str]
) -> None:
    """Rewrite the projection rows of the streams touched by this append (same transaction).

    The new events come from the in-memory batch (already canonical, current schema version), not
    re-read from the table just written; only streams that held events *before* this batch are read,
    for their older events. A new deal (the bulk of an import) therefore costs no query at all.
    """
    older = sorted(set(existing_streams))
    events = read(con, streams=older) if older else []
    state = project.fold([*events, *fresh])
    deal_ids = sorted({e.payload["deal_id"] for e in fresh if "deal_id" in e.payload})
    company_ids = sorted({e.payload["company_id"] for e in fresh if e.event_type == "CompanyRegistered"})
    old_companies = {e.payload["company_id"] for e in events if e.event_type == "CompanyRegistered"}
    old_deals = {e.payload["deal_id"] for e in events if "deal_id" in e.payload}
    if company_ids:
        if old_companies:
            con.execute("DELETE FROM ledger_companies WHERE company_id IN (SELECT unnest(?::VARCHAR[]))",
                        [sorted(old_companies)])
        _insert(con, "ledger_companies", project.companies_frame(state))
    if deal_ids:
        if old_deals:
            con.execute("DELETE FROM ledger_deals WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(old_deals)])
            con.execute("DELETE FROM ledger_flows WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(old_deals)])
        rows = project.deal_rows(state)
        _insert(con, "ledger_deals", project.deals_frame(state, rows))
        _insert(con, "ledger_flows", project.flows_frame(state, active_only=False, rows=rows))


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    if frame.height == 0:
        return
    con.register("_ledger_proj", frame.to_arrow())
    try:
        cols = ", ".join(frame.columns)
        # ``table`` is one of our own table names, never user input.
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _ledger_proj")  # noqa: S608
    finally:
        con.unregister("_ledger_proj")


def stored_payloads(con: duckdb.DuckDBPyConnection, event_ids: Iterable[str]) -> dict[str, str]:
    """event id -> stored payload text, for those of ``event_ids`` the log holds (one query)."""
    return dict(con.execute(
        "SELECT event_id, payload FROM ledger_log WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(event_ids)],
    ).fetchall())


def already_stored(con: duckdb.DuckDBPyConnection, events: Sequence[NewEvent]) -> set[str]:
    """Ids of ``events`` the log already holds with the very same content (an append would skip them)."""
    stored = stored_payloads(con, [e.event_id for e in events])
    return {e.event_id for e in events if stored.get(e.event_id) == e.payload_json}


def streams_corrected_by_import(con: duckdb.DuckDBPyConnection, stream_ids: Iterable[str],
                                origin: str = "import") -> set[str]:
    """Those of ``stream_ids`` that hold a DealCorrected recorded by a re-import of this ``origin``
    (``import``; ``shipped`` for the main job's import of the shipped data)."""
    return {r[0] for r in con.execute(
        "SELECT DISTINCT stream_id FROM ledger_log WHERE event_type = 'DealCorrected' "
        "AND json_extract_string(payload, '$.origin') = ? AND stream_id IN (SELECT unnest(?::VARCHAR[]))",
        [origin, list(stream_ids)],
    ).fetchall()}


def head_summary(con: duckdb.DuckDBPyConnection) -> tuple[int, int | None, str | None]:
    """(number of events, head position, head hash); (0, None, None) for an empty log."""
    n, pos, hash_ = con.execute(
        "SELECT count(*), max(position), arg_max(hash, position) FROM ledger_log").fetchall()[0]
    return int(n), (None if pos is None else int(pos)), hash_


def seed_head(con: duckdb.DuckDBPyConnection) -> None:
    """Record the log's current head in an empty ``ledger_head`` (schema setup: databases created before
    ``ledger_head`` existed, and new ones), so the writer only ever UPDATEs the single row."""
    con.execute(
        "INSERT INTO ledger_head SELECT * FROM (SELECT coalesce(max(position), 0), "
        "coalesce(arg_max(hash, position), ?) FROM ledger_log) WHERE NOT EXISTS (SELECT 1 FROM ledger_head)",
        [GENESIS],
    )


def read(
    con: duckdb.DuckDBPyConnection,
    *,
    streams: Iterable[str] | None = None,
    after: int = 0,
    as_known_at: dt.datetime | None = None,
) -> list[StoredEvent]:
    """Events in log order, payloads upcast to the current schema versions."""
    sql = (
        "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, payload, "
        "epoch_us(recorded_at) FROM ledger_log WHERE position > ?"
    )
    params: list[Any] = [after]
    if streams is not None:
        sql += " AND stream_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(sorted(streams))
    if as_known_at is not None:
        sql += " AND recorded_at <= ?"
        params.append(as_known_at)
    sql += " ORDER BY position"
    out = []
    for pos, eid, sid, sv, et, ver, payload, us in con.execute(sql, params).fetchall():
        data = json.loads(payload, parse_float=Decimal)
        out.append(StoredEvent(int(pos), eid, sid, int(sv), et, CURRENT_VERSION[et], upcast(et, int(ver), data), int(us)))
    return out


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`. When not ok, ``check`` says which check failed:

    * ``"chain"``: the hash chain (``broken_position`` is the first bad event);
    * ``"head"``: the log's head differs from the recorded ``ledger_head`` (``broken_position`` is the
      first missing or unrecorded position);
    * ``"missing"``: a ledger table was dropped (``broken_position`` is None);
    * ``"projection"``: a stored projection table differs from the replayed log (``broken_position`` is
      the last event of the differing deal's or company's stream, or the head position if the stored row
      has no stream in the log; ``reason`` names the table, the key and the first differing field).
    """

    ok: bool
    events: int
    head_position: int
    head_hash: str
    broken_position: int | None = None
    reason: str | None = None
    check: str | None = None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. verify allocates several objects per event (rows, parsed
    payloads, the replayed state) and none of them form cycles, yet each allocation burst makes the
    collector re-scan the growing heap; pausing it roughly halves verify's time at 100k events."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def verify(con: duckdb.DuckDBPyConnection, *, projections: bool = True) -> VerifyReport:
    """Recompute the hash chain from the genesis, check the recorded head and the projections.

    Chain: detects an edited payload/type/stream/time (hash mismatch), a re-ordered or deleted event (gap
    or prev_hash mismatch), a non-canonical payload, and recorded_at going backwards. Head: detects
    deleted (or foreign) events at the end of the log, which leave a valid shorter chain. Projections:
    replays the log in the same pass (each payload is parsed once, for the canonical check and the fold)
    and compares companies, deals and flows with the stored tables; ``projections=False`` skips that.
    """
    with _gc_paused():
        return _verify(con, projections=projections)


def _verify(con: duckdb.DuckDBPyConnection, *, projections: bool) -> VerifyReport:
    missing = [t for t in ("ledger_log", "ledger_companies", "ledger_deals", "ledger_flows") if not _has_table(con, t)]
    if missing:
        return VerifyReport(False, 0, 0, GENESIS, None,
                            f"table(s) {', '.join(missing)} missing: dropped outside carousel", "missing")
    rows = con.execute(
        "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, payload, "
        "epoch_us(recorded_at), prev_hash, hash FROM ledger_log ORDER BY position"
    ).fetchall()
    n = len(rows)
    state = project.LedgerState()
    last_of_stream: dict[str, int] = {}
    prev, last_us, expected_pos = GENESIS, -1, 1
    for pos, eid, sid, sv, et, ver, payload, us, prev_hash, h in rows:
        pos = int(pos)

        def broken(reason: str, pos: int = pos) -> VerifyReport:
            return VerifyReport(False, n, int(rows[-1][0]), str(rows[-1][9]), pos, reason, "chain")

        if pos != expected_pos:
            return broken(f"position gap: expected {expected_pos}, found {pos}", expected_pos)
        if prev_hash != prev:
            return broken("prev_hash does not match the previous event's hash (reordered or removed event)")
        if et not in CURRENT_VERSION:
            return broken(f"unknown event type {et!r}")
        if int(us) <= last_us:
            return broken("recorded_at does not increase")
        canonical, data = _canonical_payload(payload)
        if not canonical:
            return broken("payload is not canonical JSON")
        if chain_hash(prev, pos, eid, sid, int(sv), et, int(ver), int(us), payload) != h:
            return broken("hash mismatch: the event's content was changed")
        if projections:
            try:
                ev = StoredEvent(pos, eid, sid, int(sv), et, CURRENT_VERSION[et], upcast(et, int(ver), data), int(us))
                project.apply(state, ev)
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                return broken(f"the event cannot be projected ({type(exc).__name__}: {exc})")
            last_of_stream[sid] = pos
        prev, last_us, expected_pos = h, int(us), expected_pos + 1
    head_pos = int(rows[-1][0]) if rows else 0

    has_head_table, recorded_rows = _recorded_head(con)
    if len(recorded_rows) > 1:
        return VerifyReport(False, n, head_pos, prev, head_pos,
                            f"ledger_head holds {len(recorded_rows)} rows instead of one (edited outside carousel)",
                            "head")
    recorded = recorded_rows[0] if recorded_rows else None
    if recorded is not None and recorded != (head_pos, prev):
        rpos, rhash = recorded
        if rpos > head_pos:
            reason = (f"the log ends at position {head_pos} but the writer recorded head position {rpos} "
                      f"(hash {rhash}): the last {rpos - head_pos} event(s) were deleted")
            at = head_pos + 1
        elif rpos < head_pos:
            reason = (f"the writer recorded head position {rpos} but the log goes on to {head_pos}: "
                      "events were added outside carousel")
            at = rpos + 1
        else:
            reason = f"the head event's hash differs from the recorded head hash {rhash} (head replaced)"
            at = head_pos
        return VerifyReport(False, n, head_pos, prev, at, reason, "head")

    # Without ledger_head, no carousel that maintains the projections by the current rule has written to
    # this database (the first read-write open creates the table and rebuilds the projections, see
    # ledger.schema): they were written by an older rule, so they are not compared.
    if projections and has_head_table:
        diff = _compare_projections(con, state)
        if diff is not None:
            table, stream, what = diff
            at = last_of_stream.get(stream, head_pos) if stream else head_pos
            return VerifyReport(False, n, head_pos, prev, at, f"projection {table} differs from the log: {what}",
                                "projection")
    return VerifyReport(True, n, head_pos, prev)


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} has no canonical form")


def _canonical_payload(text: str) -> tuple[bool, Any]:
    """(True, the parsed payload) if ``text`` is canonical JSON (:func:`ledger.model.is_canonical`), else
    (False, None).

    Same verdict, about twice as fast, and the parsed value is reused for the replay. Canonical JSON
    writes Decimals as strings, so its only numbers are integers: a fraction, an exponent, NaN or
    Infinity already means "not canonical" and is refused while parsing, so the result cannot hold a
    float and model's recursive float scan (most of its time) is unnecessary. The dumps options are
    :func:`ledger.model.canonical_json`'s; a test holds the two verdicts equal.
    """
    try:
        data = json.loads(text, parse_float=_refuse, parse_constant=_refuse)
        same = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == text
    except (ValueError, TypeError, RecursionError):  # nested deeper than any payload carousel writes
        return False, None
    return (True, data) if same else (False, None)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema() AND table_catalog = current_database()", [name]
    ).fetchall()[0][0])


def _recorded_head(con: duckdb.DuckDBPyConnection) -> tuple[bool, list[tuple[int, str]]]:
    """(whether ``ledger_head`` exists, its (position, hash) rows). The table is absent in a database older
    than it that was only opened read-only since; with no row (removed by hand) there is nothing to compare
    with; more than one row is never written by carousel."""
    has_table = bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger_head' "
        "AND table_schema = current_schema() AND table_catalog = current_database()"
    ).fetchall()[0][0])
    if not has_table:
        return False, []
    return True, [(int(p), str(h)) for p, h in con.execute("SELECT position, hash FROM ledger_head").fetchall()]


def stored_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: Iterable[str], *, alias: str | None = None
) -> list[str]:
    """SELECT expressions for ``columns`` of ``table``: a column that a database written by an older
    carousel lacks reads as NULL. Such a database gains its columns at the first read-write open; until
    then a read-only reader (verify, show, sql) sees NULL, which is also what its events say (no event of
    an older carousel sets a newer field). ``alias`` qualifies the stored columns (``f.payer``)."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema() AND table_catalog = current_database()", [table]
    ).fetchall()}
    return [(c if alias is None else f"{alias}.{c}") if c in have else f"NULL AS {c}" for c in columns]


def _show(value: Any) -> str:
    return str(value) if isinstance(value, Decimal | dt.date) else repr(value)


def _compare_projections(con: duckdb.DuckDBPyConnection, state: project.LedgerState) -> tuple[str, str | None, str] | None:
    """None if every stored projection equals the one rebuilt from ``state``; else (table, stream of the
    first differing key or None if the log has no such stream, description).

    Compares plain Python rows (DuckDB's fetchall against :func:`ledger.project.deal_rows` and friends,
    the very rows the writer inserts): building Polars frames with list columns would cost more than the
    whole hash chain.
    """
    deals = project.deal_rows(state)
    checks: tuple[tuple[str, tuple[str, ...], list[dict[str, Any]], dict[str, Any]], ...] = (
        ("ledger_companies", ("company_id",), project.company_rows(state), project.COMPANY_COLUMNS),
        ("ledger_deals", ("deal_id",), deals, project.DEAL_COLUMNS),
        ("ledger_flows", ("deal_id", "payer", "payee"), project.flow_rows(deals), project.FLOW_COLUMNS),
    )
    for table, keys, rows, schema in checks:
        # A database of an older carousel opened read-only lacks the newer columns (added and filled at
        # its first read-write open): compare what it has.
        cols = [c for c, expr in zip(schema, stored_columns(con, table, schema), strict=True) if expr == c]
        # itemgetter builds each row's tuple in C (a generator per row was a fifth of verify's time);
        # with one column it returns the bare value, so that case keeps the tuple by hand.
        want = (list(map(itemgetter(*cols), rows)) if len(cols) > 1
                else [(r[cols[0]],) for r in rows])
        # ``table`` and the columns are our own constants, never user input.
        select = ", ".join(stored_columns(con, table, cols))
        have = con.execute(f"SELECT {select} FROM {table} ORDER BY {', '.join(keys)}").fetchall()  # noqa: S608
        if have == want:
            continue
        at = [cols.index(k) for k in keys]
        by_key_want: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        by_key_have: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for src, into in ((want, by_key_want), (have, by_key_have)):
            for row in src:
                into.setdefault(tuple(row[i] for i in at), []).append(row)
        in_state = state.companies if table == "ledger_companies" else state.deals
        stream_of = company_stream if table == "ledger_companies" else deal_stream
        for key in sorted(by_key_want.keys() | by_key_have.keys()):
            w, g = sorted(by_key_want.get(key, []), key=repr), sorted(by_key_have.get(key, []), key=repr)
            if w == g:
                continue
            label = "/".join(str(k) for k in key)
            stream = stream_of(key[0]) if key[0] in in_state else None
            if not g:
                return table, stream, f"{'/'.join(keys)} {label} is in the log but missing from {table}"
            if not w:
                return table, stream, f"{table} has {label}, which the log does not produce"
            if len(w) != len(g):
                return table, stream, f"{label}: {table} has {len(g)} row(s), the log gives {len(w)}"
            for wr, gr in zip(w, g, strict=True):
                for i, col in enumerate(cols):
                    if wr[i] != gr[i]:
                        return table, stream, f"{label} field {col}: stored {_show(gr[i])}, log gives {_show(wr[i])}"
        # Only the order of rows sharing a sort key differs (tied flow rows); not a difference.
    return None


def anchor(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The head of the chain: publish it, and a later ``verify --anchor`` proves nothing before it changed."""
    r = con.execute(
        "SELECT position, hash, recorded_at FROM ledger_log ORDER BY position DESC LIMIT 1"
    ).fetchall()
    if not r:
        return {"position": 0, "hash": GENESIS, "recorded_at": None}
    return {"position": int(r[0][0]), "hash": str(r[0][1]), "recorded_at": r[0][2].isoformat()}


def check_anchor(con: duckdb.DuckDBPyConnection, anchor_doc: Mapping[str, Any]) -> str | None:
    """None if the log still holds the anchored (position, hash); else a reason.

    Position 0 is the genesis (the anchor of an empty ledger): no event holds it, and every log starts
    from it, so it checks only that the anchored hash is the genesis hash.
    """
    if int(anchor_doc["position"]) == 0:
        return None if anchor_doc["hash"] == GENESIS else "hash at anchored position 0 is not the genesis hash"
    r = con.execute("SELECT hash FROM ledger_log WHERE position = ?", [int(anchor_doc["position"])]).fetchall()
    if not r:
        return f"anchored position {anchor_doc['position']} is missing from the log"
    if r[0][0] != anchor_doc["hash"]:
        return f"hash at anchored position {anchor_doc['position']} differs from the anchor"
    return None


def rebuild_projections(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every projection table from the full log (repair / verification aid)."""
    state = project.fold(read(con))
    with _WRITE_LOCK, transaction(con):
        for t in ("ledger_companies", "ledger_deals", "ledger_flows"):
            con.execute(f"DELETE FROM {t}")  # noqa: S608 - fixed table names
        _insert(con, "ledger_companies", project.companies_frame(state))
        rows = project.deal_rows(state)
        _insert(con, "ledger_deals", project.deals_frame(state, rows))
        _insert(con, "ledger_flows", project.flows_frame(state, active_only=False, rows=rows))
