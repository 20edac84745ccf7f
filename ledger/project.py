"""Projections: current state as a pure function of the event log.

``fold(events)`` replays events into a :class:`LedgerState`; ``apply`` handles one event, so an
incremental projection (apply each new event to the previous state) and a full rebuild (fold all events)
are the same computation by construction, and a property test checks they agree.

Two time axes:

* *transaction time* (``as_known_at``): what the ledger knew at instant T = the events recorded up to T.
* *valid time* (``in_effect_on``): what was in effect on date D = deals announced on or before D, with
  amendments whose ``effective_date`` is on or before D. Corrections fix our record and apply at every
  valid date; retractions apply from their ``effective_date`` (always, if it has none).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from ledger.model import StoredEvent

DEAL_COLUMNS: dict[str, Any] = {
    "deal_id": pl.String,
    "contract_id": pl.String,
    "status": pl.String,
    "announced_date": pl.Date,
    "announced_time_et": pl.String,
    "session": pl.String,
    "payers": pl.List(pl.String),
    "payees": pl.List(pl.String),
    "amount_usd": pl.Decimal(38, 2),
    "amount_kind": pl.String,
    "deal_type": pl.String,
    "horizon": pl.String,
    "tickers": pl.List(pl.String),
    "counts_toward_total": pl.Boolean,
    "title": pl.String,
    "confidence": pl.String,
    "version": pl.Int64,
}
FLOW_COLUMNS: dict[str, Any] = {
    "deal_id": pl.String,
    "contract_id": pl.String,
    "payer": pl.String,
    "payee": pl.String,
    "amount_usd": pl.Float64,
    "amount_kind": pl.String,
    "deal_type": pl.String,
    "announced_date": pl.Date,
    "counts_toward_total": pl.Boolean,
}
COMPANY_COLUMNS: dict[str, Any] = {
    "company_id": pl.String,
    "name": pl.String,
    "listed": pl.Boolean,
    "tickers": pl.List(pl.String),
    "exchanges": pl.List(pl.String),
    "currencies": pl.List(pl.String),
}


@dataclass
class LedgerState:
    """Companies and deals after a sequence of events. ``history`` keeps each deal's event trail."""

    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    return dt.date.fromisoformat(str(value))


def apply(state: LedgerState, ev: StoredEvent, *, in_effect_on: dt.date | None = None) -> LedgerState:
    """Apply one event to ``state`` in place and return it (the fold step)."""
    p = ev.payload
    if ev.event_type == "CompanyRegistered":
        tickers = p.get("tickers", [])
        state.companies[p["company_id"]] = {
            "company_id": p["company_id"],
            "name": p["name"],
            "listed": bool(p["listed"]),
            "tickers": [t["symbol"] for t in tickers],
            "exchanges": [t["exchange"] for t in tickers],
            "currencies": [t["currency"] for t in tickers],
        }
        return state
    deal_id = p["deal_id"]
    state.history.setdefault(deal_id, []).append(
        {"position": ev.position, "event_type": ev.event_type, "payload": p, "recorded_at_us": ev.recorded_at_us}
    )
    if ev.event_type == "DealAnnounced":
        deal = {k: copy.deepcopy(v) for k, v in p.items() if k not in ("sources", "note")}
        deal["sources"] = copy.deepcopy(p.get("sources", []))
        deal["status"] = "active"
        deal["version"] = ev.stream_version
        state.deals[deal_id] = deal
        return state
    found = state.deals.get(deal_id)
    if found is None:  # the store rejects this; a projection of a foreign log simply ignores it
        return state
    deal = found
    deal["version"] = ev.stream_version
    effective = _date(p.get("effective_date"))
    in_effect = in_effect_on is None or effective is None or effective <= in_effect_on
    if ev.event_type == "DealCorrected" or (ev.event_type == "DealAmended" and in_effect):
        deal.update(copy.deepcopy(p["changes"]))
    elif ev.event_type == "DealRetracted" and in_effect:
        deal["status"] = "retracted"
    return state


def fold(
    events: Iterable[StoredEvent],
    *,
    as_known_at_us: int | None = None,
    in_effect_on: dt.date | None = None,
    state: LedgerState | None = None,
) -> LedgerState:
    """Replay ``events`` (in log order) into a state, optionally as known at / in effect on."""
    st = state if state is not None else LedgerState()
    for ev in events:
        if as_known_at_us is not None and ev.recorded_at_us > as_known_at_us:
            break  # the log is ordered by recorded_at, which is strictly increasing
        apply(st, ev, in_effect_on=in_effect_on)
    if in_effect_on is not None:
        st.deals = {
            k: d
            for k, d in st.deals.items()
            if (ad := _date(d.get("announced_date"))) is not None and ad <= in_effect_on
        }
    return st


def _amount(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def deal_rows(state: LedgerState, deal_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    ids = sorted(state.deals) if deal_ids is None else sorted(set(deal_ids) & set(state.deals))
    rows = []
    for k in ids:
        d = state.deals[k]
        rows.append(
            {
                "deal_id": k,
                "contract_id": d.get("contract_id") or k,
                "status": d["status"],
                "announced_date": _date(d.get("announced_date")),
                "announced_time_et": d.get("announced_time_et"),
                "session": d.get("session") or "unknown",
                "payers": list(d.get("payers", [])),
                "payees": list(d.get("payees", [])),
                "amount_usd": _amount(d.get("amount_usd")),
                "amount_kind": d.get("amount_kind") or "undisclosed",
                "deal_type": d["deal_type"],
                "horizon": d.get("horizon"),
                "tickers": list(d.get("tickers", [])),
                "counts_toward_total": bool(d.get("counts_toward_total", True)),
                "title": d.get("title"),
                "confidence": d.get("confidence"),
                "version": int(d["version"]),
            }
        )
    return rows


def flow_rows(deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One edge per payer x payee.

    A deal with several payers or payees (the Stargate joint venture) does not say who pays what, so
    its edges carry ``amount_usd = None`` and do not count toward totals: splitting the headline evenly
    would invent numbers, and giving it all to one party would misstate the graph. The deal itself
    keeps its amount in ``deals``.
    """
    rows = []
    for d in deals:
        multi = len(d["payers"]) * len(d["payees"]) > 1
        amt = None if multi or d["amount_usd"] is None else float(d["amount_usd"])
        for payer in d["payers"]:
            for payee in d["payees"]:
                rows.append(
                    {
                        "deal_id": d["deal_id"],
                        "contract_id": d["contract_id"],
                        "payer": payer,
                        "payee": payee,
                        "amount_usd": amt,
                        "amount_kind": "undisclosed" if multi else d["amount_kind"],
                        "deal_type": d["deal_type"],
                        "announced_date": d["announced_date"],
                        "counts_toward_total": bool(d["counts_toward_total"]) and not multi,
                    }
                )
    rows.sort(key=lambda r: (r["deal_id"], r["payer"], r["payee"]))
    return rows


def company_rows(state: LedgerState) -> list[dict[str, Any]]:
    return [state.companies[k] for k in sorted(state.companies)]


def deals_frame(state: LedgerState) -> pl.DataFrame:
    return pl.DataFrame(deal_rows(state), schema=DEAL_COLUMNS, orient="row")


def flows_frame(state: LedgerState, *, active_only: bool = True) -> pl.DataFrame:
    deals = [d for d in deal_rows(state) if d["status"] == "active" or not active_only]
    return pl.DataFrame(flow_rows(deals), schema=FLOW_COLUMNS, orient="row")


def companies_frame(state: LedgerState) -> pl.DataFrame:
    return pl.DataFrame(company_rows(state), schema=COMPANY_COLUMNS, orient="row")
