"""The anchor: the heads of everything carousel chains, in a JSON file kept outside the database.

Why: the hash chains inside the file (the ledger log, the price batches, the share batches) and the study
stamp catch edits, but someone who can rewrite the file can also recompute every hash after an edit and
fix the recorded heads; the file is then consistent with itself. A document written earlier and kept
where they cannot write (published with a paper, committed elsewhere) pins the heads:
``carousel verify --anchor FILE`` checks that each chain still passes through its anchored link.

The document (version 2) nests each part's head, so the ledger's own ``ledger.log.anchor`` dict (which
keeps ``position`` and ``hash`` and may gain keys) is stored as it is::

    {"version": 2,
     "ledger": {"position": 92, "hash": "...", ...},       # ledger.log.anchor
     "prices": {"batch": 1, "hash": "..."},                 # market.chain.head(PRICE_CHAIN)
     "shares": {"batch": 1, "hash": "..."},                 # market.chain.head(SHARE_CHAIN)
     "study": {"stamped_at": "...", "results_hash": "...", ...} | null}   # analysis.store.stamp_record

Files written before version 2 hold the ledger's dict alone (``{"position", "hash", "recorded_at"}``);
they are still read, and check the ledger only. Composed here, in the shell, because it spans the
ledger, the market and the study tables, which do not know each other.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CarouselError, InputError

if TYPE_CHECKING:  # duckdb is imported by the commands that open a database (cold start of --help)
    import duckdb

VERSION = 2
#: An anchor is a few hundred bytes; a larger file is not one (and is not parsed).
MAX_BYTES = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The chained stores an anchor pins: document key -> (market.chain attribute, what it is called).
CHAINS = {"prices": "PRICE_CHAIN", "shares": "SHARE_CHAIN"}


def build(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The anchor document of the open database (read-only is enough)."""
    from analysis.store import stamp_record
    from ledger import log
    from market import chain

    doc: dict[str, Any] = {"version": VERSION, "ledger": log.anchor(con)}
    for key, attr in CHAINS.items():
        batch, link = chain.head(con, getattr(chain, attr))
        if link is None:
            raise CarouselError(
                f"the {key} batches carry no hash chain yet (a database from before it): open it read-write "
                "once (e.g. `carousel run`), then write the anchor")
        doc[key] = {"batch": batch, "hash": link}
    doc["study"] = stamp_record(con)
    return doc


def dumps(doc: dict[str, Any]) -> str:
    """Canonical text of a document (sorted keys, one line)."""
    return json.dumps(doc, sort_keys=True)


def check_out(out: Path) -> None:
    """InputError if ``out`` is a directory or a symbolic link; run before the database is opened too."""
    if out.is_dir() or out.is_symlink():
        raise InputError("is a directory or a symbolic link; give a new or regular file", file=out)


def write(doc: dict[str, Any], out: Path) -> None:
    """Write the document whole under a temporary name, then rename it: a reader never sees half of it.

    A directory or a symbolic link at ``out`` is refused (a link would put the anchor elsewhere).
    """
    check_out(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # a leftover of a killed run; "x" below never writes through a link
        with tmp.open("x", encoding="utf-8") as fh:
            fh.write(dumps(doc) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write the anchor: {exc.strerror or exc}", file=out) from None


def read(path: Path) -> dict[str, Any]:
    """The anchor document at ``path``, checked and in the version-2 shape (exit 2 naming the field).

    A version-1 file (the ledger's dict alone) gives ``{"version": 1, "ledger": it, "prices": None,
    "shares": None, "study": None}``. Checked before the database is opened: a bad anchor is bad input.
    """
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a regular file", file=path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"{path.stat().st_size:,} bytes, not an anchor from `carousel ledger anchor`",
                             file=path)
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg})", file=path, line=exc.lineno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to be an anchor", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object from `carousel ledger anchor`", file=path)
    if "version" not in doc:  # version 1: the ledger's head alone
        _ledger(doc, path, "")
        return {"version": 1, "ledger": doc, "prices": None, "shares": None, "study": None}
    version = doc["version"]
    if version != VERSION or isinstance(version, bool):
        raise InputError(f"unsupported anchor version {json.dumps(version)} (this carousel reads 1 and "
                         f"{VERSION})", file=path, field="version")
    ledger = doc.get("ledger")
    if not isinstance(ledger, dict):
        raise InputError("missing or not a JSON object", file=path, field="ledger")
    _ledger(ledger, path, "ledger.")
    for key in CHAINS:
        part = doc.get(key)
        if not isinstance(part, dict):
            raise InputError("missing or not a JSON object", file=path, field=key)
        _count(part.get("batch"), path, f"{key}.batch")
        _hash(part.get("hash"), path, f"{key}.hash")
    study = doc.get("study")
    if study is not None:
        if not isinstance(study, dict):
            raise InputError("not a JSON object or null", file=path, field="study")
        _study(study, path)
    return {"version": VERSION, "ledger": ledger, "prices": doc["prices"], "shares": doc["shares"],
            "study": study}


def _count(value: Any, path: Path, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError("missing or not a non-negative integer", file=path, field=name)


def _hash(value: Any, path: Path, name: str) -> None:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InputError("missing or not a 64-character hex SHA-256", file=path, field=name)


def _ledger(part: dict[str, Any], path: Path, prefix: str) -> None:
    _count(part.get("position"), path, f"{prefix}position")
    _hash(part.get("hash"), path, f"{prefix}hash")


def _study(study: dict[str, Any], path: Path) -> None:
    """The stamp as ``analysis.store.stamp_record`` writes it: heads may be null (an empty store)."""
    from datetime import datetime

    when = study.get("stamped_at")
    try:
        ok = isinstance(when, str) and datetime.fromisoformat(when).tzinfo is not None
    except ValueError:
        ok = False
    if not ok:
        raise InputError("missing or not an ISO 8601 time with an offset", file=path, field="study.stamped_at")
    for name in ("params_hash", "results_hash"):
        _hash(study.get(name), path, f"study.{name}")
    for name in ("ledger_position", "price_batch", "share_batch"):
        if study.get(name) is not None:
            _count(study[name], path, f"study.{name}")
    for name in ("ledger_hash", "price_hash", "share_hash"):
        if study.get(name) is not None:
            _hash(study[name], path, f"study.{name}")


def check_chain(con: duckdb.DuckDBPyConnection, doc: dict[str, Any], key: str) -> str | None:
    """None if the store ``key`` ("prices" or "shares") still holds its anchored link; else why not."""
    from market import chain

    part = doc[key]
    return chain.check_head(con, getattr(chain, CHAINS[key]), int(part["batch"]), str(part["hash"]))


__all__ = ["CHAINS", "MAX_BYTES", "VERSION", "build", "check_chain", "check_out", "dumps", "read", "write"]
