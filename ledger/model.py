"""Ledger event types, canonical JSON and upcasters.

Why canonical JSON: the hash chain covers the payload text, so the same fact must always serialise to the
same bytes (sorted keys, no whitespace, UTF-8, Decimals as strings; floats are refused because binary
floats cannot represent money exactly and would make hashes depend on formatting).

Why upcasters: events are immutable, so when a payload's shape changes we never rewrite stored events.
Each event type has a current ``schema_version``; older payloads are upgraded on read by a chain of pure
functions (its ``upcasters``).

Why one registry of event classes (:data:`REGISTRY`): everything the ledger knows about an event type,
its name, schema version, upcasters, which stream it belongs to and how it changes the projected state,
lives in one class, so a new event type is one class plus one registry entry.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from ledger.state import DealTrail, LedgerState, parse_date

SESSIONS = ("pre_market", "intraday", "after_close", "non_trading", "unknown")
AMOUNT_KINDS = ("exact", "up_to", "estimate", "undisclosed")
DEAL_TYPES = (
    "equity_investment",
    "equity_investment_loi",
    "equity_warrant",
    "equity_for_contract",
    "compute_purchase_commitment",
    "cloud_compute_purchase",
    "chip_purchase",
    "custom_chip_supply",
    "capacity_backstop",
    "joint_venture_commitment",
    "capacity_expansion",
    "open_market_stake",
    "stake_divestment",
    "amendment_report",
)
#: Deal fields an amendment or correction may change.
MUTABLE_FIELDS = frozenset(
    {
        "announced_date",
        "announced_time_et",
        "session",
        "payers",
        "payees",
        "amount_usd",
        "amount_kind",
        "payer_amount_usd",
        "deal_type",
        "horizon",
        "tickers",
        "contract_id",
        "counts_toward_total",
        "title",
        "confidence",
        "sources",
    }
)

_NAMESPACE = uuid.UUID("6f1c2d3e-7a8b-4c5d-9e0f-a1b2c3d4e5f6")


def _default(obj: object) -> str:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    raise TypeError(f"cannot serialise {type(obj).__name__} in a ledger payload")


def _reject_floats(value: object, path: str = "payload") -> None:
    if isinstance(value, float):
        raise TypeError(f"{path} is a float; ledger amounts must be Decimal or str")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _reject_floats(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _reject_floats(v, f"{path}[{i}]")


_PLAIN = (str, int, bool, type(None), Decimal)


def _has_float(value: object) -> bool:
    """Whether a float hides anywhere in ``value``: a path-free scan, as cheap as the common case allows
    (building a path string per element cost more than the JSON encoding itself)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _PLAIN):
            continue
        if isinstance(v, float):
            return True
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return False


def canonical_json(payload: Mapping[str, Any]) -> str:
    """The one byte representation of a payload that the hash chain covers."""
    if _has_float(payload):
        _reject_floats(payload)  # raises, naming where the float is
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def is_canonical(text: str) -> bool:
    try:
        return canonical_json(json.loads(text, parse_float=Decimal)) == text
    except (ValueError, TypeError):
        return False


def event_id_for(stream_id: str, event_type: str, discriminator: str = "") -> str:
    """Deterministic event id, so that re-importing the same fact is recognised as a retry."""
    return str(uuid.uuid5(_NAMESPACE, f"{stream_id}\x1f{event_type}\x1f{discriminator}"))


def deal_stream(deal_id: str) -> str:
    return f"deal-{deal_id}"


def company_stream(company_id: str) -> str:
    return f"company-{company_id}"


@dataclass(frozen=True)
class NewEvent:
    """An event to append. ``payload`` must already be in the current schema version."""

    event_id: str
    stream_id: str
    event_type: str
    payload: Mapping[str, Any]
    schema_version: int | None = None

    def __post_init__(self) -> None:
        if self.event_type not in REGISTRY:
            raise ValueError(f"unknown event type {self.event_type!r}")

    @property
    def version(self) -> int:
        return self.schema_version or CURRENT_VERSION[self.event_type]

    @property
    def payload_json(self) -> str:
        return canonical_json(self.payload)


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back from the log, payload upcast to the current schema version."""

    position: int
    event_id: str
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    payload: dict[str, Any] = field(hash=False)
    recorded_at_us: int  # microseconds since the epoch, UTC (transaction time)


# --- event types -----------------------------------------------------------------------------------

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _deal_announced_v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
    # v1 stored the headline amount in US$ billions (``amount_usd_bn``, a decimal string); v2 stores
    # whole US dollars (``amount_usd``) so that sums never mix units.
    q = dict(p)
    bn = q.pop("amount_usd_bn", None)
    q["amount_usd"] = None if bn in (None, "") else format(Decimal(str(bn)) * Decimal(10**9), "f")
    return q


class EventType:
    """One kind of event: its name in the log, current schema version, upcasters (from version v to
    v + 1, keyed by v), the stream kind it belongs to, and how it changes a :class:`LedgerState`.

    ``apply`` updates the state in place and returns the trail of the deal it touched (None for a
    company event, or a deal event of a stream the state does not know, which a projection of a foreign
    log ignores): :func:`ledger.project.apply` then re-derives that deal.
    """

    name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}
    stream_kind: ClassVar[str] = "deal"
    #: Whether the event must follow an existing stream (amend/correct/retract) or start one.
    starts_stream: ClassVar[bool] = False

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        raise NotImplementedError


class CompanyRegistered(EventType):
    name = "CompanyRegistered"
    stream_kind = "company"
    starts_stream = True

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        p = ev.payload
        tickers = p.get("tickers") or []  # a null list (a foreign log) is an empty one, as in SQL
        state.companies[p["company_id"]] = {
            "company_id": p["company_id"],
            "name": p["name"],
            "listed": bool(p["listed"]),
            "tickers": [t["symbol"] for t in tickers],
            "exchanges": [t["exchange"] for t in tickers],
            "currencies": [t["currency"] for t in tickers],
        }
        return None


def _trail(state: LedgerState, ev: StoredEvent) -> DealTrail | None:
    """The deal's trail, with ``ev`` added to its history; None if the deal was never announced."""
    deal_id = ev.payload["deal_id"]
    state.history.setdefault(deal_id, []).append(
        {"position": ev.position, "event_type": ev.event_type, "payload": ev.payload,
         "recorded_at_us": ev.recorded_at_us}
    )
    return state.trails.get(deal_id)


class DealAnnounced(EventType):
    name = "DealAnnounced"
    schema_version = 2
    upcasters = {1: _deal_announced_v1_to_v2}
    starts_stream = True

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        _trail(state, ev)
        # A shallow copy is enough: a deal's values are only ever replaced (dict.update), never mutated in
        # place, so the payload kept in ``history`` is not affected (deepcopy was most of the fold's time).
        trail = state.trails[ev.payload["deal_id"]] = DealTrail({k: v for k, v in ev.payload.items() if k != "note"})
        return trail


class DealCorrected(EventType):
    """Our record was wrong from the start: fixes the base record at every valid date."""

    name = "DealCorrected"

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        trail = _trail(state, ev)
        if trail is not None:
            trail.base = {**trail.base, **ev.payload["changes"]}
        return trail


class DealAmended(EventType):
    """A business change with an effective date (valid time)."""

    name = "DealAmended"

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        trail = _trail(state, ev)
        if trail is not None:
            effective = parse_date(ev.payload.get("effective_date")) or dt.date.min
            # Positions increase along the log, so appending keeps ties in log order; insort keeps the
            # list sorted when an amendment is recorded after one with a later effective date.
            bisect.insort(trail.amendments, ((effective, ev.position), ev.payload["changes"]), key=lambda a: a[0])
        return trail


class DealRetracted(EventType):
    name = "DealRetracted"

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        trail = _trail(state, ev)
        if trail is not None:
            trail.retractions.append(parse_date(ev.payload.get("effective_date")))
        return trail


#: What a DealTimingEvidenced sets on the deal record (payload key -> deal field).
TIMING_FIELDS = {
    "first_report_date": "first_report_date",
    "first_report_time_et": "first_report_time_et",
    "first_report_session": "first_report_session",
    "first_public_time_et": "timing_time_et",
    "session": "timing_session",
    "evidence_kind": "timing_evidence_kind",
    "confidence": "timing_confidence",
}


class DealTimingEvidenced(EventType):
    """Evidence of when the announcement first became public (``ledger.timing``): sets the ``timing_*``
    and ``first_report_*`` fields at every valid date, beside (never over) the official announced_*
    fields; a later evidence event of the deal supersedes an earlier one."""

    name = "DealTimingEvidenced"

    @classmethod
    def apply(cls, state: LedgerState, ev: StoredEvent) -> DealTrail | None:
        trail = _trail(state, ev)
        if trail is not None:
            trail.base = {**trail.base, **{f: ev.payload.get(k) for k, f in TIMING_FIELDS.items()}}
        return trail


#: Every event type, by name: the one place the ledger learns about a kind of event.
REGISTRY: dict[str, type[EventType]] = {
    t.name: t for t in (CompanyRegistered, DealAnnounced, DealAmended, DealCorrected, DealRetracted,
                        DealTimingEvidenced)
}
#: Event types and their current schema versions (derived from :data:`REGISTRY`).
CURRENT_VERSION: dict[str, int] = {name: t.schema_version for name, t in REGISTRY.items()}
EVENT_TYPES = frozenset(REGISTRY)
#: Upcasters by (event type, from version), derived from :data:`REGISTRY`.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (name, v): f for name, t in REGISTRY.items() for v, f in t.upcasters.items()
}


def upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply upcasters until the payload is in the current schema version."""
    current = CURRENT_VERSION[event_type]
    if version > current:
        raise ValueError(f"{event_type} schema_version {version} is newer than this carousel ({current})")
    while version < current:
        payload = UPCASTERS[(event_type, version)](payload)
        version += 1
    return payload
