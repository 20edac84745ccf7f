"""The in-memory state a replay of the log builds: companies, deals and each deal's trail.

Kept apart from :mod:`ledger.project` (which derives rows and frames from it) so that the event types
in :mod:`ledger.model` can say how each one changes the state without importing the projection code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DealTrail:
    """What the log says about one deal, from which its state on any valid date is derived.

    ``base`` is the announced record with every correction applied (valid at every date);
    ``amendments`` are ``(sort key, changes)`` kept sorted by (effective date, log position);
    ``retractions`` are the retractions' effective dates (None = always).
    """

    base: dict[str, Any]
    amendments: list[tuple[tuple[dt.date, int], dict[str, Any]]] = field(default_factory=list)
    retractions: list[dt.date | None] = field(default_factory=list)
    version: int = 0


@dataclass
class LedgerState:
    """Companies and deals after a sequence of events. ``history`` keeps each deal's event trail.

    ``deals`` is derived: after every event, the touched deal is re-derived from its :class:`DealTrail`
    (for the valid date the fold was asked for), so the order in which amendments were recorded cannot
    leak into the result.
    """

    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    trails: dict[str, DealTrail] = field(default_factory=dict)


def parse_date(value: Any) -> dt.date | None:
    """An ISO date from a payload ('' and None mean none)."""
    if value in (None, ""):
        return None
    return dt.date.fromisoformat(str(value))
