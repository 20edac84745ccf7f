"""Import deal files (CSV in the ``deals.csv`` format, or YAML with the same fields) into the ledger.

The whole file is parsed and validated before anything is written, then appended in one transaction:
one bad row means nothing is imported, and the error names the file, the line and the field. Event ids
are derived from the content's identity (deal id + event type), so importing the same file twice
appends nothing, and importing a *changed* row for an existing deal is a conflict (record a
correction with ``carousel ledger correct`` instead).

Companies come from ``companies.csv`` next to the deals file (or ``data/events/companies.csv``), and
``contracts.csv`` there says which rows report the same contract (see ``data/events/NOTES.md``).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import yaml

from carousel.db import DATA_DIR
from carousel.errors import InputError
from ledger import log
from ledger.model import (
    AMOUNT_KINDS,
    DEAL_TYPES,
    SESSIONS,
    NewEvent,
    company_stream,
    deal_stream,
    event_id_for,
)

DEAL_FIELDS = (
    "id", "announced_date", "announced_time_et", "session", "payer", "payee", "amount_usd_bn",
    "amount_note", "deal_type", "counterparty_tickers", "headline_reaction", "source_publisher",
    "source_title", "source_date", "source_url", "confidence",
)
REQUIRED = ("id", "session", "payer", "payee", "deal_type", "source_url")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{2,119}$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_TICKER_RE = re.compile(r"^\^?[A-Z0-9]{1,10}(\.[A-Z]{1,3})?$")
CONFIDENCE = ("verified", "partial", "memory")
MAX_FIELD = 4000
BN = Decimal(10**9)


@dataclass(frozen=True)
class ImportReport:
    file: str
    rows: int
    appended: int
    skipped: int


@dataclass(frozen=True)
class Registry:
    """Known companies: alias -> company id, and ticker -> company id."""

    companies: dict[str, dict[str, Any]]
    aliases: dict[str, str]
    tickers: dict[str, str]
    contracts: dict[str, tuple[str, bool]]


def load_registry(folder: Path) -> Registry:
    comp_file = folder / "companies.csv"
    if not comp_file.exists():
        comp_file = DATA_DIR / "events" / "companies.csv"
    companies: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    tickers: dict[str, str] = {}
    for line, row in _csv_rows(comp_file, ("company_id", "name", "listed", "tickers", "aliases")):
        cid = row["company_id"]
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", cid):
            raise InputError(f"invalid company id {cid!r}", file=comp_file, line=line, field="company_id")
        listed = row["listed"].strip().lower()
        if listed not in ("true", "false"):
            raise InputError("must be true or false", file=comp_file, line=line, field="listed")
        tlist = []
        for spec in filter(None, row["tickers"].split("|")):
            parts = spec.split(":")
            if len(parts) != 3 or not _TICKER_RE.match(parts[0]):
                raise InputError(f"ticker {spec!r} is not SYMBOL:EXCHANGE:CCY", file=comp_file, line=line, field="tickers")
            tlist.append({"symbol": parts[0], "exchange": parts[1], "currency": parts[2]})
            tickers[parts[0]] = cid
        companies[cid] = {"company_id": cid, "name": row["name"], "listed": listed == "true", "tickers": tlist}
        for alias in {row["name"], cid, *filter(None, row["aliases"].split("|"))}:
            aliases[alias.strip().lower()] = cid
    contracts: dict[str, tuple[str, bool]] = {}
    con_file = folder / "contracts.csv"
    if not con_file.exists():
        con_file = DATA_DIR / "events" / "contracts.csv"
    if con_file.exists():
        for line, row in _csv_rows(con_file, ("deal_id", "contract_id", "counts_toward_total")):
            flag = row["counts_toward_total"].strip().lower()
            if flag not in ("true", "false"):
                raise InputError("must be true or false", file=con_file, line=line, field="counts_toward_total")
            contracts[row["deal_id"]] = (row["contract_id"], flag == "true")
    return Registry(companies, aliases, tickers, contracts)


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=path) from None
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", file=path, line=1, field=missing[0])
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise InputError(f"{len(row[None])} value(s) more than the header has", file=path, line=line)
            yield line, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None


def _yaml_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise InputError("file not found", file=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"malformed YAML: {getattr(exc, 'problem', exc)}", file=path,
                         line=(mark.line + 1) if mark else None) from None
    if isinstance(data, dict) and "deals" in data:
        data = data["deals"]
        root = next(v for k, v in root.value if k.value == "deals")  # type: ignore[union-attr]
    if not isinstance(data, list) or root is None:
        raise InputError("expected a list of deals (or a mapping with a 'deals' list)", file=path, line=1)
    for node, item in zip(root.value, data, strict=True):
        line = node.start_mark.line + 1
        if not isinstance(item, dict):
            raise InputError("each deal must be a mapping", file=path, line=line)
        unknown = sorted(set(item) - set(DEAL_FIELDS))
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(map(str, unknown))}", file=path, line=line, field=str(unknown[0]))
        yield line, {k: ("" if item.get(k) is None else str(item.get(k))).strip() for k in DEAL_FIELDS}


def parse_deals(path: Path, registry: Registry, *, today: dt.date | None = None) -> list[NewEvent]:
    """Validate every row and return the events to append (pure apart from reading the file)."""
    today = today or dt.date.today()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        rows: Iterator[tuple[int, dict[str, str]]] = _yaml_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path, DEAL_FIELDS)
    else:
        raise InputError("unsupported file type (use .csv, .yaml or .yml)", file=path)
    events: list[NewEvent] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        payload = deal_payload(row, registry, file=path, line=line, today=today)
        did = payload["deal_id"]
        if did in seen:
            raise InputError(f"duplicate deal id {did!r} (first on line {seen[did]})", file=path, line=line, field="id")
        seen[did] = line
        stream = deal_stream(did)
        events.append(NewEvent(event_id_for(stream, "DealAnnounced"), stream, "DealAnnounced", payload))
    if not events:
        raise InputError("no deals in file", file=path)
    return events


def deal_payload(
    row: Mapping[str, str], reg: Registry, *, file: Path | str, line: int, today: dt.date
) -> dict[str, Any]:
    def err(msg: str, fld: str) -> InputError:
        return InputError(msg, file=file, line=line, field=fld)

    for k, v in row.items():
        if len(v) > MAX_FIELD:
            raise err(f"value is {len(v)} characters long (limit {MAX_FIELD})", k)
        if any(ord(c) < 32 and c not in "\t" for c in v):
            raise err("contains control characters", k)
    for k in REQUIRED:
        if not row.get(k):
            raise err("required value is empty", k)
    did = row["id"]
    if not _ID_RE.match(did):
        raise err(f"{did!r} is not a deal id (lowercase letters, digits, '-', '.')", "id")
    ann = _parse_date(row.get("announced_date", ""), err, "announced_date", today)
    _parse_date(row.get("source_date", ""), err, "source_date", today)
    time_et = row.get("announced_time_et") or None
    if time_et is not None and not _TIME_RE.match(time_et):
        if "T" in time_et or "+" in time_et or time_et.endswith("Z"):
            raise err(f"{time_et!r}: give the US/Eastern time of day as HH:MM, not a timestamp", "announced_time_et")
        raise err(f"{time_et!r} is not a time of day HH:MM (US/Eastern)", "announced_time_et")
    session = row["session"]
    if session == "weekend":
        session = "non_trading"
    if session not in SESSIONS:
        raise err(f"{session!r} is not one of {', '.join(SESSIONS)}, weekend", "session")
    deal_type = row["deal_type"]
    if deal_type not in DEAL_TYPES:
        raise err(f"unknown deal type {deal_type!r}", "deal_type")
    payers = _parties(row["payer"], reg, err, "payer")
    payees = _parties(row["payee"], reg, err, "payee")
    amount, kind = _amount(row.get("amount_usd_bn", ""), row.get("amount_note", ""), err)
    tickers = [t.strip() for t in row.get("counterparty_tickers", "").split(";") if t.strip()]
    for t in tickers:
        if not _TICKER_RE.match(t):
            raise err(f"{t!r} is not a ticker symbol", "counterparty_tickers")
        if t not in reg.tickers:
            raise err(f"unknown ticker {t!r} (not listed for any company in companies.csv)", "counterparty_tickers")
    conf = row.get("confidence") or "partial"
    if conf not in CONFIDENCE:
        raise err(f"{conf!r} is not one of {', '.join(CONFIDENCE)}", "confidence")
    url = row["source_url"]
    if not url.startswith(("http://", "https://")):
        raise err(f"{url[:60]!r} is not an http(s) URL", "source_url")
    contract_id, counts = reg.contracts.get(did, (did, True))
    return {
        "deal_id": did,
        "contract_id": contract_id,
        "counts_toward_total": counts,
        "announced_date": ann.isoformat() if ann else None,
        "announced_time_et": time_et,
        "session": session,
        "payers": payers,
        "payees": payees,
        "amount_usd": None if amount is None else format(amount, "f"),
        "amount_kind": kind,
        "deal_type": deal_type,
        "horizon": _horizon(row.get("amount_note", "")),
        "tickers": tickers,
        "title": row.get("source_title") or None,
        "confidence": conf,
        "note": row.get("amount_note") or None,
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


def _parse_date(text: str, err: Any, fld: str, today: dt.date) -> dt.date | None:
    if not text:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise err(f"{text!r} is not an ISO date YYYY-MM-DD", fld)
    try:
        d = dt.date.fromisoformat(text)
    except ValueError:
        raise err(f"{text!r} is not a real calendar date", fld) from None
    if d > today:
        raise err(f"{text} is in the future (today is {today})", fld)
    if d.year < 1990:
        raise err(f"{text} is implausibly early", fld)
    return d


def _parties(text: str, reg: Registry, err: Any, fld: str) -> list[str]:
    out = []
    for name in (p.strip() for p in text.split(";")):
        if not name:
            raise err("empty party name", fld)
        cid = reg.aliases.get(name.lower())
        if cid is None:
            raise err(f"unknown company {name!r} (add it to companies.csv)", fld)
        if cid not in out:
            out.append(cid)
    return out


def _amount(text: str, note: str, err: Any) -> tuple[Decimal | None, str]:
    if not text:
        return None, "undisclosed"
    try:
        bn = Decimal(text)
    except InvalidOperation:
        raise err(f"{text!r} is not a number (US$ billions)", "amount_usd_bn") from None
    if not bn.is_finite() or bn < 0:
        raise err(f"{text!r} must be a non-negative amount in US$ billions", "amount_usd_bn")
    if bn > 100_000:
        raise err(f"{text!r} US$ billions is implausibly large", "amount_usd_bn")
    low = note.lower()
    if "up to" in low or "ceiling" in low:
        kind = "up_to"
    elif any(w in low for w in ("reported", "about", "approx", "~", "estimate", "not confirmed")):
        kind = "estimate"
    else:
        kind = "exact"
    assert kind in AMOUNT_KINDS
    return (bn * BN).quantize(Decimal("0.01")), kind


def _horizon(note: str) -> str | None:
    m = re.search(r"over (?:about |~)?(\d+|six|five|eight|four|seven)[- ]years?", note, re.I)
    if m:
        words = {"four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8"}
        return f"{words.get(m.group(1).lower(), m.group(1))}y"
    m = re.search(r"(?:through|until|till) (?:December |end-)?(20\d\d)", note)
    return f"through {m.group(1)}" if m else None


def company_events(reg: Registry, used: set[str] | None = None) -> list[NewEvent]:
    out = []
    for cid in sorted(reg.companies):
        if used is not None and cid not in used:
            continue
        stream = company_stream(cid)
        out.append(NewEvent(event_id_for(stream, "CompanyRegistered"), stream, "CompanyRegistered", reg.companies[cid]))
    return out


def import_file(con: duckdb.DuckDBPyConnection, path: str | Path, *, today: dt.date | None = None) -> ImportReport:
    """Validate ``path`` fully, then append companies and deals in one atomic, idempotent batch."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=path)
    reg = load_registry(path.parent)
    deals = parse_deals(path, reg, today=today)
    events = company_events(reg) + deals
    res = log.append(con, events)
    return ImportReport(str(path), len(deals), res.appended, res.skipped)
