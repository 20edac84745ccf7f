"""Ledger event types, canonical JSON and upcasters.

Why canonical JSON: the hash chain covers the payload text, so the same fact must always serialise to the
same bytes (sorted keys, no whitespace, UTF-8, Decimals as strings; floats are refused because binary
floats cannot represent money exactly and would make hashes depend on formatting).

Why upcasters: events are immutable, so when a payload's shape changes we never rewrite stored events.
Each event type has a current ``schema_version``; older payloads are upgraded on read by a chain of pure
functions registered in :data:`UPCASTERS`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: Event types and their current schema versions.
CURRENT_VERSION: dict[str, int] = {
    "CompanyRegistered": 1,
    "DealAnnounced": 2,
    "DealAmended": 1,
    "DealCorrected": 1,
    "DealRetracted": 1,
}
EVENT_TYPES = frozenset(CURRENT_VERSION)

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
        if self.event_type not in EVENT_TYPES:
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


# --- upcasters -------------------------------------------------------------------------------------

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _deal_announced_v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
    # v1 stored the headline amount in US$ billions (``amount_usd_bn``, a decimal string); v2 stores
    # whole US dollars (``amount_usd``) so that sums never mix units.
    q = dict(p)
    bn = q.pop("amount_usd_bn", None)
    q["amount_usd"] = None if bn in (None, "") else format(Decimal(str(bn)) * Decimal(10**9), "f")
    return q


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("DealAnnounced", 1): _deal_announced_v1_to_v2,
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
