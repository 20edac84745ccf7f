"""Deal fields: what each value may be, in one table that import and amend/correct both use.

Why one table (:data:`FIELDS`): a value must not enter the ledger by one route (``carousel ledger
correct --set``) that another (import) refuses. Each payload field names its rule once; import reads the
rule's column of the deals file, amend/correct the ``--set`` value, and both get the same checks and the
same stored value. Cross-field rules (a session that contradicts the time, a payer share above the
amount) are functions of a whole record here too (:func:`session_problem`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from core.errors import InputError
from ledger.model import AMOUNT_KINDS, DEAL_TYPES, MUTABLE_FIELDS, SESSIONS

REQUIRED = ("id", "session", "payer", "payee", "deal_type", "source_url")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{2,119}$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$", re.ASCII)  # ASCII: \d would take any script's digits
_TICKER_RE = re.compile(r"^\^?[A-Z0-9]{1,10}(\.[A-Z]{1,3})?$")
_HORIZON_RE = re.compile(r"^(?:[1-9]\d?y|through (?:19|20)\d\d)$", re.ASCII)
CONFIDENCE = ("verified", "partial", "memory")
MAX_FIELD = 4000
BN = Decimal(10**9)
#: Largest plausible headline amount, US$ billions (checked before quantizing, which overflows beyond it).
MAX_BN = Decimal(100_000)
SOURCE_KEYS = ("publisher", "title", "url", "date")
#: Smallest amount (US dollars) a deal field accepts: a value below is a unit slip or a stand-in for "none".
MIN_AMOUNT_USD = Decimal(1000)

#: Makes an InputError for a message and a field name (binds the file and line, where there is one).
ErrFn = Callable[[str, str], InputError]


class Known(Protocol):
    """What the validators need to know about companies (a :class:`ledger.registry.Registry`)."""

    @property
    def aliases(self) -> dict[str, str]: ...

    @property
    def tickers(self) -> dict[str, str]: ...




#: Characters that reorder or hide text on screen (bidirectional overrides, isolates and marks): in an
#: identifier or a source they make what a reader sees differ from what is stored ("Trojan Source").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


#: Control characters other than tab, and the bidirectional controls: one compiled scan per value (a
#: Python loop over each character cost ~0.1 ms a row, a third of a large import's validation).
_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f]")
_BIDI_RE = re.compile("[" + "".join(sorted(_BIDI)) + "]")


def _check_text(value: str, err: ErrFn, fld: str) -> None:
    if len(value) > MAX_FIELD:
        raise err(f"value is {len(value)} characters long (limit {MAX_FIELD})", fld)
    if _CONTROL_RE.search(value):
        raise err("contains control characters", fld)
    found = _BIDI_RE.search(value)
    if found is not None:
        bidi = found.group()
        raise err(f"contains the bidirectional control character U+{ord(bidi):04X}, which makes text display "
                  "differently from what is stored", fld)


def self_deal_problem(deal: Mapping[str, Any]) -> str | None:
    """Why a deal pays itself (a company both payer and payee), or None: a self-edge would count a company's
    money toward its own flow totals."""
    both = sorted(set(deal.get("payers") or []) & set(deal.get("payees") or []))
    if both:
        return f"{', '.join(both)} cannot be both payer and payee (a self-deal)"
    return None


def ticker_owner_problem(deal: Mapping[str, Any], owners: Mapping[str, str], named: Iterable[str] = ()) -> str | None:
    """Why a deal's ticker belongs to a company the deal neither has as a party nor names, or None.

    ``owners`` maps ticker -> company id; ``named`` are the companies the row's own text names (Stargate's
    technology partners Arm, Microsoft and Nvidia, whose tickers the shipped row lists on purpose). Any
    other ticker is a bystander's, whose returns would enter the deal's event study as a counterparty's.
    """
    allowed = set(deal.get("payers") or []) | set(deal.get("payees") or []) | set(named)
    for t in deal.get("tickers") or []:
        owner = owners.get(t)
        if owner is not None and owner not in allowed:
            return (f"ticker {t} belongs to {owner}, which is neither payer nor payee of the deal nor named in "
                    "its note or title")
    return None


def named_companies(text: str, aliases: Mapping[str, str]) -> set[str]:
    """Company ids whose name or alias appears as a whole word in ``text`` (case-insensitive)."""
    low = text.lower()
    # The substring test (in C) rules out almost every alias before its whole-word pattern is tried.
    return {cid for alias, cid in aliases.items() if alias and alias in low and _alias_re(alias).search(low)}


@functools.lru_cache(maxsize=4096)
def _alias_re(alias: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(alias) + r"(?!\w)")


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


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


@functools.cache
def _xnys_hours() -> tuple[int, int, int]:
    """NYSE's regular open, regular close and early (half-day) close, minutes after midnight ET, as
    exchange_calendars states them (imported only when a row has a time to check: it costs ~1 s)."""
    from exchange_calendars.exchange_calendar_xnys import XNYSExchangeCalendar

    return (_minutes(XNYSExchangeCalendar.open_times[0][1]), _minutes(XNYSExchangeCalendar.close_times[0][1]),
            _minutes(XNYSExchangeCalendar.regular_early_close))


@functools.cache
def _xnys_closes() -> dict[dt.date, int]:
    """Each NYSE session's close (minutes after midnight ET) from 1990 on, from exchange_calendars."""
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # exchange_calendars calls APIs newer pandas deprecates
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XNYS", start="1990-01-01")
        closes = cal.schedule["close"].dt.tz_convert("America/New_York")
    return {ts.date(): ts.hour * 60 + ts.minute for ts in closes}


def _close_on(day: dt.date | None) -> int | None:
    """NYSE's close on ``day`` (minutes ET); None when the calendar cannot say (no date, or a date
    outside its range): then the day may be a half day."""
    if day is None:
        return None
    closes = _xnys_closes()
    if day in closes:
        return closes[day]
    first, last = min(closes), max(closes)
    return _xnys_hours()[1] if first <= day <= last else None  # in range but no session: no close to miss


def session_time_problem(session: str | None, time_et: str | None, day: dt.date | str | None) -> str | None:
    """Why a session label contradicts the time of day, or None. The time decides t0, so a 16:05 row
    labelled 'intraday' would silently move to the next session. Checked against NYSE hours from
    exchange_calendars: 'after_close' before the regular close only on that day's early close (or, for a
    day the calendar cannot say, from the earliest early close); 'unknown' and 'non_trading' fit any time."""
    if not time_et or session in (None, "unknown", "non_trading"):
        return None
    if isinstance(day, str):
        day = dt.date.fromisoformat(day)
    h, m = time_et.split(":")
    minutes = int(h) * 60 + int(m)
    open_, close, early = _xnys_hours()
    if session == "after_close" and early <= minutes < close:
        # Only here does the day matter: was it a half day? (the calendar is built on first need)
        day_close = _close_on(day)
        after = early if day_close is None else day_close
    else:
        after = close
    fits = {
        "pre_market": minutes < open_,
        "intraday": open_ <= minutes < close,
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


def _parties(text: str, reg: Known, err: ErrFn, fld: str) -> list[str]:
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


def _tickers(text: str, reg: Known, err: ErrFn, fld: str) -> list[str]:
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
    # '-0', '0' and '1e-400' would be stored as an exact $0.00: an amount is positive and at least the
    # stated minimum, and an undisclosed one is left empty (never 0).
    if value * scale < MIN_AMOUNT_USD:
        raise err(f"{text!r} {unit} is below the minimum amount of US$ {MIN_AMOUNT_USD:,} (amounts are positive; "
                  "leave the field empty when the amount is undisclosed)", fld)
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
        except RecursionError:
            raise err("nested too deeply (a list of {publisher, title, url, date} objects is two levels)",
                      fld) from None
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


@dataclass(frozen=True)
class Context:
    """Where a value comes from: ``err`` binds the file and line (import) or the option (``--set``);
    ``scale``/``unit`` say what a money value is written in (deals files give US$ billions)."""

    reg: Known
    err: ErrFn
    today: dt.date
    scale: Decimal = Decimal(1)
    unit: str = "US dollars"


@dataclass(frozen=True)
class Field:
    """One deal field's rule: ``parse(text, context, name)`` validates the text and returns the value as a
    payload stores it (None clears an optional field); ``column`` is its column in a deals file (None:
    only amend/correct set it, e.g. ``payer_amount_usd``, which import takes from amount_terms.csv)."""

    parse: Callable[[str, Context, str], Any]
    column: str | None = None
    required: bool = False


def _iso_date(text: str, c: Context, fld: str) -> str | None:
    d = _parse_date(text, c.err, fld, c.today)
    return d.isoformat() if d else None


def _money_text(text: str, c: Context, fld: str) -> str | None:
    amount = _money(text, c.err, fld, scale=c.scale, unit=c.unit)
    return None if amount is None else format(amount, "f")


def _amount_kind(text: str, c: Context, fld: str) -> str:
    if text not in AMOUNT_KINDS:
        raise c.err(f"{text!r} is not one of {', '.join(AMOUNT_KINDS)}", fld)
    return text


def _contract_id(text: str, c: Context, fld: str) -> str:
    if not _ID_RE.match(_required(text, c.err, fld)):
        raise c.err(f"{text!r} is not a contract id (lowercase letters, digits, '-', '.')", fld)
    return text


def _req(rule: Callable[[str, ErrFn, str], Any]) -> Callable[[str, Context, str], Any]:
    return lambda t, c, f: rule(_required(t, c.err, f), c.err, f)


#: Every deal field a deals file or ``--set`` can give, with its rule (see the module doc).
FIELDS: dict[str, Field] = {
    "announced_date": Field(_iso_date, "announced_date"),
    "announced_time_et": Field(lambda t, c, f: _time(t, c.err, f), "announced_time_et"),
    "session": Field(_req(_session), "session", required=True),
    "payers": Field(lambda t, c, f: _parties(_required(t, c.err, f), c.reg, c.err, f), "payer", required=True),
    "payees": Field(lambda t, c, f: _parties(_required(t, c.err, f), c.reg, c.err, f), "payee", required=True),
    "amount_usd": Field(_money_text, "amount_usd_bn"),
    "payer_amount_usd": Field(_money_text),
    "amount_kind": Field(_amount_kind),
    "deal_type": Field(_req(_deal_type), "deal_type", required=True),
    "horizon": Field(lambda t, c, f: _horizon_value(t, c.err, f)),
    "tickers": Field(lambda t, c, f: _tickers(t, c.reg, c.err, f), "counterparty_tickers"),
    "contract_id": Field(_contract_id),
    "counts_toward_total": Field(lambda t, c, f: _flag(t, c.err, f)),
    "title": Field(lambda t, c, f: t or None, "source_title"),
    "confidence": Field(_req(_confidence), "confidence"),
    "sources": Field(lambda t, c, f: _sources(t, c.err, f, c.today)),
}
assert set(FIELDS) == MUTABLE_FIELDS, "every field an event may change has exactly one rule"


def parse_change(key: str, value: str, reg: Known, *, today: dt.date) -> Any:
    """Validate one ``--set FIELD=VALUE`` of amend/correct by the field's rule in :data:`FIELDS` (the
    rule import applies to that field's column). ``reg`` is the database's own registry."""

    def err(msg: str, fld: str) -> InputError:
        return InputError(msg, field=fld)

    value = value.strip()
    _check_text(value, err, key)
    rule = FIELDS.get(key)
    if rule is None:
        raise err(f"unknown or immutable field {key!r}; one of {', '.join(sorted(MUTABLE_FIELDS))}", "--set")
    return rule.parse(value, Context(reg, err, today), key)
