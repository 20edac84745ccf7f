"""A hash per price batch over its rows, chained from batch to batch, so ``verify`` can name an edit.

Why: ``price_rows`` and ``price_batches`` are append-only by convention only; an edited close, a deleted
row or a rewritten batch record used to pass ``verify``. Each batch now records

* ``rows_hash``: SHA-256 over its rows in (ticker, date) order, every value in DuckDB's text form
  (:data:`ROWS_HASH_SQL`; the same SQL computes it at append and at verify, one query for all batches);
* ``chain_hash``: SHA-256 over the previous batch's ``chain_hash`` and this batch's record including
  ``rows_hash`` (:func:`chain_link`), so an edit anywhere breaks every later link.

What the chain cannot see on its own: deleting the *newest* batch with its rows leaves a valid shorter
chain. The study tables' stamp names the price head they were computed from, and an anchor kept outside
the file (README, "What verify catches") covers the rest.

Databases from before the chain get it once, at their first read-write open (:func:`backfill`), and
only when *no* batch has one: a database in which some batches lack it was edited, and verify says so
instead of re-chaining it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from core.db import transaction

#: Genesis value of the chain (the "previous hash" of batch 1).
GENESIS = "0" * 64
#: SHA-256 of no rows (a batch that appended nothing).
EMPTY_ROWS_HASH = hashlib.sha256(b"").hexdigest()

_ROW_TEXT = (
    "concat_ws('|', ticker, date::VARCHAR, "
    + ", ".join(f"coalesce({c}::VARCHAR, '~')" for c in
                ("open", "high", "low", "close", "adj_close", "volume", "dividends", "splits"))
    + ")"
)
#: batch_id -> rows_hash, n_rows for the batches selected by the WHERE clause appended to it.
ROWS_HASH_SQL = (
    f"SELECT batch_id, sha256(string_agg({_ROW_TEXT}, chr(10) ORDER BY ticker, date)), count(*) "  # noqa: S608
    "FROM price_rows"
)


def rows_hashes(con: duckdb.DuckDBPyConnection, batch_id: int | None = None) -> dict[int, tuple[str, int]]:
    """Recompute rows_hash (and the row count) per batch from ``price_rows``; one query."""
    if batch_id is None:
        rows = con.execute(ROWS_HASH_SQL + " GROUP BY batch_id").fetchall()
    else:
        rows = con.execute(ROWS_HASH_SQL + " WHERE batch_id = ? GROUP BY batch_id", [batch_id]).fetchall()
    return {int(b): (str(h), int(n)) for b, h, n in rows}


def chain_link(prev: str, record: dict[str, Any]) -> str:
    """The chain hash of one batch: SHA-256 of the previous link and the batch's canonical record."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


_RECORD_COLUMNS = ("batch_id", "source", "fetched_at", "tickers", "start", "end", "status", "row_count",
                   "message", "content_hash", "rows_hash")
_RECORD_SQL = (
    "SELECT batch_id, source, epoch_us(fetched_at), tickers, start::VARCHAR, \"end\"::VARCHAR, status, "
    "row_count, message, content_hash, rows_hash, chain_hash FROM price_batches"
)


def record_of(values: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    """The hashed record of a batch from the first 11 columns of :data:`_RECORD_SQL`."""
    rec = dict(zip(_RECORD_COLUMNS, values, strict=False))
    rec["tickers"] = list(rec["tickers"]) if rec["tickers"] is not None else None
    return rec


def link_new_batch(con: duckdb.DuckDBPyConnection, batch_id: int) -> None:
    """Record rows_hash and chain_hash of a batch just inserted (its rows too), in the caller's transaction.

    The record is read back with the same SQL verify uses, so both hash the same text.
    """
    got = rows_hashes(con, batch_id)
    rows_hash = got[batch_id][0] if batch_id in got else EMPTY_ROWS_HASH
    prev = con.execute("SELECT chain_hash FROM price_batches WHERE batch_id = ?", [batch_id - 1]).fetchall()
    prev_hash = (prev[0][0] or GENESIS) if prev else GENESIS
    rec = con.execute(_RECORD_SQL + " WHERE batch_id = ?", [batch_id]).fetchall()[0]
    chain = chain_link(prev_hash, record_of([*rec[:10], rows_hash]))
    con.execute("UPDATE price_batches SET rows_hash = ?, chain_hash = ? WHERE batch_id = ?",
                [rows_hash, chain, batch_id])


def backfill(con: duckdb.DuckDBPyConnection) -> int:
    """Chain a database from before the chain (no batch has a chain_hash); returns batches chained."""
    counts = con.execute(
        "SELECT count(*), count(chain_hash) FROM price_batches").fetchall()[0]
    if counts[0] == 0 or counts[1] > 0:
        return 0
    hashes = rows_hashes(con)
    batches = con.execute(_RECORD_SQL + " ORDER BY batch_id").fetchall()
    prev = GENESIS
    updates = []
    for b in batches:
        rows_hash = hashes.get(int(b[0]), (EMPTY_ROWS_HASH, 0))[0]
        prev = chain_link(prev, record_of([*b[:10], rows_hash]))
        updates.append((rows_hash, prev, int(b[0])))
    with transaction(con):
        con.executemany("UPDATE price_batches SET rows_hash = ?, chain_hash = ? WHERE batch_id = ?", updates)
    return len(updates)


@dataclass
class PriceVerify:
    batches: int = 0
    rows: int = 0
    head_batch: int | None = None
    head_hash: str | None = None
    problems: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_prices(con: duckdb.DuckDBPyConnection) -> PriceVerify:
    """Recompute every batch's rows_hash and the chain; name each batch that does not match."""
    rep = PriceVerify()
    has_chain = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = 'price_batches' AND column_name = 'chain_hash'").fetchall()[0][0]
    if not has_chain:
        # A database from before the chain, opened read-only: nothing to check yet.
        rep.note = "no price chain yet (a database from before it; chained at its next read-write open)"
        rep.batches = int(con.execute("SELECT count(*) FROM price_batches").fetchall()[0][0])
        return rep
    hashes = rows_hashes(con)
    batches = con.execute(_RECORD_SQL + " ORDER BY batch_id").fetchall()
    rep.batches, rep.rows = len(batches), sum(n for _, n in hashes.values())
    known = {int(b[0]) for b in batches}
    orphans = sorted(set(hashes) - known)
    if orphans:
        rep.problems.append(f"price_rows has rows of batch(es) {', '.join(map(str, orphans[:5]))} that "
                            "price_batches does not record")
    prev = GENESIS
    for i, b in enumerate(batches):
        bid = int(b[0])
        if bid != i + 1:
            rep.problems.append(f"batch {bid}: batch ids jump from {i} (a batch was deleted)")
            break
        rows_hash, n = hashes.get(bid, (EMPTY_ROWS_HASH, 0))
        if b[10] is None or b[11] is None:
            rep.problems.append(f"batch {bid}: no rows_hash/chain_hash recorded (erased, or rows added "
                                "outside carousel)")
            break
        if rows_hash != b[10]:
            rep.problems.append(f"batch {bid}: its rows in price_rows were changed, added or deleted "
                                f"(rows hash {rows_hash[:12]}..., recorded {str(b[10])[:12]}...)")
            break
        if n != b[7]:
            rep.problems.append(f"batch {bid}: {n} rows stored, row_count says {b[7]}")
            break
        prev = chain_link(prev, record_of(b[:11]))
        if prev != b[11]:
            rep.problems.append(f"batch {bid}: the batch record (source, time, tickers, dates, status, counts "
                                "or message) was changed, or the chain re-linked")
            break
    if batches and rep.ok:
        rep.head_batch, rep.head_hash = int(batches[-1][0]), str(batches[-1][11])
    return rep


__all__ = ["EMPTY_ROWS_HASH", "GENESIS", "PriceVerify", "backfill", "chain_link", "link_new_batch", "rows_hashes",
           "verify_prices"]
