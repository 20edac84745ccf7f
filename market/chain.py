"""A hash per stored batch over its rows, chained from batch to batch, so ``verify`` can name an edit.

Why: the price store (``price_batches``/``price_rows``) and the share-count store
(``share_batches``/``share_rows``) are append-only by convention only; an edited close or count, a
deleted row or a rewritten batch record used to pass ``verify``. Both stores have the same shape (a
batch table keyed by a gap-free ``batch_id``, a rows table pointing at it), so one chain serves both,
described by a :class:`BatchChain` (:data:`PRICE_CHAIN`, :data:`SHARE_CHAIN`). Each batch records

* ``rows_hash``: SHA-256 over its rows in a total order, every value in DuckDB's text form (the same
  SQL computes it at append and at verify, one query for all batches);
* ``chain_hash``: SHA-256 over the previous batch's ``chain_hash`` and this batch's record including
  ``rows_hash`` (:func:`chain_link`), so an edit anywhere breaks every later link.

What a chain cannot see on its own: deleting the *newest* batch with its rows leaves a valid shorter
chain, and someone who recomputes every hash after an edit leaves a chain consistent with itself. The
study tables' stamp names the heads they were computed from, and an anchor kept outside the file
(``carousel ledger anchor``; :func:`check_head`) catches both (README, "What verify catches").

Databases from before a chain get it once, at their first read-write open (:func:`backfill`), and
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

#: Genesis value of a chain (the "previous hash" of batch 1, and the head of a store with no batch).
GENESIS = "0" * 64
#: SHA-256 of no rows (a batch that appended nothing).
EMPTY_ROWS_HASH = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class BatchChain:
    """Which tables a chain covers and what of them it hashes.

    ``row_text`` is the SQL text of one row (every stored column), ``order`` a total order of a batch's
    rows for ``string_agg``, ``record`` the (name, SQL expression) pairs of the hashed batch record (the
    batch table's columns except the two hashes), in the order :func:`record_of` reads them.
    """

    name: str
    batches: str
    rows: str
    row_text: str
    order: str
    record: tuple[tuple[str, str], ...]

    @property
    def rows_hash_sql(self) -> str:
        """batch_id, rows_hash, n_rows for the batches selected by the WHERE clause appended to it."""
        return (f"SELECT batch_id, sha256(string_agg({self.row_text}, chr(10) ORDER BY {self.order})), "  # noqa: S608
                f"count(*) FROM {self.rows}")  # only this module's constant SQL is interpolated

    @property
    def record_sql(self) -> str:
        """The batch records with rows_hash and chain_hash last."""
        return (f"SELECT {', '.join(expr for _, expr in self.record)}, rows_hash, chain_hash "  # noqa: S608
                f"FROM {self.batches}")  # only this module's constant SQL is interpolated

    @property
    def names(self) -> tuple[str, ...]:
        return (*(n for n, _ in self.record), "rows_hash")

    def at(self, column: str) -> int:
        """Position of a record column in a row of :attr:`record_sql`."""
        return self.names.index(column)


_PRICE_ROW_TEXT = (
    "concat_ws('|', ticker, date::VARCHAR, "
    + ", ".join(f"coalesce({c}::VARCHAR, '~')" for c in
                ("open", "high", "low", "close", "adj_close", "volume", "dividends", "splits"))
    + ")"
)
# Share rows hold free text (class detail, source reference): a JSON list of the values' text is
# unambiguous where a '|'-joined text would let a '|' move between two fields unseen.
_SHARE_ROW_TEXT = (
    "to_json(list_value(ticker, as_of_date::VARCHAR, "
    + ", ".join(f"{c}::VARCHAR" for c in ("shares", "shares_split_adjusted", "class_detail", "count_basis",
                                          "source_ref", "filing_date", "verification", "withdrawn"))
    + "))"
)

#: ``price_batches`` / ``price_rows`` (market.store). Its hashes are stored in existing databases: the
#: row text, order and record must never change.
PRICE_CHAIN = BatchChain(
    name="price",
    batches="price_batches",
    rows="price_rows",
    row_text=_PRICE_ROW_TEXT,
    order="ticker, date",
    record=(("batch_id", "batch_id"), ("source", "source"), ("fetched_at", "epoch_us(fetched_at)"),
            ("tickers", "tickers"), ("start", "start::VARCHAR"), ("end", '"end"::VARCHAR'),
            ("status", "status"), ("row_count", "row_count"), ("message", "message"),
            ("content_hash", "content_hash")),
)
#: ``share_batches`` / ``share_rows`` (market.shares_store). A batch holds one row per (ticker,
#: as_of_date); the row text breaks ties only in a database edited to hold more.
SHARE_CHAIN = BatchChain(
    name="share",
    batches="share_batches",
    rows="share_rows",
    row_text=_SHARE_ROW_TEXT,
    order=f"ticker, as_of_date, {_SHARE_ROW_TEXT}",
    record=(("batch_id", "batch_id"), ("source", "source"), ("fetched_at", "epoch_us(fetched_at)"),
            ("tickers", "tickers"), ("status", "status"), ("row_count", "row_count"), ("message", "message"),
            ("content_hash", "content_hash")),
)


def rows_hashes(con: duckdb.DuckDBPyConnection, batch_id: int | None = None,
                chain: BatchChain = PRICE_CHAIN) -> dict[int, tuple[str, int]]:
    """Recompute rows_hash (and the row count) per batch from the rows table; one query."""
    if batch_id is None:
        rows = con.execute(chain.rows_hash_sql + " GROUP BY batch_id").fetchall()
    else:
        rows = con.execute(chain.rows_hash_sql + " WHERE batch_id = ? GROUP BY batch_id", [batch_id]).fetchall()
    return {int(b): (str(h), int(n)) for b, h, n in rows}


def chain_link(prev: str, record: dict[str, Any]) -> str:
    """The chain hash of one batch: SHA-256 of the previous link and the batch's canonical record."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def record_of(values: tuple[Any, ...] | list[Any], chain: BatchChain = PRICE_CHAIN) -> dict[str, Any]:
    """The hashed record of a batch from the record columns and rows_hash of :attr:`BatchChain.record_sql`."""
    rec = dict(zip(chain.names, values, strict=False))
    rec["tickers"] = list(rec["tickers"]) if rec["tickers"] is not None else None
    return rec


def link_new_batch(con: duckdb.DuckDBPyConnection, batch_id: int, chain: BatchChain = PRICE_CHAIN) -> None:
    """Record rows_hash and chain_hash of a batch just inserted (its rows too), in the caller's transaction.

    The record is read back with the same SQL verify uses, so both hash the same text.
    """
    got = rows_hashes(con, batch_id, chain)
    rows_hash = got[batch_id][0] if batch_id in got else EMPTY_ROWS_HASH
    prev = con.execute(f"SELECT chain_hash FROM {chain.batches} WHERE batch_id = ?",  # noqa: S608 - constant
                       [batch_id - 1]).fetchall()
    prev_hash = (prev[0][0] or GENESIS) if prev else GENESIS
    rec = con.execute(chain.record_sql + " WHERE batch_id = ?", [batch_id]).fetchall()[0]
    link = chain_link(prev_hash, record_of([*rec[:len(chain.record)], rows_hash], chain))
    con.execute(f"UPDATE {chain.batches} SET rows_hash = ?, chain_hash = ? WHERE batch_id = ?",  # noqa: S608
                [rows_hash, link, batch_id])


def backfill(con: duckdb.DuckDBPyConnection, chain: BatchChain = PRICE_CHAIN) -> int:
    """Chain a database from before the chain (no batch has a chain_hash); returns batches chained."""
    counts = con.execute(
        f"SELECT count(*), count(chain_hash) FROM {chain.batches}").fetchall()[0]  # noqa: S608 - constant
    if counts[0] == 0 or counts[1] > 0:
        return 0
    hashes = rows_hashes(con, None, chain)
    batches = con.execute(chain.record_sql + " ORDER BY batch_id").fetchall()
    prev = GENESIS
    updates = []
    for b in batches:
        rows_hash = hashes.get(int(b[0]), (EMPTY_ROWS_HASH, 0))[0]
        prev = chain_link(prev, record_of([*b[:len(chain.record)], rows_hash], chain))
        updates.append((rows_hash, prev, int(b[0])))
    with transaction(con):
        con.executemany(f"UPDATE {chain.batches} SET rows_hash = ?, chain_hash = ? WHERE batch_id = ?",  # noqa: S608
                        updates)
    return len(updates)


@dataclass
class ChainVerify:
    batches: int = 0
    rows: int = 0
    head_batch: int | None = None
    head_hash: str | None = None
    problems: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


#: The price chain's report (its name before the share chain existed).
PriceVerify = ChainVerify


def has_chain(con: duckdb.DuckDBPyConnection, chain: BatchChain) -> bool:
    """True if the batch table has the chain columns (a database from before the chain has not)."""
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ? AND column_name = 'chain_hash'", [chain.batches]).fetchall()[0][0])


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?",
        [table]).fetchall()[0][0])


def verify_chain(con: duckdb.DuckDBPyConnection, chain: BatchChain) -> ChainVerify:
    """Recompute every batch's rows_hash and the chain; name the first batch that does not match."""
    rep = ChainVerify()
    if not _has_table(con, chain.batches):
        # A database from before these tables (e.g. the share tables), opened read-only.
        rep.note = f"no {chain.name} tables yet (a database from before them)"
        return rep
    if not has_chain(con, chain):
        # A database from before the chain, opened read-only: nothing to check yet.
        rep.note = (f"no {chain.name} chain yet (a database from before it; chained at its next read-write "
                    "open)")
        rep.batches = int(con.execute(f"SELECT count(*) FROM {chain.batches}").fetchall()[0][0])  # noqa: S608
        return rep
    hashes = rows_hashes(con, None, chain)
    batches = con.execute(chain.record_sql + " ORDER BY batch_id").fetchall()
    rep.batches, rep.rows = len(batches), sum(n for _, n in hashes.values())
    known = {int(b[0]) for b in batches}
    orphans = sorted(set(hashes) - known)
    if orphans:
        rep.problems.append(f"{chain.rows} has rows of batch(es) {', '.join(map(str, orphans[:5]))} that "
                            f"{chain.batches} does not record")
    n_rec, at_count = len(chain.record), chain.at("row_count")
    prev = GENESIS
    for i, b in enumerate(batches):
        bid = int(b[0])
        if bid != i + 1:
            rep.problems.append(f"batch {bid}: batch ids jump from {i} (a batch was deleted)")
            break
        rows_hash, n = hashes.get(bid, (EMPTY_ROWS_HASH, 0))
        if b[n_rec] is None or b[n_rec + 1] is None:
            rep.problems.append(f"batch {bid}: no rows_hash/chain_hash recorded (erased, or rows added "
                                "outside carousel)")
            break
        if rows_hash != b[n_rec]:
            rep.problems.append(f"batch {bid}: its rows in {chain.rows} were changed, added or deleted "
                                f"(rows hash {rows_hash[:12]}..., recorded {str(b[n_rec])[:12]}...)")
            break
        if n != b[at_count]:
            rep.problems.append(f"batch {bid}: {n} rows stored, row_count says {b[at_count]}")
            break
        prev = chain_link(prev, record_of(b[:n_rec + 1], chain))
        if prev != b[n_rec + 1]:
            rep.problems.append(f"batch {bid}: the batch record (source, time, tickers, status, counts or "
                                "message) was changed, or the chain re-linked")
            break
    if batches and rep.ok:
        rep.head_batch, rep.head_hash = int(batches[-1][0]), str(batches[-1][n_rec + 1])
    return rep


def verify_prices(con: duckdb.DuckDBPyConnection) -> ChainVerify:
    """:func:`verify_chain` of the price store."""
    return verify_chain(con, PRICE_CHAIN)


def verify_shares(con: duckdb.DuckDBPyConnection) -> ChainVerify:
    """:func:`verify_chain` of the share-count store."""
    return verify_chain(con, SHARE_CHAIN)


def head(con: duckdb.DuckDBPyConnection, chain: BatchChain) -> tuple[int, str | None]:
    """(newest batch id, its chain hash) as stored; (0, GENESIS) for a store without batches.

    What an anchor records. The hash is None in a database from before the chain.
    """
    if not _has_table(con, chain.batches):
        return 0, GENESIS
    col = "chain_hash" if has_chain(con, chain) else "NULL"
    r = con.execute(f"SELECT batch_id, {col} FROM {chain.batches} "  # noqa: S608 - constant names
                    "ORDER BY batch_id DESC LIMIT 1").fetchall()
    return (0, GENESIS) if not r else (int(r[0][0]), None if r[0][1] is None else str(r[0][1]))


def check_head(con: duckdb.DuckDBPyConnection, chain: BatchChain, batch: int, link: str) -> str | None:
    """None if the store still holds the anchored (batch, chain hash); else a reason.

    Meant after :func:`verify_chain` passed: the chain is then consistent from the genesis on, so an
    unchanged link at the anchored batch proves batches 1..batch unchanged since the anchor (batches
    appended after it are allowed). Batch 0 is the genesis, held by every chain.
    """
    if batch == 0:
        return None if link == GENESIS else f"anchored {chain.name} batch 0 does not carry the genesis hash"
    if not has_chain(con, chain):
        return f"the {chain.name} batches carry no chain (its columns were dropped), the anchor has one"
    r = con.execute(f"SELECT chain_hash FROM {chain.batches} WHERE batch_id = ?",  # noqa: S608 - constant
                    [batch]).fetchall()
    if not r:
        return f"anchored {chain.name} batch {batch} is missing (batches deleted since the anchor)"
    if r[0][0] != link:
        return (f"{chain.name} batch {batch} differs from the anchor (its rows or records, or an earlier "
                "batch's, were rewritten and the chain recomputed)")
    return None


__all__ = ["EMPTY_ROWS_HASH", "GENESIS", "PRICE_CHAIN", "SHARE_CHAIN", "BatchChain", "ChainVerify", "PriceVerify",
           "backfill", "chain_link", "check_head", "has_chain", "head", "link_new_batch", "record_of",
           "rows_hashes", "verify_chain", "verify_prices", "verify_shares"]
