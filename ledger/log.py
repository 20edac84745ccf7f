"""The append-only event log: append, read, verify, anchor.

Guarantees (each has adversarial tests in ``tests/ledger``):

* **Gapless global position in commit order.** Positions are ``head + 1 ..`` read *inside* the writing
  transaction. DuckDB admits one read-write process per file and :data:`_WRITE_LOCK` serialises writers
  inside a process, so no two transactions can pick the same head; a sequence would leave gaps.
* **Per-stream versions with expected-version checks** (``"any"``, ``"no_stream"`` or an exact int),
  raising :class:`~core.errors.ConflictError`.
* **Idempotent event ids.** An identical retry writes nothing; the same id with different content is a
  ConflictError. (No ``ON CONFLICT DO NOTHING``: a silent skip would hide the conflicting case.)
  Both checks find the batch's ids and streams through ``ledger_log_keys`` (integer MD5 keys, one row
  per event; :data:`ledger.schema` says why), never trusting it for a verdict: hits are compared on the
  real strings, a stream found with a version hole is looked up by the text scan, and a duplicate that an
  edited key hid is refused by the log's UNIQUE constraints.
* **Atomic batches**: one transaction per append; any error rolls back everything.
* **recorded_at strictly increasing** (max(now, last + 1 µs)), so "as known at T" is a log prefix.
* **Hash chain**: ``hash = sha256(prev_hash | position | event_id | stream | version | type |
  schema_version | recorded_at_us | payload)``; :func:`verify` names the first broken position.
* **Recorded head**: every append also updates ``ledger_head`` (position, hash of the last event) in the
  same transaction, and refuses to append when the log's head no longer matches it (events were removed
  outside carousel; re-chaining on top would hide it). :func:`verify` compares the two, so a deleted head
  event is detected without an external anchor.
* **Projections are checked, not trusted**: :func:`verify` compares the stored ``ledger_companies``,
  ``ledger_deals`` and ``ledger_flows`` tables that ``carousel sql``, ``report`` and ``study`` read with
  what the log gives: in SQL against the digest the writer records with every append
  (:mod:`ledger.digest`, sealed to the head), and, whenever that cannot vouch for the database, by
  replaying the log (pure :func:`ledger.project.apply`), which names the first difference.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any, Literal, TypeVar

import duckdb
import polars as pl

from core.db import stored_fingerprint, transaction
from core.errors import ConflictError
from ledger import digest, project
from ledger.model import (
    CURRENT_VERSION,
    REGISTRY,
    NewEvent,
    StoredEvent,
    company_stream,
    deal_stream,
    upcast,
)
from ledger.overlap import Background, Done

GENESIS = "0" * 64
ExpectedVersion = Literal["any", "no_stream"] | int

_WRITE_LOCK = threading.Lock()
T = TypeVar("T")

#: Each projection table's columns and types (what the digest hashes, :mod:`ledger.digest`).
_SCHEMAS: dict[str, dict[str, Any]] = {
    "ledger_companies": project.COMPANY_COLUMNS,
    "ledger_deals": project.DEAL_COLUMNS,
    "ledger_flows": project.FLOW_COLUMNS,
}


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


class _KeysDisagree(ConflictError):
    """``ledger_log_keys`` hid an event that the log holds (see :data:`ledger.schema` ``ledger_log_keys``)."""


@contextmanager
def _keys_repaired(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """After an append refused because the lookup keys disagreed with the log (its transaction rolled
    back), rebuild the keys in a transaction of their own, so that running the command again works."""
    try:
        yield
    except _KeysDisagree:
        with _WRITE_LOCK, transaction(con):
            _rebuild_log_keys(con)
        raise


def append(
    con: duckdb.DuckDBPyConnection,
    events: Sequence[NewEvent],
    *,
    expected: Mapping[str, ExpectedVersion] | None = None,
) -> AppendResult:
    """Append ``events`` atomically (one transaction, one bulk insert)."""
    with _keys_repaired(con), _WRITE_LOCK, _gc_paused(), transaction(con):
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
    with _keys_repaired(con), _WRITE_LOCK, transaction(con):
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


#: The writer's view of the database before a batch, in one round trip (each was its own query, a
#: round trip apiece): the log's head (position, hash, time) from the PK (max + one point lookup:
#: ``ORDER BY position DESC LIMIT 1`` scanned the whole table; NULLs for an empty log), the recorded
#: head and the projection digest (row counts, and the row when there is one), the lookup keys' row
#: count and last position, and the log's row count. (Scalar subqueries around a LEFT JOIN of the head
#: made DuckDB take 30 ms for this; cross joins of one-row aggregates take 3.)
_STATE_SQL = """
    SELECT * FROM (SELECT position, hash, epoch_us(recorded_at) FROM ledger_log
                   WHERE position = (SELECT max(position) FROM ledger_log))
    RIGHT JOIN (SELECT 1) ON true
    CROSS JOIN (SELECT count(*), any_value(position), any_value(hash) FROM ledger_head)
    CROSS JOIN (SELECT count(*), any_value(projections), any_value(seal) FROM ledger_projection_digest)
    CROSS JOIN (SELECT count(*), max(position) FROM ledger_log_keys)
    CROSS JOIN (SELECT count(*) FROM ledger_log)
"""

#: Positions of the events whose id or stream key matches one of the batch's (``_ledger_lookup``: the
#: keys of its ids and streams, padded with NULLs). Two semi-joins on integer columns (one ``OR`` of
#: both is slower); the keys are computed in Python (:func:`id_key`): DuckDB's ``md5_number_lower`` took
#: twice as long for a batch.
_LOOKUP_SQL = """
    SELECT position FROM ledger_log_keys WHERE event_key IN (SELECT event_key FROM _ledger_lookup)
    UNION ALL
    SELECT position FROM ledger_log_keys WHERE stream_key IN (SELECT stream_key FROM _ledger_lookup)
"""

_ROW_COLUMNS = ("position, event_id, stream_id, stream_version, event_type, schema_version, payload, "
                "epoch_us(recorded_at)")

#: The key rows of log rows, as :func:`id_key` computes them (``md5_number_lower`` is the low 8 bytes of
#: the MD5, little-endian): MD5 is fixed by its standard, so the keys mean the same under every DuckDB
#: version (DuckDB's ``hash`` may change between versions).
_KEYS_SELECT = "SELECT position, md5_number_lower(event_id), md5_number_lower(stream_id) FROM "


def id_key(text: str) -> int:
    """The 64-bit lookup key of an event or stream id in ``ledger_log_keys`` (= DuckDB's
    ``md5_number_lower``; a test holds the two equal)."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[8:], "little")  # noqa: S324 - a lookup key, not a seal


def _lookup(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], streams: Sequence[str], keys: Mapping[str, int] | None,
) -> list[tuple[Any, ...]]:
    """The log rows (:data:`_ROW_COLUMNS`, in log order) whose event id is in ``ids`` or whose stream is
    in ``streams``: found through the integer keys (``keys``: id -> :func:`id_key`) if given, else by
    scanning the text columns.

    The keyed route returns exactly the scan's rows when the keys match the log. The caller checks what
    it can (every hit is filtered on the real strings here; :func:`_has_version_holes` sends a stream with
    a missing version back to the scan), and the log's UNIQUE constraints refuse the rest.
    """
    if keys is not None:
        pad = max(len(ids), len(streams))
        lookup = pl.DataFrame({
            "event_key": pl.Series([*(keys[i] for i in ids), *[None] * (pad - len(ids))], dtype=pl.UInt64),
            "stream_key": pl.Series([*(keys[s] for s in streams), *[None] * (pad - len(streams))], dtype=pl.UInt64),
        }).to_arrow()
        con.register("_ledger_lookup", lookup)
        try:
            positions = sorted({r[0] for r in con.execute(_LOOKUP_SQL).fetchall()})
        finally:
            con.unregister("_ledger_lookup")
    else:
        # Narrow first: the positions from the event_id and stream_id columns alone, then the whole rows
        # of the hits only (selecting the payload in the same query read every payload of the log).
        positions = [r[0] for r in con.execute(
            "SELECT position FROM ledger_log WHERE event_id IN (SELECT unnest(?::VARCHAR[])) "
            "OR stream_id IN (SELECT unnest(?::VARCHAR[]))", [list(ids), list(streams)]).fetchall()]
    if not positions:
        return []
    rows = con.execute(
        f"SELECT {_ROW_COLUMNS} FROM ledger_log WHERE position IN (SELECT unnest(?::BIGINT[])) ORDER BY position",  # noqa: S608
        [positions],
    ).fetchall()
    id_set, stream_set = set(ids), set(streams)
    return [r for r in rows if r[1] in id_set or r[2] in stream_set]


def _read_state(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], streams: Sequence[str], keys: Mapping[str, int],
) -> tuple[tuple[int, str, int, int, int, Any, Any], list[tuple[Any, ...]]]:
    """The writer's view before a batch: ((head position, head hash, head time in us, recorded head rows,
    digest rows, digest text, seal), the :func:`_lookup` rows of ``ids`` and ``streams``). Refuses to go
    on when the recorded head disagrees with the log; repairs the lookup keys when they disagree."""
    (head_pos_, head_hash_, last_us_, _one, n_recorded, rec_pos, rec_hash, n_digest, digest_text, digest_seal,
     n_keys, keys_top, n_log) = con.execute(_STATE_SQL).fetchall()[0]
    head_pos, head_hash, last_us = ((int(head_pos_), str(head_hash_), int(last_us_)) if head_pos_ is not None
                                    else (0, GENESIS, 0))
    if n_recorded > 1:
        raise ConflictError(
            f"ledger_head holds {n_recorded} rows instead of one: it was edited outside carousel; appending "
            "now would hide it (run `carousel ledger verify`)"
        )
    if n_recorded and (int(rec_pos), str(rec_hash)) != (head_pos, head_hash):
        raise ConflictError(
            f"the log ends at position {head_pos} but its recorded head is position {rec_pos}: events "
            "were removed or added outside carousel; appending now would hide it (run `carousel ledger verify`)"
        )
    # Keys missing or left over (a database older than them, rows inserted or deleted by hand): this batch
    # scans, and the keys are rebuilt from the log in the same transaction.
    keyed = n_keys == n_log and (keys_top or 0) == head_pos
    if not keyed:
        _rebuild_log_keys(con)
    rows = _lookup(con, ids, streams, keys if keyed else None)
    if keyed and _has_version_holes(rows, streams):
        # A key no longer matches its row (edited outside carousel): scan, and repair the keys.
        rows = _lookup(con, ids, streams, None)
        _rebuild_log_keys(con)
    return (head_pos, head_hash, last_us, int(n_recorded), int(n_digest), digest_text, digest_seal), rows


def _has_version_holes(rows: Iterable[tuple[Any, ...]], streams: Iterable[str]) -> bool:
    """Whether the found events of some of ``streams`` do not hold versions 1..n (a key that no longer
    matches its row hid one of them: the writer then scans instead)."""
    wanted = set(streams)
    count: dict[str, int] = {}
    top: dict[str, int] = {}
    for r in rows:
        if r[2] in wanted:
            count[r[2]] = count.get(r[2], 0) + 1
            top[r[2]] = max(top.get(r[2], 0), int(r[3]))
    return count != top


def _append_locked(
    con: duckdb.DuckDBPyConnection, events: Sequence[NewEvent], expected: Mapping[str, ExpectedVersion]
) -> AppendResult:
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConflictError(f"event id {dup} appears twice in one batch")
    keys = {t: id_key(t) for t in (*ids, *(e.stream_id for e in events), *expected)}
    # One lookup for the batch's ids and for the streams it writes to (and those it names in
    # ``expected``): the existing events with these ids (compared below), and the earlier events of
    # these streams (their current versions, and what the projection refresh folds with the batch).
    streams = sorted({e.stream_id for e in events} | set(expected))
    # DuckDB reads the head and the lookup while this thread writes the canonical JSON (:mod:`ledger.overlap`).
    # A payload that cannot be written (a float) is left to the loop below, which raises where it always did.
    reading = _start(lambda: _read_state(con, ids, streams, keys))
    try:
        texts: list[str] | None = [e.payload_json for e in events]
    except Exception:  # any payload error is raised by the loop below, in its old order
        texts = None
    finally:
        (head_pos, head_hash, last_us, n_recorded, n_digest, digest_text, digest_seal), rows = reading.join()
    id_set = set(ids)
    existing = {r[1]: (r[2], r[4], r[5], r[6]) for r in rows if r[1] in id_set}
    fresh: list[NewEvent] = []
    payloads: list[str] = []
    for i, e in enumerate(events):
        old = existing.get(e.event_id)
        # computed once per event (the canonical text is what is hashed and stored)
        payload = texts[i] if texts is not None else e.payload_json
        if old is None:
            fresh.append(e)
            payloads.append(payload)
        elif old != (e.stream_id, e.event_type, e.version, payload):
            remedy = ("record a DealCorrected instead" if str(old[1]).startswith("Deal") else
                      "a registered company cannot be changed; register it under a new company id")
            raise ConflictError(
                f"event id {e.event_id} already exists with different content "
                f"(stream {old[0]}, type {old[1]}); events are immutable: {remedy}"
            )
    if not fresh:
        return AppendResult(0, len(events), head_pos, head_hash)

    wanted = {e.stream_id for e in fresh} | set(expected)
    older = _stored_events(r for r in rows if r[2] in wanted)
    current: dict[str, int] = {}
    for ev in older:
        current[ev.stream_id] = max(current.get(ev.stream_id, 0), ev.stream_version)
    for stream, want in expected.items():
        have = current.get(stream)
        if want == "no_stream" and have is not None:
            raise ConflictError(f"stream {stream} already exists (version {have}); expected no stream")
        if isinstance(want, int) and not isinstance(want, bool) and have != want:
            raise ConflictError(
                f"stream {stream} is at version {have if have is not None else 'none'}, expected {want}"
            )
    _check_deal_streams(fresh, current)

    n = len(fresh)
    first, ts0 = head_pos + 1, max(_now_us(), last_us + 1)
    versions = dict(current)
    stream_versions = []
    for e in fresh:
        sv = versions[e.stream_id] = versions.get(e.stream_id, 0) + 1
        stream_versions.append(sv)
    schema_versions = [e.version for e in fresh]
    # The chain is sequential by construction; this loop is the per-event work an append cannot avoid
    # (the same text as :func:`chain_hash`, built with one f-string instead of a join of str() calls).
    hashes: list[str] = []
    prev = head_hash
    sha = hashlib.sha256
    for i, (e, sv, ver, payload) in enumerate(zip(fresh, stream_versions, schema_versions, payloads, strict=True)):
        prev = sha(f"{prev}|{first + i}|{e.event_id}|{e.stream_id}|{sv}|{e.event_type}|{ver}|{ts0 + i}|{payload}"
                   .encode()).hexdigest()
        hashes.append(prev)
    batch = pl.DataFrame({
        "position": pl.int_range(first, first + n, dtype=pl.Int64, eager=True),
        "event_id": [e.event_id for e in fresh],
        "stream_id": [e.stream_id for e in fresh],
        "stream_version": pl.Series(stream_versions, dtype=pl.Int64),
        "event_type": [e.event_type for e in fresh],
        "schema_version": pl.Series(schema_versions, dtype=pl.Int32),
        "payload": payloads,
        "recorded_at_us": pl.int_range(ts0, ts0 + n, dtype=pl.Int64, eager=True),
        "prev_hash": [head_hash, *hashes[:-1]],
        "hash": hashes,
        "event_key": pl.Series([keys[e.event_id] for e in fresh], dtype=pl.UInt64),
        "stream_key": pl.Series([keys[e.stream_id] for e in fresh], dtype=pl.UInt64),
    }).to_arrow()
    con.register("_ledger_batch", batch)
    try:
        # DuckDB inserts the log and key rows while this thread parses the payloads back and builds the
        # projection rows (:mod:`ledger.overlap`); an error of the insert is raised first, as before.
        insert = _start(lambda: _insert_log_rows(con))
        try:
            stored = _stored_batch(fresh, payloads, stream_versions, first, ts0)
            touched = {e.stream_id for e in stored}
            older = [e for e in older if e.stream_id in touched]  # not the streams only named in ``expected``
            frames = project.batch_frames([*older, *stored])
        finally:
            insert.join()
    finally:
        # After a failed insert the transaction is aborted and DuckDB refuses even this; the next register
        # of the name replaces the view anyway.
        with suppress(duckdb.TransactionException):
            con.unregister("_ledger_batch")
    pos, new_head = first + n - 1, hashes[-1]
    recorded_digest = (digest_text, digest_seal) if n_digest == 1 else None
    _refresh_projections(con, older, frames, head_hash, new_head, recorded_digest)
    _set_head(con, pos, new_head, exists=bool(n_recorded))
    return AppendResult(n, len(events) - n, pos, new_head)


#: Whether the append overlaps its DuckDB calls with its Python work (:mod:`ledger.overlap`); the test of
#: the overlap compares the databases written both ways.
OVERLAP = True


def _start(fn: Callable[[], T]) -> Background[T] | Done[T]:
    """``fn`` on a helper thread, or run here at once when :data:`OVERLAP` is off (the same calls, the
    same order of errors: the caller joins before it looks at anything ``fn`` touches)."""
    return Background(fn) if OVERLAP else Done(fn)


def _insert_log_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Insert the registered ``_ledger_batch`` into ``ledger_log`` and ``ledger_log_keys``: one call for
    both statements (inside the caller's transaction), so the helper thread needs the GIL once."""
    try:
        con.execute(
            "INSERT INTO ledger_log SELECT position, event_id, stream_id, stream_version, event_type, "
            "schema_version, payload, make_timestamptz(recorded_at_us), prev_hash, hash FROM _ledger_batch; "
            "INSERT INTO ledger_log_keys SELECT position, event_key, stream_key FROM _ledger_batch"
        )
    except duckdb.ConstraintException as exc:
        # Only a lookup key edited to another value hides an existing id or stream version from the
        # checks above; the log's UNIQUE constraints then refuse the duplicate (nothing is written).
        raise _KeysDisagree(
            "an event id or stream version of this batch is already in the log, but ledger_log_keys did "
            "not show it (the table was edited outside carousel). Nothing of this append was written and "
            f"the keys have been rebuilt from the log: run the command again. ({str(exc).splitlines()[0]})"
        ) from None


def _stored_batch(fresh: Sequence[NewEvent], payloads: Sequence[str], stream_versions: Sequence[int],
                  first: int, ts0: int) -> list[StoredEvent]:
    """The batch's events exactly as read() gives them back: parsed from the canonical text (so a Decimal
    or tuple in the caller's payload projects as its stored string or list), upcast if given in an older
    version. One json.loads of the whole batch: the texts are canonical JSON values that this append
    just wrote, so the array splits exactly into them, and one C call replaces a thousand Python-level ones."""
    datas = json.loads("[" + ",".join(payloads) + "]", parse_float=Decimal)
    return [
        StoredEvent(first + i, e.event_id, e.stream_id, sv, e.event_type, CURRENT_VERSION[e.event_type],
                    data if e.version == CURRENT_VERSION[e.event_type] else upcast(e.event_type, e.version, data),
                    ts0 + i)
        for i, (e, sv, data) in enumerate(zip(fresh, stream_versions, datas, strict=True))
    ]


def _rebuild_log_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute ``ledger_log_keys`` from the log (the caller's transaction)."""
    con.execute("DELETE FROM ledger_log_keys")
    con.execute("INSERT INTO ledger_log_keys " + _KEYS_SELECT + "ledger_log")


def sync_log_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Schema setup: rebuild ``ledger_log_keys`` when it does not hold one row per log row (a database
    older than the keys); writes nothing when it does."""
    n_log, n_keys, log_top, keys_top = con.execute(
        "SELECT (SELECT count(*) FROM ledger_log), (SELECT count(*) FROM ledger_log_keys), "
        "(SELECT max(position) FROM ledger_log), (SELECT max(position) FROM ledger_log_keys)").fetchall()[0]
    if (n_log, log_top) != (n_keys, keys_top):
        with _WRITE_LOCK, transaction(con):
            _rebuild_log_keys(con)


def _stored_events(rows: Iterable[tuple[Any, ...]]) -> list[StoredEvent]:
    """StoredEvents from ``(position, event_id, stream_id, stream_version, event_type, schema_version,
    payload, recorded_at_us)`` rows, payloads upcast to the current schema versions."""
    out = []
    for pos, eid, sid, sv, et, ver, payload, us in rows:
        data = json.loads(payload, parse_float=Decimal)
        out.append(StoredEvent(int(pos), eid, sid, int(sv), et, CURRENT_VERSION[et], upcast(et, int(ver), data), int(us)))
    return out


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


def _frames_digest(con: duckdb.DuckDBPyConnection, frames: Mapping[str, pl.DataFrame]) -> digest.Digest:
    return {t: digest.frame_sums(con, frames[t], _SCHEMAS[t]) for t in digest.TABLES}


def _refresh_projections(
    con: duckdb.DuckDBPyConnection, older: Sequence[StoredEvent], frames: Mapping[str, pl.DataFrame],
    old_head: str, new_head: str, recorded: tuple[str | None, str | None] | None,
) -> None:
    """Rewrite the projection rows of the streams touched by this append (same transaction), and move the
    projection digest from the old rows of those streams to their new ones (:mod:`ledger.digest`).

    ``frames`` are :func:`ledger.project.batch_frames` of the touched streams' events: the new ones from
    the in-memory batch (already canonical, current schema version), not re-read from the table just
    written, and ``older``, the earlier events of the touched streams (the append's stream query read
    them). A new deal (the bulk of an import) therefore costs no query at all.
    """
    old_companies = sorted({e.payload["company_id"] for e in older if e.event_type == "CompanyRegistered"})
    old_deals = sorted({e.payload["deal_id"] for e in older if "deal_id" in e.payload})
    if old_companies:
        con.execute("DELETE FROM ledger_companies WHERE company_id IN (SELECT unnest(?::VARCHAR[]))", [old_companies])
    if old_deals:
        con.execute("DELETE FROM ledger_deals WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))", [old_deals])
        con.execute("DELETE FROM ledger_flows WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))", [old_deals])
    added = {t: digest.insert_and_sum(con, t, frames[t], _SCHEMAS[t]) for t in digest.TABLES}
    _advance_digest(con, older, added, old_head, new_head, recorded)


def _advance_digest(
    con: duckdb.DuckDBPyConnection, older: Sequence[StoredEvent], added: digest.Digest,
    old_head: str, new_head: str, recorded: tuple[str | None, str | None] | None,
) -> None:
    """new digest = recorded digest - rows the touched streams gave before + rows they give now.

    The old rows are rebuilt from the streams' earlier events (not read from the tables, which may have
    been edited since: the digest describes the log, never the stored rows). A recorded digest whose
    seal does not match the old head is not advanced (it stays unusable, and verify replays the log).
    ``recorded`` is the digest row read with the head (None: not exactly one row).
    """
    if recorded is None:
        return
    text, seal = recorded
    before = digest.from_text(text)
    if before is None or seal != digest.seal(old_head, str(text)):
        con.execute("UPDATE ledger_projection_digest SET projections = NULL, seal = NULL")
        return
    after = digest.combine(before, added)
    if older:
        after = digest.combine(after, _frames_digest(con, project.batch_frames(older)), -1)
    new_text = digest.to_text(after)
    con.execute("UPDATE ledger_projection_digest SET projections = ?, seal = ?",
                [new_text, digest.seal(new_head, new_text)])


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


#: The ledger tables every carousel that records a schema fingerprint creates (``ledger_head`` is older
#: than fingerprints): one of them missing where the marker records an applied schema was dropped outside
#: carousel (:func:`verify` reports it; ``ledger.schema`` refuses to recreate it at a read-write open).
REQUIRED_TABLES = ("ledger_log", "ledger_companies", "ledger_deals", "ledger_flows", "ledger_head")


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
    return _stored_events(con.execute(sql, params).fetchall())


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`. When not ok, ``check`` says which check failed:

    * ``"chain"``: the hash chain (``broken_position`` is the first bad event);
    * ``"head"``: the log's head differs from the recorded ``ledger_head`` (``broken_position`` is the
      first missing or unrecorded position);
    * ``"missing"``: a ledger table was dropped (``broken_position`` is None), or ``ledger_head`` was
      dropped from a database whose schema marker records an applied schema (the projections are still
      compared: ``reason`` names their first difference too, and ``broken_position`` is its position);
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


def verify(con: duckdb.DuckDBPyConnection, *, projections: bool = True, full: bool = False) -> VerifyReport:
    """Recompute the hash chain from the genesis, check the recorded head and the projections.

    Chain: detects an edited payload/type/stream/time (hash mismatch), a re-ordered or deleted event (gap
    or prev_hash mismatch), a non-canonical payload, and recorded_at going backwards. Head: detects
    deleted (or foreign) events at the end of the log, which leave a valid shorter chain. Projections:
    compares companies, deals and flows with what the log gives; ``projections=False`` skips that.

    Two routes, one verdict. The fast one runs in DuckDB (:func:`_fast_verify`): the whole chain
    recomputed in SQL, the head, and the stored projections' digest against the one the writer recorded
    for the log (:mod:`ledger.digest`). When it cannot vouch for the database (anything differs, or there
    is no usable digest) the full route decides and names the first difference: it replays every event
    in Python (canonical JSON, the fold, the projection rows). ``full=True`` takes the full route at once.
    """
    if not full:
        fast = _fast_verify(con, projections=projections)
        if fast is not None:
            return fast
    with _gc_paused():
        return _verify(con, projections=projections)


#: The chain recomputed in SQL: the same text as :func:`chain_hash`, per row from its stored prev_hash,
#: and every row's prev_hash, position and time against the row before it. ``IS DISTINCT FROM`` so that
#: a NULL can never pass for a match.
_CHAIN_SQL = """
    SELECT count(*),
           count(*) FILTER (WHERE position IS DISTINCT FROM rn
                            OR prev_hash IS DISTINCT FROM coalesce(before_hash, ?)
                            OR us <= coalesce(before_us, -1)
                            OR event_type NOT IN (SELECT unnest(?::VARCHAR[]))
                            OR sha256(prev_hash || '|' || position || '|' || event_id || '|' || stream_id || '|'
                                      || stream_version || '|' || event_type || '|' || schema_version || '|'
                                      || us || '|' || payload) IS DISTINCT FROM hash),
           max(position), arg_max(hash, position)
    FROM (SELECT *, row_number() OVER w AS rn, lag(hash) OVER w AS before_hash,
                 epoch_us(recorded_at) AS us, lag(epoch_us(recorded_at)) OVER w AS before_us
          FROM ledger_log WINDOW w AS (ORDER BY position))
"""


def _fast_verify(con: duckdb.DuckDBPyConnection, *, projections: bool) -> VerifyReport | None:
    """The verdict "intact" from DuckDB alone, or None when it cannot be given (verify then replays).

    Intact means: every event's hash recomputes from its own fields and its prev_hash, which is the hash
    of the event before it (from the genesis), positions are 1..n, times increase, types are known; the
    head equals ``ledger_head``; and the stored projection rows have the digest that the writer recorded,
    sealed to this head, for the rows the log gives. Why that is enough: an event edited without
    re-chaining fails its hash; re-chained, it changes the head hash, which then differs from
    ``ledger_head`` and from the seal; a projection row edited, added or deleted changes the digest.
    Canonical JSON is then implied, not re-parsed: every payload under the seal was written (canonical)
    by the writer or checked by the fold that recorded the digest (:func:`_fold_log`). What it cannot
    see, a log re-chained with ``ledger_head``, digest and seal all recomputed, the full route cannot
    see either once the forger also rebuilds the projections; that is what the published anchor is for.
    """
    try:
        if not all(_has_table(con, t) for t in (
                "ledger_log", "ledger_head", "ledger_projection_digest", *digest.TABLES)):
            return None
        recorded = con.execute("SELECT position, hash FROM ledger_head").fetchall()
        sealed = con.execute("SELECT projections, seal FROM ledger_projection_digest").fetchall()
        if len(recorded) != 1 or len(sealed) != 1:
            return None
        n, bad, head_pos, head_hash = con.execute(_CHAIN_SQL, [GENESIS, sorted(CURRENT_VERSION)]).fetchall()[0]
        head_pos, head_hash = (int(head_pos), str(head_hash)) if n else (0, GENESIS)
        if bad or (int(recorded[0][0]), str(recorded[0][1])) != (head_pos, head_hash):
            return None
        text, seal = sealed[0]
        want = digest.from_text(text)
        if want is None or seal != digest.seal(head_hash, str(text)):
            return None
        if projections and digest.stored(con, _SCHEMAS) != want:
            return None
    except duckdb.Error:  # a table altered outside carousel (a column dropped or retyped): replay decides
        return None
    return VerifyReport(True, int(n), head_pos, head_hash)


def log_problem(con: duckdb.DuckDBPyConnection) -> str | None:
    """None if the log can be the source a repair rebuilds from: its chain recomputes (in SQL, as
    :func:`_fast_verify`) and its head equals ``ledger_head`` where that table exists; else why not.

    Why a repair asks: rebuilding the projections from a log edited outside carousel would launder the
    edit; deleted head events cannot be rebuilt from anything in the file.
    """
    if not _has_table(con, "ledger_log"):
        return "table ledger_log is missing: there is no log to rebuild from; restore the database from a backup"
    n, bad, head_pos, head_hash = con.execute(_CHAIN_SQL, [GENESIS, sorted(CURRENT_VERSION)]).fetchall()[0]
    if bad:
        return (f"{bad} event(s) of the log fail the hash chain (`carousel ledger verify` names the first): "
                "the log itself was changed; restore the database from a backup")
    has_head, recorded = _recorded_head(con)
    head = (int(head_pos), str(head_hash)) if n else (0, GENESIS)
    if has_head and len(recorded) == 1 and recorded[0] != head:
        return (f"the log's head (position {head[0]}) differs from the recorded head (position {recorded[0][0]}): "
                "events were removed or added outside carousel; restore the database from a backup")
    return None


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
    # The marker records that a carousel with ledger_head set this database up: the table was dropped.
    head_dropped = not has_head_table and stored_fingerprint(con) is not None
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

    # Without ledger_head and without a recorded schema fingerprint, no carousel that maintains the
    # projections by the current rule has written to this database (the first read-write open creates the
    # table and rebuilds the projections, see ledger.schema): they were written by an older rule, so they
    # are not compared. With a fingerprint the head was dropped: the projections are compared all the same,
    # and the report names both.
    diff = _compare_projections(con, state) if projections and (has_head_table or head_dropped) else None
    dropped = "table ledger_head missing: dropped outside carousel (the schema marker records that carousel's " \
              "schema, which creates it, was applied)"
    if diff is not None:
        table, stream, what = diff
        at = last_of_stream.get(stream, head_pos) if stream else head_pos
        reason = f"projection {table} differs from the log: {what}"
        return VerifyReport(False, n, head_pos, prev, at, f"{dropped}; {reason}" if head_dropped else reason,
                            "missing" if head_dropped else "projection")
    if head_dropped:
        return VerifyReport(False, n, head_pos, prev, None, dropped, "missing")
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


def _log_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, payload, "
        "epoch_us(recorded_at) FROM ledger_log ORDER BY position"
    ).fetchall()


def _write_digest(con: duckdb.DuckDBPyConnection, sums: digest.Digest | None) -> None:
    """Record ``sums`` (the digest of the projections of the whole log), sealed to the log's head; None
    records that there is none (the fast verify is then unavailable and verify replays the log)."""
    head = head_summary(con)[2] or GENESIS
    con.execute("DELETE FROM ledger_projection_digest")
    if sums is None:
        con.execute("INSERT INTO ledger_projection_digest VALUES (NULL, NULL)")
        return
    text = digest.to_text(sums)
    con.execute("INSERT INTO ledger_projection_digest VALUES (?, ?)", [text, digest.seal(head, text)])


def _fold_log(con: duckdb.DuckDBPyConnection) -> tuple[project.LedgerState, bool]:
    """The whole log folded, and whether every payload is canonical JSON. A digest is only recorded for
    a canonical log: a non-canonical payload means the log was rewritten outside carousel, and sealing
    it would let the fast verify vouch for it (the full one names it)."""
    rows = _log_rows(con)
    canonical = all(_canonical_payload(r[6])[0] for r in rows)
    return project.fold(_stored_events(rows)), canonical


def record_log_digest(con: duckdb.DuckDBPyConnection) -> None:
    """Record the digest of the projections the log gives, without rewriting the stored tables (schema
    setup of a database older than the digest: a stored row edited before then must still show)."""
    state, canonical = _fold_log(con)
    with _WRITE_LOCK, transaction(con):
        _write_digest(con, _frames_digest(con, project.projection_frames(state)) if canonical else None)


def rebuild_projections(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every projection table (and their digest) from the full log (repair / verification aid)."""
    state, canonical = _fold_log(con)
    with _WRITE_LOCK, transaction(con):
        for t in ("ledger_companies", "ledger_deals", "ledger_flows"):
            con.execute(f"DELETE FROM {t}")  # noqa: S608 - fixed table names
        frames = project.projection_frames(state)
        sums = {t: digest.insert_and_sum(con, t, frames[t], _SCHEMAS[t]) for t in digest.TABLES}
        if _has_table(con, "ledger_projection_digest"):
            _write_digest(con, sums if canonical else None)
