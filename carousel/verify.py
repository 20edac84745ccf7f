"""``carousel verify``: one check of everything carousel stores, with a summary and exit 5 on tampering.

Four parts, each reported on its own line: the file's storage (every data block read, so DuckDB checks its
checksum: :func:`core.db.scan_storage`), the ledger (its own verify, :func:`ledger.log.verify`, unchanged,
plus an anchor kept outside the file), the price batches (:func:`market.chain.verify_prices`) and the
study tables (:func:`analysis.store.verify_study`). A check that crashes on what it reads (a parser
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


def verify_all(db: str | Path | None, doc: dict[str, Any] | None = None) -> VerifyAll:
    """Every check; ``doc`` is the ledger anchor document (already read and checked), if any."""
    from analysis.store import verify_study
    from core.db import scan_storage
    from ledger import log
    from market.chain import verify_prices

    rep = VerifyAll()
    with connect(db, read_only=True) as con:
        scanned = _guarded(rep, "storage", lambda: scan_storage(con))
        if scanned is not None:
            tables, rows, problems = scanned
            for p in problems:
                rep.fail("storage", f"{p} (the file is damaged or was edited byte-wise)")
            if not problems:
                rep.lines.append(f"storage OK: {tables} tables, {rows:,} rows read, every data block checksummed")

        led = _guarded(rep, "ledger", lambda: log.verify(con))
        if led is not None:
            if not led.ok:
                rep.fail("ledger", f"position {led.broken_position}: {led.reason}")
            else:
                bad = _guarded(rep, "ledger anchor", lambda: log.check_anchor(con, doc)) if doc is not None else None
                if bad:
                    rep.fail("ledger anchor", str(bad))
                rep.lines.append(f"ledger OK: {led.events} events, head position {led.head_position}, "
                                 f"hash {led.head_hash}" + (" (matches the anchor)" if doc and not bad else
                                                            "" if doc else " (no anchor given)"))

        prices = _guarded(rep, "prices", lambda: verify_prices(con))
        if prices is not None:
            for p in prices.problems:
                rep.fail("prices", p)
            if prices.ok:
                rep.lines.append(f"prices OK: {prices.batches} batches, {prices.rows:,} rows"
                                 + (f", chain head batch {prices.head_batch} {prices.head_hash}"
                                    if prices.head_batch is not None else "")
                                 + (f"; {prices.note}" if prices.note else ""))

        study = _guarded(rep, "study", lambda: verify_study(con))
        if study is not None:
            for p in study.problems:
                rep.fail("study", p)
            if study.ok:
                if study.note:
                    rep.lines.append(f"study OK: {study.note}")
                elif study.stale:
                    rep.lines.append(f"study STALE (not tampering; rerun `carousel run` or `carousel report`): "
                                     f"{'; '.join(study.stale)}")
                else:
                    rep.lines.append(f"study OK: {study.rows:,} rows match their stamp (current ledger and prices)")
    rep.lines.append("verify: " + ("OK" if rep.ok else f"FAILED ({len(rep.failures)} problem(s))"))
    return rep
