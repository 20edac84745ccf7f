"""Projections: current state as a pure function of the event log.

``fold(events)`` replays events into a :class:`LedgerState`; ``apply`` handles one event, so an
incremental projection (apply each new event to the previous state) and a full rebuild (fold all events)
are the same computation by construction, and a property test checks they agree.

Two time axes:

* *transaction time* (``as_known_at``): what the ledger knew at instant T = the events recorded up to T.
* *valid time* (``in_effect_on``): what was in effect on date D = deals announced on or before D, with,
  per field, the amendments whose ``effective_date`` is on or before D applied **in order of effective
  date** (ties broken by log position). The order in which amendments were *recorded* does not matter
  for valid time: an amendment effective 2026-03-01 recorded before one effective 2026-01-01 still wins
  from 2026-03-01 on. An amendment without an effective date applies at every valid date (it sorts before
  every dated amendment). Retractions apply from their ``effective_date`` (always, if it has none).
* *corrections* (``DealCorrected``, "our record was wrong") are not business changes and have no valid
  time: a correction fixes the record *as of the original announcement*, so it applies at every valid
  date, in log order with the other corrections, underneath the amendments. A correction therefore never
  overrides an amendment of the same field that is in effect: to fix a mis-recorded amendment, record an
  amendment with the same effective date (the later log position wins the tie). Any other rule would
  need to order a correction against amendments by log position while amendments are ordered by
  effective date among themselves, and that is not a total order (it can be cyclic).

What "current" means (``in_effect_on=None``; the materialised ``ledger_deals``/``ledger_flows`` tables,
the ``deals``/``flows`` views, and ``as_known_at`` without ``in_effect_on``): the state with **every known
amendment applied in effective-date order**, including amendments effective in the future, i.e. the
state in effect on the latest date (D = +infinity, and undated deals are kept). It is deliberately *not*
"in effect today": that would make the stored projection a function of the wall clock as well as of the
log, so it would go stale at midnight without any event being appended, a full rebuild would disagree
with the incremental projection, and ``verify`` could not compare them. "As known at T" uses the same
rule on the log prefix up to T, so ``deals(as_known_at=now) == deals()``. Ask ``in_effect_on=today`` for
the state in effect today.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Context, Decimal
from typing import Any

import polars as pl
import pyarrow as pa

from ledger.model import REGISTRY, StoredEvent
from ledger.state import DealTrail as DealTrail  # re-exported: callers build states through project
from ledger.state import LedgerState as LedgerState
from ledger.state import parse_date

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
    # The part of amount_usd the payer(s) pay themselves when others share the deal (NULL: all of it).
    "payer_amount_usd": pl.Decimal(38, 2),
    # Timing evidence (ledger.timing; NULL where none is recorded), beside the official announced_* fields:
    # the first credible report (an earlier leak where one is known) and the earliest public time found.
    "first_report_date": pl.Date,
    "first_report_time_et": pl.String,
    "first_report_session": pl.String,
    "timing_time_et": pl.String,
    "timing_session": pl.String,
    "timing_evidence_kind": pl.String,
    "timing_confidence": pl.String,
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
    # The deal reports a contract that another report counts for (contracts.csv). counts_toward_total is
    # False both for such a report and for the edges of a multi-party deal (no attributable amount, yet a
    # committed flow); this tells them apart, also for a multi-party deal that is a duplicate report.
    "duplicate_report": pl.Boolean,
}
COMPANY_COLUMNS: dict[str, Any] = {
    "company_id": pl.String,
    "name": pl.String,
    "listed": pl.Boolean,
    "tickers": pl.List(pl.String),
    "exchanges": pl.List(pl.String),
    "currencies": pl.List(pl.String),
}


_date = parse_date


def _in_effect(effective: dt.date | None, on: dt.date | None) -> bool:
    return on is None or effective is None or effective <= on


def derive(trail: DealTrail, in_effect_on: dt.date | None = None) -> dict[str, Any]:
    """The deal's state in effect on ``in_effect_on`` (None: every known amendment, see the module doc).

    Starts from the (corrected) announced record and applies, field by field, the amendments in effect
    in (effective date, log position) order: the last one to touch a field sets it. Values are shared
    with the trail, never mutated in place (only replaced), so no copy is needed.
    """
    deal = dict(trail.base)
    for (effective, _pos), changes in trail.amendments:
        if in_effect_on is None or effective <= in_effect_on:
            deal.update(changes)
    retracted = any(_in_effect(r, in_effect_on) for r in trail.retractions)
    deal["status"] = "retracted" if retracted else "active"
    deal["version"] = trail.version
    return deal


def apply(state: LedgerState, ev: StoredEvent, *, in_effect_on: dt.date | None = None) -> LedgerState:
    """Apply one event to ``state`` in place and return it (the fold step): the event's type
    (:data:`ledger.model.REGISTRY`) says how it changes the state; the touched deal is then re-derived."""
    trail = REGISTRY[ev.event_type].apply(state, ev)
    if trail is not None:
        trail.version = ev.stream_version
        state.deals[ev.payload["deal_id"]] = derive(trail, in_effect_on)
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


_CENT = Decimal("0.01")
_WIDE = Context(prec=40)  # DECIMAL(38, 2) holds 36 integer digits; the default context has 28


def _amount(value: Any) -> Decimal | None:
    """Whole cents, rounded half-even: what the DECIMAL(38, 2) column stores (Polars' own conversion), made
    explicit so that ``verify`` can compare stored rows with rebuilt ones without going through Polars."""
    return None if value in (None, "") else Decimal(str(value)).quantize(_CENT, context=_WIDE)


def deal_rows(state: LedgerState, deal_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    cols = deal_columns(state, deal_ids)
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def deal_row(k: str, d: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ledger_deals`` row of deal ``k`` in state ``d`` (a derived deal record)."""
    return {c: v[0] for c, v in _deal_columns([k], [d]).items()}


def deal_columns(state: LedgerState, deal_ids: Iterable[str] | None = None) -> dict[str, list[Any]]:
    """The ``ledger_deals`` rows of ``state`` (sorted by deal id) as columns: what the writer inserts,
    built a column at a time (a dict per row, then a column per key, was a fifth of an append)."""
    ids = sorted(state.deals) if deal_ids is None else sorted(set(deal_ids) & set(state.deals))
    return _deal_columns(ids, [state.deals[k] for k in ids])


def _deal_columns(ids: list[str], ds: list[Mapping[str, Any]], status: list[str] | None = None,
                  version: list[int] | None = None) -> dict[str, list[Any]]:
    """The one definition of a deal row (:func:`deal_row`, :func:`deal_rows` and the frames use it).
    ``status`` and ``version``, when given, replace the records' own keys (:func:`batch_frames` passes a
    payload as the record, which has neither)."""
    return {
        "deal_id": list(ids),
        "contract_id": [d.get("contract_id") or k for k, d in zip(ids, ds, strict=True)],
        "status": [d["status"] for d in ds] if status is None else status,
        "announced_date": [_date(d.get("announced_date")) for d in ds],
        "announced_time_et": [d.get("announced_time_et") for d in ds],
        "session": [d.get("session") or "unknown" for d in ds],
        "payers": [list(d.get("payers") or []) for d in ds],
        "payees": [list(d.get("payees") or []) for d in ds],
        "amount_usd": [_amount(d.get("amount_usd")) for d in ds],
        "amount_kind": [d.get("amount_kind") or "undisclosed" for d in ds],
        "deal_type": [d["deal_type"] for d in ds],
        "horizon": [d.get("horizon") for d in ds],
        "tickers": [list(d.get("tickers") or []) for d in ds],
        "counts_toward_total": [bool(d.get("counts_toward_total", True)) for d in ds],
        "title": [d.get("title") for d in ds],
        "confidence": [d.get("confidence") for d in ds],
        "version": [int(d["version"]) for d in ds] if version is None else version,
        "payer_amount_usd": [_amount(d.get("payer_amount_usd")) for d in ds],
        "first_report_date": [_date(d.get("first_report_date")) for d in ds],
        "first_report_time_et": [d.get("first_report_time_et") for d in ds],
        "first_report_session": [d.get("first_report_session") for d in ds],
        "timing_time_et": [d.get("timing_time_et") for d in ds],
        "timing_session": [d.get("timing_session") for d in ds],
        "timing_evidence_kind": [d.get("timing_evidence_kind") for d in ds],
        "timing_confidence": [d.get("timing_confidence") for d in ds],
    }


def new_problem(
    events: list[StoredEvent], new: StoredEvent, check: Callable[[dict[str, Any]], str | None]
) -> tuple[dt.date, str] | None:
    """The first valid date on which ``check`` finds a problem with the deal after ``new`` is appended to
    its stream ``events`` that it did not find before (a problem already there is not blamed on the
    change), with the problem; None if there is none. The deal can only change on its earliest state and
    on each amendment's effective date, so those are the dates checked (``dt.date.min`` = from the start).
    """
    deal_id = new.payload["deal_id"]
    before, after = fold(events).trails[deal_id], fold([*events, new]).trails[deal_id]
    days = sorted({dt.date.min, *(effective for (effective, _pos), _ch in after.amendments)})
    for day in days:
        problem = check(derive(after, day))
        if problem is not None and problem != check(derive(before, day)):
            return day, problem
    return None


def payer_share_problem(deal: Mapping[str, Any]) -> str | None:
    """Why a deal's ``payer_amount_usd`` cannot stand, or None (also None when it has none).

    The share is what one payer pays of a disclosed amount to one payee: it needs an amount, must be
    positive and at most the amount, and a multi-party deal has no single payer to give it to.
    """
    share = deal.get("payer_amount_usd")
    if share in (None, ""):
        return None
    amount = deal.get("amount_usd")
    if amount in (None, ""):
        return "a payer share needs a disclosed amount_usd"
    if Decimal(str(share)) <= 0:
        return f"payer_amount_usd {share} must be positive"
    if Decimal(str(share)) > Decimal(str(amount)):
        return f"payer_amount_usd {share} is more than amount_usd {amount}"
    if len(deal.get("payers") or []) != 1 or len(deal.get("payees") or []) != 1:
        return "a payer share needs exactly one payer and one payee (a multi-party deal has no attributable amount)"
    return None


def flow_rows(deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One edge per payer x payee (see :func:`flow_columns`), as row dicts."""
    # payer_amount_usd by .get: a row of a caller that predates the column has none.
    cols = flow_columns({c: [d.get(c) if c == "payer_amount_usd" else d[c] for d in deals] for c in _FLOW_INPUTS})
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


#: The deal columns an edge is built from.
_FLOW_INPUTS = ("deal_id", "contract_id", "payers", "payees", "amount_usd", "payer_amount_usd", "amount_kind",
                "deal_type", "announced_date", "counts_toward_total")


def flow_columns(deals: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """One edge per payer x payee of the deal columns ``deals`` (:func:`deal_columns`), sorted by (deal_id,
    payer, payee), as columns.

    A deal with several payers or payees (the Stargate joint venture) does not say who pays what, so
    its edges carry ``amount_usd = None`` and do not count toward totals: splitting the headline evenly
    would invent numbers, and giving it all to one party would misstate the graph. The deal itself
    keeps its amount in ``deals``.
    """
    edges = []
    for did, cid, payers, payees, amount, share, kind, dtype, announced, counts in zip(
            *(deals[c] for c in _FLOW_INPUTS), strict=True):
        multi = len(payers) * len(payees) > 1
        # A syndicated deal's edge carries what the named payer pays, not the co-investors' part.
        # (The writers refuse an invalid share; a foreign log's invalid one is ignored, not trusted.)
        share_ok = share is not None and payer_share_problem(
            {"payer_amount_usd": share, "amount_usd": amount, "payers": payers, "payees": payees}) is None
        paid = share if share_ok else amount
        amt = None if multi or paid is None else float(paid)
        for payer in payers:
            for payee in payees:
                edges.append((did, cid, payer, payee, amt, "undisclosed" if multi else kind, dtype, announced,
                              bool(counts) and not multi, not bool(counts)))
    edges.sort(key=lambda r: (r[0], r[2], r[3]))
    names = list(FLOW_COLUMNS)
    if not edges:
        return {c: [] for c in names}
    return {c: list(v) for c, v in zip(names, zip(*edges, strict=True), strict=True)}


def company_rows(state: LedgerState) -> list[dict[str, Any]]:
    return [state.companies[k] for k in sorted(state.companies)]


_STRINGS = pl.List(pl.String)


def _string_lists(name: str, values: list[Any]) -> pl.Series:
    """A list-of-strings column from Python lists, without a Series per row: the flat strings and the
    offsets become one Arrow list array (Arrow arrays built from Polars, not from Python objects)."""
    lengths = pl.Series([len(v) for v in values], dtype=pl.Int64)
    offsets = pl.concat([pl.Series([0], dtype=pl.Int64), lengths.cum_sum()]).to_arrow()
    flat = pl.Series(name, [s for v in values for s in v], dtype=pl.String).to_arrow()
    return pl.Series(name, pa.LargeListArray.from_arrays(offsets, flat))


def rows_frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    """A frame of projection rows with exactly ``schema`` (see :func:`columns_frame`)."""
    return columns_frame({c: [r[c] for r in rows] for c in schema}, schema)


def columns_frame(columns: Mapping[str, list[Any]], schema: dict[str, Any]) -> pl.DataFrame:
    """A frame of projection columns with exactly ``schema``.

    Built column by column: Polars' row constructor builds one Series per list value (about 10 us per
    row and list column), which made it most of an append's time. Not through ``pyarrow.array`` on
    Python lists either: its first call imports pandas (0.6-1.1 s), which every ``carousel ledger
    import`` process then paid for its first projection write. A list column holding a None (no
    projection writes one) takes Polars' own constructor.
    """
    if not any(len(v) for v in columns.values()):
        return pl.DataFrame(schema=schema)  # an empty batch (no company in an import of deals): no Series
    out = []
    for c, t in schema.items():
        values = columns[c]
        if t == _STRINGS and None not in values:
            out.append(_string_lists(c, values))
        else:
            out.append(pl.Series(c, values, dtype=t))
    frame = pl.DataFrame(out)
    # The columns are built with their dtypes; the cast (a lazy query, ~0.2 ms a call) only when one differs.
    return frame if frame.schema == pl.Schema(schema) else frame.cast(pl.Schema(schema))


def deals_frame(state: LedgerState, rows: list[dict[str, Any]] | None = None) -> pl.DataFrame:
    """``ledger_deals`` rows of ``state`` (or of ``rows`` already computed by :func:`deal_rows`)."""
    if rows is None:
        return columns_frame(deal_columns(state), DEAL_COLUMNS)
    return rows_frame(rows, DEAL_COLUMNS)


def flows_frame(
    state: LedgerState, *, active_only: bool = True, rows: list[dict[str, Any]] | None = None
) -> pl.DataFrame:
    """``ledger_flows`` rows of ``state`` (or of the deal ``rows`` already computed by :func:`deal_rows`)."""
    if rows is None:
        cols = deal_columns(state)
        if active_only:
            keep = [i for i, st in enumerate(cols["status"]) if st == "active"]
            cols = {c: [v[i] for i in keep] for c, v in cols.items()}
        return columns_frame(flow_columns(cols), FLOW_COLUMNS)
    deals = [d for d in rows if d["status"] == "active" or not active_only]
    return rows_frame(flow_rows(deals), FLOW_COLUMNS)


def projection_frames(state: LedgerState) -> dict[str, pl.DataFrame]:
    """The three projection tables' rows for ``state`` (every deal and company it holds; flows of
    retracted deals too, as stored), built from columns."""
    deals = deal_columns(state)
    return {
        "ledger_companies": companies_frame(state),
        "ledger_deals": columns_frame(deals, DEAL_COLUMNS),
        "ledger_flows": columns_frame(flow_columns(deals), FLOW_COLUMNS),
    }


def batch_frames(events: Sequence[StoredEvent]) -> dict[str, pl.DataFrame]:
    """:func:`projection_frames` of :func:`fold` of ``events`` (equal, frame for frame; a test holds them
    equal on random logs), without folding what needs no fold.

    Why: an append of new deals (most of an import) is one DealAnnounced per deal, and for such a deal
    the fold derives exactly its payload, ``status`` active and ``version`` its stream version (a trail
    with no amendment, correction or retraction). Building those rows straight from the payloads skips a
    history entry, a trail and two dict copies per event, a fifth of the projection refresh. Every other
    deal (one with several events here, or one whose only event is not its announcement) and every
    company goes through the fold.
    """
    per_deal = Counter(e.payload["deal_id"] for e in events if REGISTRY[e.event_type].stream_kind == "deal")
    direct = {e.payload["deal_id"]: e for e in events
              if e.event_type == "DealAnnounced" and per_deal[e.payload["deal_id"]] == 1}
    state = fold(e for e in events if not (e.event_type == "DealAnnounced" and e.payload["deal_id"] in direct))
    ids = sorted(state.deals.keys() | direct.keys())
    ds: list[Mapping[str, Any]] = []
    status: list[str] = []
    version: list[int] = []
    for k in ids:
        ev = direct.get(k)
        if ev is None:
            d = state.deals[k]
            ds.append(d)
            status.append(d["status"])
            version.append(int(d["version"]))
        else:
            ds.append(ev.payload)
            status.append("active")
            version.append(ev.stream_version)
    deals = _deal_columns(ids, ds, status, version)
    return {
        "ledger_companies": companies_frame(state),
        "ledger_deals": columns_frame(deals, DEAL_COLUMNS),
        "ledger_flows": columns_frame(flow_columns(deals), FLOW_COLUMNS),
    }


def companies_frame(state: LedgerState) -> pl.DataFrame:
    return rows_frame(company_rows(state), COMPANY_COLUMNS)
