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

The field validators here are the only ones: ``carousel ledger amend/correct`` run the same checks on
``--set`` values (:func:`parse_change`), so no value can enter the ledger by a route that import refuses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import yaml

from core.errors import ConflictError, InputError
from core.paths import DATA_DIR
from ledger import log, project
from ledger.model import (
    AMOUNT_KINDS,
    CURRENT_VERSION,
    DEAL_TYPES,
    MUTABLE_FIELDS,
    SESSIONS,
    NewEvent,
    StoredEvent,
    canonical_json,
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
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$", re.ASCII)  # ASCII: \d would take any script's digits
_TICKER_RE = re.compile(r"^\^?[A-Z0-9]{1,10}(\.[A-Z]{1,3})?$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HORIZON_RE = re.compile(r"^(?:[1-9]\d?y|through (?:19|20)\d\d)$", re.ASCII)
CONFIDENCE = ("verified", "partial", "memory")
MAX_FIELD = 4000
BN = Decimal(10**9)
#: Largest plausible headline amount, US$ billions (checked before quantizing, which overflows beyond it).
MAX_BN = Decimal(100_000)
SOURCE_KEYS = ("publisher", "title", "url", "date")

#: Makes an InputError for a message and a field name (binds the file and line, where there is one).
ErrFn = Callable[[str, str], InputError]


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


@dataclass(frozen=True)
class AmountTerms:
    """What a deal's headline amount is (``amount_kind``), over what period (``horizon``), and how much of
    it the named payer pays itself (``payer_amount``, US dollars) when others share the deal: the $40B
    SoftBank-led round of 2025-03-31 had co-investors for about $10B (``data/events/NOTES.md``)."""

    amount_kind: str
    horizon: str | None
    payer_amount: Decimal | None = None


@dataclass(frozen=True)
class Registry:
    """Known companies: alias -> company id, and ticker -> company id; per-deal contract and amount terms."""

    companies: dict[str, dict[str, Any]]
    aliases: dict[str, str]
    tickers: dict[str, str]
    contracts: dict[str, tuple[str, bool]]
    terms: dict[str, AmountTerms] = field(default_factory=dict)


def load_registry(folder: Path) -> Registry:
    comp_file = folder / "companies.csv"
    if not comp_file.exists():
        comp_file = DATA_DIR / "events" / "companies.csv"
    companies: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    tickers: dict[str, str] = {}
    for line, row in _csv_rows(comp_file, ("company_id", "name", "listed", "tickers", "aliases"), allowed=("note",)):
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
        for line, row in _csv_rows(con_file, ("deal_id", "contract_id", "counts_toward_total"), allowed=("note",)):
            flag = row["counts_toward_total"].strip().lower()
            if flag not in ("true", "false"):
                raise InputError("must be true or false", file=con_file, line=line, field="counts_toward_total")
            contracts[row["deal_id"]] = (row["contract_id"], flag == "true")
    return Registry(companies, aliases, tickers, contracts, _load_terms(folder))


def _load_terms(folder: Path) -> dict[str, AmountTerms]:
    """``amount_terms.csv``: explicit amount_kind/horizon per deal id (beside the deals file, else shipped)."""
    path = folder / "amount_terms.csv"
    if not path.is_file():
        path = DATA_DIR / "events" / "amount_terms.csv"
    if not path.is_file():
        return {}
    terms: dict[str, AmountTerms] = {}
    first: dict[str, int] = {}
    for line, row in _csv_rows(path, ("deal_id", "amount_kind", "horizon"), allowed=("note", "payer_share_bn")):
        did = row["deal_id"]
        if did in first:
            raise InputError(f"duplicate deal id {did!r} (first on line {first[did]})", file=path, line=line, field="deal_id")
        first[did] = line
        kind = row["amount_kind"]
        # Only a disclosed amount has a kind worth stating; an empty amount is 'undisclosed' by definition.
        if kind not in AMOUNT_KINDS or kind == "undisclosed":
            raise InputError(f"{kind!r} is not one of exact, up_to, estimate", file=path, line=line, field="amount_kind")
        horizon = row["horizon"] or None
        if horizon is not None and not _HORIZON_RE.match(horizon):
            raise InputError(f"{horizon!r} is not a horizon like '5y' or 'through 2032'", file=path, line=line,
                             field="horizon")
        share = _money(row.get("payer_share_bn") or "", partial(_terms_error, path, line), "payer_share_bn",
                       scale=BN, unit="US$ billions")
        terms[did] = AmountTerms(kind, horizon, share)
    return terms


def _terms_error(path: Path, line: int, message: str, fld: str) -> InputError:
    return InputError(message, file=path, line=line, field=fld)


def _bn_text(dollars: Decimal) -> str:
    """US dollars as plain billions: 40000000000.00 -> '40', 12500000000.00 -> '12.5'."""
    return format((dollars / BN).normalize(), "f")


def registry_from_companies(companies: list[dict[str, Any]]) -> Registry:
    """A registry of the companies a database has registered (for ``amend``/``correct``).

    The database, not a CSV beside the working directory, is what a change must agree with: a deal may only
    name companies and tickers that the ledger itself knows.
    """
    aliases: dict[str, str] = {}
    tickers: dict[str, str] = {}
    for c in companies:
        cid = c["company_id"]
        aliases[cid.lower()] = cid
        aliases[str(c["name"]).strip().lower()] = cid
        for t in c["tickers"] or []:
            tickers[t] = cid
    return Registry({c["company_id"]: c for c in companies}, aliases, tickers, {})


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found", file=path)
    if not path.is_file():
        raise InputError("not a regular file (a directory?)", file=path)


def _read_text(path: Path) -> str:
    """The file's text; every way of failing to read it is an InputError naming the file."""
    _check_file(path)
    try:
        # utf-8-sig: Excel saves "CSV UTF-8" with a byte-order mark, which would otherwise become part of
        # the first column's name.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None


def _csv_rows(
    path: Path, required: tuple[str, ...], *, allowed: tuple[str, ...] | None = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with its line numbers.

    ``allowed`` names optional columns beyond ``required``; any other column is an error, because a
    misspelt column (``amount_usd_bm``) would otherwise be dropped silently and its values lost. ``None``
    allows any extra column.
    """
    text = _read_text(path)
    # newline="": lines end only at \r, \n or \r\n, as in CSV (str.splitlines would also end them at
    # U+2028, U+0085, form feeds..., splitting a record in two inside an unquoted field).
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=path, line=1) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", file=path, line=1, field=missing[0])
    dups = sorted({c for c in header if header.count(c) > 1})
    if dups:
        raise InputError(f"column(s) appear more than once: {', '.join(dups)}", file=path, line=1, field=dups[0])
    if allowed is not None:
        unknown = [c for c in header if c not in required and c not in allowed]
        if unknown:
            raise InputError(f"unknown column(s): {', '.join(map(repr, unknown))}; expected {', '.join(required + allowed)}",
                             file=path, line=1, field=unknown[0])
    done = reader.line_num  # the last line of the last record read (csv does not advance it on an error)
    try:
        for row in reader:
            # The line the record starts on: line_num is where it ends (quoted fields may hold line breaks).
            raw = [v for k, v in row.items() if k is not None] + list(row.get(None) or [])
            line = reader.line_num - sum(len(_LINE_BREAK.findall(v)) for v in raw if isinstance(v, str))
            done = reader.line_num
            if None in row:
                raise InputError(f"{len(row[None])} value(s) more than the header has", file=path, line=line)
            yield line, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=path, line=done + 1) from None


def _yaml_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a YAML deals file, read from the composed node tree rather than constructed values.

    Why nodes: YAML 1.1 *constructs* ``16:30`` as the sexagesimal integer 990 and ``0.1`` as a binary
    float, and silently keeps the last of two equal keys. A plain scalar's node keeps the text as written,
    so times stay ``16:30``, amounts reach :class:`~decimal.Decimal` from their digits, and a duplicate key
    can be reported with its line.
    """
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"malformed YAML: {getattr(exc, 'problem', None) or exc}", file=path,
                         line=(mark.line + 1) if mark else None) from None
    if isinstance(root, yaml.MappingNode):
        top = _yaml_mapping(root, path)
        if "deals" not in top:
            raise InputError("expected a list of deals (or a mapping with a 'deals' list)", file=path, line=1)
        root = top["deals"]
    if not isinstance(root, yaml.SequenceNode):
        raise InputError("expected a list of deals (or a mapping with a 'deals' list)", file=path,
                         line=(root.start_mark.line + 1) if root is not None else 1)
    for node in root.value:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            raise InputError("each deal must be a mapping", file=path, line=line)
        item = _yaml_mapping(node, path)
        unknown = sorted(set(item) - set(DEAL_FIELDS))
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}", file=path, line=line, field=unknown[0])
        row = {}
        for k in DEAL_FIELDS:
            value = item.get(k)
            if value is not None and not isinstance(value, yaml.ScalarNode):
                raise InputError("expected a single value, not a list or mapping (separate several with ';')",
                                 file=path, line=value.start_mark.line + 1, field=k)
            row[k] = "" if value is None or value.tag == "tag:yaml.org,2002:null" else str(value.value).strip()
        yield line, row


def _yaml_mapping(node: yaml.MappingNode, path: Path) -> dict[str, yaml.Node]:
    out: dict[str, yaml.Node] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise InputError("keys must be plain names", file=path, line=key_node.start_mark.line + 1)
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key in out:
            raise InputError(f"duplicate key {key!r} (first on line {lines[key]})", file=path, line=line, field=key)
        out[key], lines[key] = value_node, line
    return out


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
        _check_text(v, err, k)
    for k in REQUIRED:
        if not row.get(k):
            raise err("required value is empty", k)
    did = row["id"]
    if not _ID_RE.match(did):
        raise err(f"{did!r} is not a deal id (lowercase letters, digits, '-', '.')", "id")
    ann = _parse_date(row.get("announced_date", ""), err, "announced_date", today)
    _parse_date(row.get("source_date", ""), err, "source_date", today)
    time_et = _time(row.get("announced_time_et", ""), err, "announced_time_et")
    session = _session(row["session"], err, "session")
    _session_fits_time(session, time_et, ann, err)
    deal_type = _deal_type(row["deal_type"], err, "deal_type")
    payers = _parties(row["payer"], reg, err, "payer")
    payees = _parties(row["payee"], reg, err, "payee")
    amount = _money(row.get("amount_usd_bn", ""), err, "amount_usd_bn", scale=BN, unit="US$ billions")
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
    tickers = _tickers(row.get("counterparty_tickers", ""), reg, err, "counterparty_tickers")
    conf = _confidence(row.get("confidence") or "partial", err, "confidence")
    url = _url(row["source_url"], err, "source_url")
    contract_id, counts = reg.contracts.get(did, (did, True))
    payload: dict[str, Any] = {
        "deal_id": did,
        "contract_id": contract_id,
        "counts_toward_total": counts,
        "announced_date": ann.isoformat() if ann else None,
        "announced_time_et": time_et,
        "session": session,
        "payers": payers,
        "payees": payees,
        "amount_usd": None if amount is None else format(amount, "f"),
        "amount_kind": terms.amount_kind,
        "deal_type": deal_type,
        "horizon": terms.horizon,
        "tickers": tickers,
        "title": row.get("source_title") or None,
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


# --- field validators (shared by import and by amend/correct) ---------------------------------------


def _check_text(value: str, err: ErrFn, fld: str) -> None:
    if len(value) > MAX_FIELD:
        raise err(f"value is {len(value)} characters long (limit {MAX_FIELD})", fld)
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise err("contains control characters", fld)


def _parse_date(text: str, err: ErrFn, fld: str, today: dt.date) -> dt.date | None:
    if not text:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
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


#: NYSE regular hours in minutes after midnight ET; half days close at 13:00.
_OPEN, _HALF_CLOSE, _CLOSE = 9 * 60 + 30, 13 * 60, 16 * 60


def _maybe_half_day(day: dt.date | None) -> bool:
    """Whether NYSE may close at 13:00 on ``day``: 3 July, 24 December or the day after Thanksgiving
    (the fourth Thursday of November). Without a calendar (the ledger does not depend on the market
    layer) this is the superset of its early closes; an unknown date may be one."""
    if day is None:
        return True
    if (day.month, day.day) in ((7, 3), (12, 24)):
        return True
    first_thursday = 1 + (3 - dt.date(day.year, 11, 1).weekday()) % 7
    return day.month == 11 and day.day == first_thursday + 22


def session_time_problem(session: str | None, time_et: str | None, day: dt.date | str | None) -> str | None:
    """Why a session label contradicts the time of day, or None. The time decides t0, so a 16:05 row
    labelled 'intraday' would silently move to the next session. Checked against NYSE hours: 'after_close'
    before 16:00 only on a possible half day (from 13:00); 'unknown' and 'non_trading' fit any time."""
    if not time_et or session in (None, "unknown", "non_trading"):
        return None
    if isinstance(day, str):
        day = dt.date.fromisoformat(day)
    h, m = time_et.split(":")
    minutes = int(h) * 60 + int(m)
    after = _HALF_CLOSE if _maybe_half_day(day) else _CLOSE
    fits = {
        "pre_market": minutes < _OPEN,
        "intraday": _OPEN <= minutes < _CLOSE,
        "after_close": minutes >= after,
    }.get(session, True)
    if fits:
        return None
    return (f"{session!r} does not fit announced_time_et {time_et}"
            f"{'' if day is None else f' on {day}'} (NYSE trades 09:30-16:00 ET, half days to 13:00; the time "
            "decides t0): fix the label or the time")


def session_problem(deal: Mapping[str, Any]) -> str | None:
    """:func:`session_time_problem` of a deal record (projection or payload)."""
    return session_time_problem(deal.get("session"), deal.get("announced_time_et"), deal.get("announced_date"))


def _session_fits_time(session: str, time_et: str | None, day: dt.date | None, err: ErrFn) -> None:
    problem = session_time_problem(session, time_et, day)
    if problem:
        raise err(problem, "session")


def _time(text: str, err: ErrFn, fld: str) -> str | None:
    if not text:
        return None
    if not _TIME_RE.match(text):
        if "T" in text or "+" in text or text.endswith("Z"):
            raise err(f"{text!r}: give the US/Eastern time of day as HH:MM, not a timestamp", fld)
        raise err(f"{text!r} is not a time of day HH:MM (US/Eastern)", fld)
    return text


def _session(text: str, err: ErrFn, fld: str) -> str:
    session = "non_trading" if text == "weekend" else text
    if session not in SESSIONS:
        raise err(f"{text!r} is not one of {', '.join(SESSIONS)}, weekend", fld)
    return session


def _deal_type(text: str, err: ErrFn, fld: str) -> str:
    if text not in DEAL_TYPES:
        raise err(f"unknown deal type {text!r}", fld)
    return text


def _parties(text: str, reg: Registry, err: ErrFn, fld: str) -> list[str]:
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


def _tickers(text: str, reg: Registry, err: ErrFn, fld: str) -> list[str]:
    tickers = [t.strip() for t in text.split(";") if t.strip()]
    for t in tickers:
        if not _TICKER_RE.match(t):
            raise err(f"{t!r} is not a ticker symbol", fld)
        if t not in reg.tickers:
            raise err(f"unknown ticker {t!r} (not listed for any company in companies.csv)", fld)
    return tickers


def _confidence(text: str, err: ErrFn, fld: str) -> str:
    if text not in CONFIDENCE:
        raise err(f"{text!r} is not one of {', '.join(CONFIDENCE)}", fld)
    return text


def _url(text: str, err: ErrFn, fld: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise err(f"{text[:60]!r} is not an http(s) URL", fld)
    return text


def _money(text: str, err: ErrFn, fld: str, *, scale: Decimal, unit: str) -> Decimal | None:
    """A non-negative amount given in ``unit`` (= ``scale`` dollars), as whole cents of US dollars."""
    if not text:
        return None
    # Decimal() also reads '1_0' as 10 and digits of any script ('１４'); in a deals file those are typos
    # or paste artefacts, not amounts.
    if "_" in text or not text.isascii():
        raise err(f"{text!r} is not a number ({unit})", fld)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise err(f"{text!r} is not a number ({unit})", fld) from None
    # is_finite first: NaN and Infinity parse, and comparing a signalling NaN raises.
    if not value.is_finite() or value < 0:
        raise err(f"{text!r} must be a non-negative amount in {unit}", fld)
    # Checked before quantize, which raises InvalidOperation beyond the context's 28 digits.
    if value * scale > MAX_BN * BN:
        raise err(f"{text!r} {unit} is implausibly large (limit US$ {MAX_BN} billion)", fld)
    return (value * scale).quantize(Decimal("0.01"))


def _horizon_value(text: str, err: ErrFn, fld: str) -> str | None:
    if not text:
        return None
    if not _HORIZON_RE.match(text):
        raise err(f"{text!r} is not a horizon like '5y' or 'through 2032'", fld)
    return text


def _sources(text: str, err: ErrFn, fld: str, today: dt.date) -> list[dict[str, str | None]]:
    """``sources`` as a JSON list of {publisher, title, url, date} objects, or ';'-separated URLs."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise err(f"not valid JSON ({exc.msg} at character {exc.pos})", fld) from None
    else:
        items = [{"url": u.strip()} for u in text.split(";") if u.strip()]
    if not items:
        raise err("give at least one source (a URL, or a JSON list of {publisher, title, url, date})", fld)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise err(f"source {i + 1} is not an object with {', '.join(SOURCE_KEYS)}", fld)
        extra = sorted(set(item) - set(SOURCE_KEYS))
        if extra:
            raise err(f"source {i + 1} has unknown key(s) {', '.join(map(str, extra))}", fld)
        if any(v is not None and not isinstance(v, str) for v in item.values()):
            raise err(f"source {i + 1}: values must be strings or null", fld)
        src = {k: (item.get(k) or None) for k in SOURCE_KEYS}
        _url(src["url"] or "", err, fld)
        _parse_date(src["date"] or "", err, fld, today)
        out.append(src)
    return out


def _flag(text: str, err: ErrFn, fld: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise err("must be true or false", fld)
    return text.lower() == "true"


def _required(text: str, err: ErrFn, fld: str) -> str:
    if not text:
        raise err("required value is empty", fld)
    return text


def parse_change(key: str, value: str, reg: Registry, *, today: dt.date) -> Any:
    """Validate one ``--set FIELD=VALUE`` of amend/correct with the checks import applies to that field.

    Returns the value as it is stored in a payload (``None`` clears an optional field). ``reg`` is the
    database's own registry (:func:`registry_from_companies`).
    """

    def err(msg: str, fld: str) -> InputError:
        return InputError(msg, field=fld)

    value = value.strip()
    _check_text(value, err, key)
    if key == "announced_date":
        d = _parse_date(value, err, key, today)
        return d.isoformat() if d else None
    if key == "announced_time_et":
        return _time(value, err, key)
    if key == "session":
        return _session(_required(value, err, key), err, key)
    if key in ("payers", "payees"):
        return _parties(_required(value, err, key), reg, err, key)
    if key == "amount_usd":
        amount = _money(value, err, key, scale=Decimal(1), unit="US dollars")
        return None if amount is None else format(amount, "f")
    if key == "payer_amount_usd":
        share = _money(value, err, key, scale=Decimal(1), unit="US dollars")
        return None if share is None else format(share, "f")
    if key == "amount_kind":
        if value not in AMOUNT_KINDS:
            raise err(f"{value!r} is not one of {', '.join(AMOUNT_KINDS)}", key)
        return value
    if key == "deal_type":
        return _deal_type(_required(value, err, key), err, key)
    if key == "horizon":
        return _horizon_value(value, err, key)
    if key == "tickers":
        return _tickers(value, reg, err, key)
    if key == "contract_id":
        if not _ID_RE.match(_required(value, err, key)):
            raise err(f"{value!r} is not a contract id (lowercase letters, digits, '-', '.')", key)
        return value
    if key == "counts_toward_total":
        return _flag(value, err, key)
    if key == "title":
        return value or None
    if key == "confidence":
        return _confidence(_required(value, err, key), err, key)
    if key == "sources":
        return _sources(value, err, key, today)
    raise err(f"unknown or immutable field {key!r}; one of {', '.join(sorted(MUTABLE_FIELDS))}", "--set")


# --- amount terms from the note (fallback for deals amount_terms.csv does not list) --------------------

_ESTIMATE_WORDS = re.compile(r"~|\b(?:about|approx\w*|around|roughly|estimated?|reported|report|not confirmed)\b", re.I)
_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                 "nine": "9", "ten": "10"}


def _leading_clause(note: str) -> str:
    """What the note says about the headline amount itself: its first clause, without asides.

    Notes lead with the amount and then add context (stakes, later expansions, IP terms, other figures);
    words such as '~' or 'up to' in that context describe other numbers, not the headline amount.
    """
    head = re.split(r";|\.\s", note, maxsplit=1)[0]
    return re.sub(r"\([^)]*\)", "", head)


def note_terms(note: str, *, disclosed: bool) -> AmountTerms:
    """amount_kind and horizon read from the leading clause of ``amount_note``.

    ``up to``/``ceiling`` -> up_to; '~', about, approx., around, roughly, estimate(d), report(ed), not
    confirmed -> estimate; otherwise exact. Horizon: 'over N years' or 'N-year' -> 'Ny'; 'through/until
    [December |end-]YYYY' -> 'through YYYY'. Shipped deals are listed in ``amount_terms.csv`` instead,
    where a person has read the whole note.
    """
    lead = _leading_clause(note)
    low = lead.lower()
    if not disclosed:
        kind = "undisclosed"
    elif "up to" in low or "ceiling" in low:
        kind = "up_to"
    elif _ESTIMATE_WORDS.search(lead):
        kind = "estimate"
    else:
        kind = "exact"
    horizon = None
    words = "|".join(_NUMBER_WORDS)
    m = re.search(rf"\bover (?:about |~)?(\d+|{words})[- ]years?\b|\b(\d+|{words})-year\b", lead, re.I)
    if m:
        n = (m.group(1) or m.group(2)).lower()
        horizon = f"{_NUMBER_WORDS.get(n, n)}y"
    else:
        t = re.search(r"\b(?:through|until|till) (?:December |end-)?(20\d\d)\b", lead)
        horizon = f"through {t.group(1)}" if t else None
    return AmountTerms(kind, horizon)


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
) -> ImportReport:
    """Validate ``path`` fully, then append companies and deals in one atomic, idempotent batch.

    A row whose deal was imported before with different content cannot be appended (events are
    immutable; its DealAnnounced id exists). What the *file* says about a deal is its announcement plus
    the corrections earlier imports recorded (marked ``origin: import``); corrections made by hand are
    not the file's. A row that equals that file view adds nothing. A row that differs is a ConflictError
    naming the deal and the fields, unless ``record_changes``: then one DealCorrected with exactly those
    fields is recorded in the same batch (a fixed source file, or shipped data revised by a newer
    carousel). So an import never reverts a hand correction of a field the file did not change, and
    re-importing an older version of the file is a change like any other.

    A retracted deal whose row changed is left alone under ``record_changes`` (a retracted deal cannot
    be corrected, and ``carousel run`` must not stop on it for good) and listed in the report.

    ``origin`` names whose view of the file the corrections belong to: ``carousel run`` imports the
    shipped data as ``'shipped'``, so its file view is the announcement plus the shipped revisions only,
    and a user's own import (``'import'``) of a fixed file is never taken back by the next run.
    """
    path = Path(path)
    _check_file(path)  # before looking for companies.csv beside it
    reg = load_registry(path.parent)
    deals = parse_deals(path, reg, today=today)
    companies = company_events(reg)
    _refuse_changed_companies(con, companies, path.parent)
    kept, corrections, expected, retracted = _reconcile(con, deals, path, record_changes=record_changes,
                                                        origin=origin)
    events = companies + kept + corrections
    res = log.append(con, events, expected=expected)
    skipped = res.skipped + len(deals) - len(kept) - len(corrections)
    return ImportReport(str(path), len(deals), res.appended, skipped,
                        tuple(str(e.payload["deal_id"]) for e in corrections), retracted)


def _refuse_changed_companies(con: duckdb.DuckDBPyConnection, companies: list[NewEvent], folder: Path) -> None:
    """ConflictError naming companies.csv, the company and the fields if a registered company changed.

    There is no event that changes a company (its tickers decide which prices a study reads, so a silent
    change would move results), so the log's own "same id, other content" conflict would be right but
    would name only an event id.
    """
    stored = dict(con.execute(
        "SELECT event_id, payload FROM ledger_log WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [[e.event_id for e in companies]],
    ).fetchall())
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
    stored = dict(con.execute(
        "SELECT event_id, payload FROM ledger_log WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [[e.event_id for e in deals]],
    ).fetchall())
    imported_corrections = {r[0] for r in con.execute(
        "SELECT DISTINCT stream_id FROM ledger_log WHERE event_type = 'DealCorrected' "
        "AND json_extract_string(payload, '$.origin') = ? AND stream_id IN (SELECT unnest(?::VARCHAR[]))",
        [origin, [e.stream_id for e in deals]],
    ).fetchall()}
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
        if not record_changes:
            raise ConflictError(
                f"{path}: deal {deal_id!r} changed since it was imported ({fields}); events are immutable: "
                "re-run the import with --record-changes to record a DealCorrected for it, or use "
                "`carousel ledger correct`"
            )
        if any(ev.event_type == "DealRetracted" for ev in events):
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


def _file_view(events: list[Any], origin: str = "import") -> dict[str, Any]:
    """What earlier imports (of this ``origin``) said about a deal: its announcement with their
    recorded corrections applied in log order (hand corrections, amendments and other origins' imports
    are not the file's)."""
    view = {k: v for k, v in events[0].payload.items() if k != "note"}
    for ev in events[1:]:
        if ev.event_type == "DealCorrected" and ev.payload.get("origin") == origin:
            view.update(ev.payload["changes"])
    return view


def _record_diff(base: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields whose value in ``row`` differs from ``base`` (``note`` is commentary, not part of the
    record). Compared in canonical JSON, the form the log stores."""
    keys = (set(base) | set(row)) - {"note", "status", "version"}
    return {k: row.get(k) for k in sorted(keys)
            if canonical_json({"v": base.get(k)}) != canonical_json({"v": row.get(k)})}
