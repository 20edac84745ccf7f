"""``carousel verify``: one check of everything carousel stores, with a summary and exit 5 on tampering.

Six parts, each reported on its own line: the file's storage (every data block read, so DuckDB checks its
checksum: :func:`core.db.scan_storage`), the catalog (every table's columns and view's SQL against the
schema carousel builds, :func:`core.db.catalog_differences`: a view replaced by hand changes what
``carousel sql`` and the README's queries sum), the ledger (its own verify, :func:`ledger.log.verify`, unchanged),
the price batches and the share-count batches (their hash chains, :func:`market.chain.verify_chain`) and
the study tables (:func:`analysis.store.verify_study`). With an anchor kept outside the file
(:mod:`carousel.anchor`) each part is also checked against its anchored head, which catches a chain
recomputed after an edit with its head fixed. A check that crashes on what it reads (a parser
meeting a tampered payload, a dropped table) is reported as tampering, not as a traceback: whatever made
it crash was written into the file by something other than carousel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from carousel.db import connect


@dataclass
class VerifyAll:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, part: str, why: str) -> None:
        self.lines.append(f"{part} FAILED: {why}")
        self.failures.append(f"{part}: {why}")


def _guarded(report: VerifyAll, part: str, check: Callable[[], Any]) -> Any:
    """Run one check; an exception while reading stored data is a failure of that part, named."""
    try:
        return check()
    except RecursionError:
        report.fail(part, "a stored value is nested too deeply to parse (written outside carousel)")
    except (duckdb.Error, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.fail(part, f"the stored data cannot be checked ({type(exc).__name__}: {first})")
    return None


def _anchor_note(doc: dict[str, Any] | None, key: str, bad: str | None) -> str:
    if doc is None:
        return " (no anchor given)"
    if doc.get(key) is None:
        return " (the anchor, written before version 2, does not cover it)"
    return "" if bad else " (matches the anchor)"


def _chain_part(rep: VerifyAll, con: Any, doc: dict[str, Any] | None, part: str, key: str,
                check: Callable[[], Any]) -> None:
    """One chained store (prices or shares): its chain, then its anchored link when an anchor is given."""
    from carousel.anchor import check_chain

    got = _guarded(rep, part, check)
    if got is None:
        return
    for p in got.problems:
        rep.fail(part, p)
    if not got.ok:
        return
    bad = None
    if doc is not None and doc.get(key) is not None:
        bad = _guarded(rep, f"{part} anchor", lambda: check_chain(con, doc, key))
        if bad:
            rep.fail(f"{part} anchor", str(bad))
    rows = f", {got.rows:,} rows" if not got.note else ""
    head = (f", chain head batch {got.head_batch} {got.head_hash}" if got.head_batch is not None else "")
    rep.lines.append(f"{part} OK: {got.batches} batches{rows}{head}" + (f"; {got.note}" if got.note else "")
                     + _anchor_note(doc, key, bad))


def verify_all(db: str | Path | None, doc: dict[str, Any] | None = None) -> VerifyAll:
    """Every check; ``doc`` is the anchor document (``carousel.anchor.read``: already checked), if any."""
    from analysis.store import check_anchored_stamp, verify_study
    from carousel.db import ensure_schema
    from core.db import catalog_differences, scan_storage
    from ledger import log
    from market.chain import verify_prices, verify_shares

    rep = VerifyAll()
    with connect(db, read_only=True) as con:
        scanned = _guarded(rep, "storage", lambda: scan_storage(con))
        if scanned is not None:
            tables, rows, problems = scanned
            for p in problems:
                rep.fail("storage", f"{p} (the file is damaged or was edited byte-wise)")
            if not problems:
                rep.lines.append(f"storage OK: {tables} tables, {rows:,} rows read, every data block checksummed")

        catalog = _guarded(rep, "catalog", lambda: (catalog_differences(con, ensure_schema),))
        if catalog is not None:
            if catalog[0] is None:
                rep.lines.append("catalog not compared: the schema marker records another carousel's or DuckDB's "
                                 "schema (any read-write command updates it)")
            for p in catalog[0] or ():
                rep.fail("catalog", f"{p} (changed outside carousel)")
            if catalog[0] == []:
                rep.lines.append("catalog OK: every table and view as carousel defines them")

        led = _guarded(rep, "ledger", lambda: log.verify(con))
        if led is not None:
            if not led.ok:
                rep.fail("ledger", f"position {led.broken_position}: {led.reason}")
            else:
                bad = (_guarded(rep, "ledger anchor", lambda: log.check_anchor(con, doc["ledger"]))
                       if doc is not None else None)
                if bad:
                    rep.fail("ledger anchor", str(bad))
                rep.lines.append(f"ledger OK: {led.events} events, head position {led.head_position}, "
                                 f"hash {led.head_hash}" + _anchor_note(doc, "ledger", bad))

        _chain_part(rep, con, doc, "prices", "prices", lambda: verify_prices(con))
        _chain_part(rep, con, doc, "shares", "shares", lambda: verify_shares(con))

        study = _guarded(rep, "study", lambda: verify_study(con))
        if study is not None:
            for p in study.problems:
                rep.fail("study", p)
            anchored = ""
            if study.ok and doc is not None and doc.get("study") is not None:
                got = _guarded(rep, "study anchor", lambda: check_anchored_stamp(con, doc["study"]))
                if got is not None:
                    bad, found = got
                    if bad:
                        rep.fail("study anchor", bad)
                    else:
                        anchored = f" ({found})" if found != "the anchored study" else " (matches the anchor)"
            if study.ok:
                if study.note:
                    rep.lines.append(f"study OK: {study.note}{anchored}")
                elif study.stale:
                    rep.lines.append(f"study STALE (not tampering; rerun `carousel run` or `carousel report`): "
                                     f"{'; '.join(study.stale)}{anchored}")
                else:
                    rep.lines.append(f"study OK: {study.rows:,} rows match their stamp (current ledger, prices "
                                     f"and share counts){anchored}")
    rep.lines.append("verify: " + ("OK" if rep.ok else f"FAILED ({len(rep.failures)} problem(s))"))
    return rep
