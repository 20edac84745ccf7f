"""``ledger.project.batch_frames`` (the append's projection rows, new announcements without the fold)
equals ``projection_frames(fold(events))`` exactly (values, dtypes, row order), on random batches.

The batches mix what an append's fold input can hold: new announcements (the direct route), announcements
followed by corrections, amendments, retractions and timing evidence in the same batch, events of a deal
before its announcement, a second announcement of a deal, a deal id announced on two streams, a payload
with its own ``status`` / ``version`` / ``note`` keys, and company registrations.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import project
from ledger.model import CURRENT_VERSION, StoredEvent, canonical_json, upcast

DEALS = ("d1", "d2", "d3", "d4")
PARTIES = st.lists(st.sampled_from(("openai", "oracle", "nvidia", "amd")), min_size=1, max_size=2, unique=True)
AMOUNTS = st.sampled_from(("1000000000.00", "1.5", "0.125", "123.456", "", None, "7"))


@st.composite
def _payload(draw: st.DrawFn, deal: str) -> dict[str, Any]:
    p: dict[str, Any] = {"deal_id": deal, "deal_type": draw(st.sampled_from(("chip_purchase", "equity_investment"))),
                         "payers": draw(PARTIES), "payees": draw(PARTIES),
                         "announced_date": draw(st.sampled_from(("2025-01-02", "2025-06-30", "", None)))}
    opt = {"amount_usd": AMOUNTS, "payer_amount_usd": st.sampled_from(("500000000.00", "0.5", None)),
           "amount_kind": st.sampled_from(("exact", "up_to", "", None)), "title": st.text("ab ", max_size=3),
           "contract_id": st.sampled_from(("c1", "", None)), "counts_toward_total": st.sampled_from((True, False)),
           "session": st.sampled_from(("intraday", "", None)), "tickers": st.lists(st.sampled_from(("ORCL", "NVDA")),
                                                                                   max_size=2, unique=True),
           "note": st.just("n"), "status": st.just("odd"), "version": st.just(99),
           "first_report_date": st.sampled_from(("2024-12-31", None))}
    for k in draw(st.lists(st.sampled_from(sorted(opt)), unique=True, max_size=6)):
        p[k] = draw(opt[k])
    return p


@st.composite
def _batches(draw: st.DrawFn) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    versions: dict[str, int] = {}
    for pos in range(1, draw(st.integers(1, 16)) + 1):
        deal = draw(st.sampled_from(DEALS))
        kind = draw(st.sampled_from(("announce", "announce", "announce", "correct", "amend", "retract", "timing",
                                     "company")))
        stream = f"deal-{deal}" if draw(st.integers(0, 5)) else f"deal-{deal}-other"  # a deal id on two streams
        ver = 2
        if kind == "announce":
            et, payload = "DealAnnounced", draw(_payload(deal))
            if draw(st.integers(0, 4)) == 0:  # a v1 payload (US$ bn), upcast on read
                ver = 1
                payload.pop("amount_usd", None)
                payload["amount_usd_bn"] = draw(st.sampled_from(("300", "0.35", "")))
        elif kind == "company":
            et, stream = "CompanyRegistered", f"company-c{pos}"
            payload = {"company_id": f"c{pos}", "name": "C", "listed": True,
                       "tickers": [{"symbol": "C", "exchange": "XNYS", "currency": "USD"}]}
        elif kind == "correct":
            et, payload = "DealCorrected", {"deal_id": deal, "changes": {"title": "fixed", "amount_usd": "5"},
                                            "reason": ""}
        elif kind == "amend":
            et, payload = "DealAmended", {"deal_id": deal, "changes": {"amount_usd": "9.99"}, "reason": "",
                                          "effective_date": draw(st.sampled_from((None, "2025-03-01")))}
        elif kind == "retract":
            et, payload = "DealRetracted", {"deal_id": deal, "reason": "", "effective_date": None}
        else:
            et, payload = "DealTimingEvidenced", {"deal_id": deal, "session": "pre_market", "confidence": "high"}
        ver = ver if et == "DealAnnounced" else CURRENT_VERSION[et]
        versions[stream] = versions.get(stream, 0) + 1
        data = json.loads(canonical_json(payload), parse_float=Decimal)  # what the writer folds
        out.append(StoredEvent(pos, f"e{pos}", stream, versions[stream], et, CURRENT_VERSION[et],
                               upcast(et, ver, data), 1_750_000_000_000_000 + pos))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches())
def test_batch_frames_equal_the_frames_of_the_fold(events: list[StoredEvent]) -> None:
    want = project.projection_frames(project.fold(events))
    got = project.batch_frames(events)
    assert got.keys() == want.keys()
    for table, frame in want.items():
        assert got[table].equals(frame), table
        assert got[table].schema == frame.schema


def test_a_batch_of_new_announcements_takes_the_direct_route_and_gives_the_folds_rows() -> None:
    """Non-vacuous: the direct route is the one taken for plain announcements (no fold of them), and
    its rows carry the stream version and 'active', not the payload's own keys."""
    events = [StoredEvent(i, f"e{i}", f"deal-d{i}", 1, "DealAnnounced", 2,
                          {"deal_id": f"d{i}", "deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"],
                           "amount_usd": f"{i}.5", "status": "odd", "version": 99}, i) for i in range(1, 4)]
    folded: list[int] = []
    real_fold = project.fold

    def counting_fold(evs: Any, **kw: Any) -> project.LedgerState:
        evs = list(evs)
        folded.append(len(evs))
        return real_fold(evs, **kw)

    project.fold = counting_fold  # type: ignore[assignment]
    try:
        got = project.batch_frames(events)
    finally:
        project.fold = real_fold  # type: ignore[assignment]
    assert folded == [0]
    assert got["ledger_deals"]["status"].to_list() == ["active"] * 3
    assert got["ledger_deals"]["version"].to_list() == [1, 1, 1]
    assert [str(a) for a in got["ledger_deals"]["amount_usd"].to_list()] == ["1.50", "2.50", "3.50"]
    assert got["ledger_flows"]["amount_usd"].to_list() == [1.5, 2.5, 3.5]
    assert got["ledger_deals"].equals(project.projection_frames(real_fold(events))["ledger_deals"])
