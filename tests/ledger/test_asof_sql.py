"""The SQL fold of ``ledger.asof`` equals the Python replay of ``ledger.project`` exactly, on random logs.

The logs are written straight into ``ledger_log`` (bypassing the writer's checks) so that they can hold
what a log may hold over its life: v1 announcements (amounts in US$ bn, upcast on read), amendments with
and without effective dates (recorded out of effective-date order), corrections of corrections, timing
evidence, retractions, fields set to null, events of a deal before its announcement and a second
announcement, recorded_at ties, and now and then an event recorded in the other deal's stream (a log the
writer never makes; it sends the single query to its fold by payload). Each example compares, at random
cut points and valid dates, the deal and flow frames of every route of the single query
(``DataFrame.equals``: same values, same types, same order), and the many-instant pass with one query
per instant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import api, asof, log, project
from ledger.model import REGISTRY, UPCASTERS, canonical_json
from ledger.schema import ensure_schema

DEALS = ("d1", "d2")
DAYS = ("2025-01-02", "2025-03-31", "2025-06-30", "2026-01-01", "")
AMOUNTS = ("1000000000.00", "1.5", "0.125", "123.456", "2500000000", "", None, "7")
BN = ("300", "0.35", "1.23456789012", "12.5", "", None)
PARTIES = st.lists(st.sampled_from(("openai", "oracle", "nvidia", "amd")), min_size=1, max_size=2, unique=True)
T0 = 1_750_000_000_000_000


def _fields() -> st.SearchStrategy[dict[str, Any]]:
    opt = {
        "title": st.one_of(st.none(), st.text("abc ", max_size=4)),
        "horizon": st.sampled_from((None, "5y")),
        "amount_usd": st.sampled_from(AMOUNTS),
        "payer_amount_usd": st.sampled_from(("500000000.00", "0.5", "0.005", None)),
        "amount_kind": st.sampled_from(("exact", "up_to", "estimate", "", None)),
        "announced_date": st.sampled_from(DAYS),
        "session": st.sampled_from(("intraday", "after_close", None, "")),
        # null lists (a foreign log's; the writers refuse them) project as empty lists on both routes
        "payers": st.one_of(st.none(), PARTIES),
        "payees": st.one_of(st.none(), PARTIES),
        "tickers": st.one_of(st.none(), st.lists(st.sampled_from(("ORCL", "NVDA")), max_size=2, unique=True)),
        "counts_toward_total": st.sampled_from((True, False, None)),
        "contract_id": st.sampled_from(("c1", "", None)),
        "deal_type": st.sampled_from(("chip_purchase", "equity_investment")),
        "confidence": st.sampled_from(("verified", None)),
        "timing_session": st.sampled_from(("intraday", None)),
    }
    return st.lists(st.sampled_from(sorted(opt)), unique=True, max_size=6).flatmap(
        lambda keys: st.fixed_dictionaries({k: opt[k] for k in keys}))


@st.composite
def _logs(draw: st.DrawFn) -> list[tuple[str, str, int, dict[str, Any], int]]:
    """(event type, deal id of its stream, schema version, payload, recorded_at us) in log order."""
    out: list[tuple[str, str, int, dict[str, Any], int]] = []
    announced: set[str] = set()
    t = T0
    for _ in range(draw(st.integers(2, 14))):
        t += draw(st.sampled_from((0, 0, 1, 5)))  # ties and gaps
        deal = draw(st.sampled_from(DEALS))
        kind = draw(st.sampled_from(("amend", "amend", "amend", "correct", "correct", "retract", "timing", "announce")))
        if deal not in announced and draw(st.integers(0, 4)) > 0:
            kind = "announce"
        if kind == "announce":
            if deal in announced and draw(st.integers(0, 3)) > 0:
                kind = "correct"  # a second announcement now and then, not often
            else:
                announced.add(deal)
                base = {"deal_id": deal, "deal_type": "cloud_compute_purchase", "payers": draw(PARTIES),
                        "payees": draw(PARTIES), "announced_date": draw(st.sampled_from(DAYS[:4])), "note": "n"}
                extra = draw(_fields())
                if draw(st.booleans()):  # a v1 payload: amounts in US$ bn
                    extra.pop("amount_usd", None)
                    bn = draw(st.sampled_from(BN))
                    out.append(("DealAnnounced", deal, 1, {**base, **extra, "amount_usd_bn": bn} if bn is not None
                                else {**base, **extra}, t))
                else:
                    out.append(("DealAnnounced", deal, 2, {**base, **extra}, t))
                continue
        eff = draw(st.sampled_from((None, "", "2025-02-01", "2025-06-30", "2025-12-31")))
        if kind == "amend":
            # every amendment sets the title too, so amendments recorded out of effective-date order collide
            changes = {**draw(_fields()), "title": draw(st.sampled_from(("x", "y", None)))}
            out.append(("DealAmended", deal, 1, {"deal_id": deal, "changes": changes, "effective_date": eff,
                                                 "reason": "r"}, t))
        elif kind == "correct":
            out.append(("DealCorrected", deal, 1, {"deal_id": deal, "changes": draw(_fields()), "reason": "r"}, t))
        elif kind == "retract":
            out.append(("DealRetracted", deal, 1, {"deal_id": deal, "effective_date": eff, "reason": "r"}, t))
        else:
            keys = draw(st.lists(st.sampled_from(("first_report_date", "session", "evidence_kind", "confidence",
                                                  "first_public_time_et")), unique=True))
            values = {"first_report_date": "2025-01-01", "session": "pre_market", "evidence_kind": "wire",
                      "confidence": "high", "first_public_time_et": "07:30"}
            out.append(("DealTimingEvidenced", deal, 1, {"deal_id": deal, **{k: values[k] for k in keys}}, t))
    # now and then an event in the other deal's stream (its payload still names its own deal)
    foreign = draw(st.lists(st.integers(0, 11), min_size=len(out), max_size=len(out)))
    return [(et, DEALS[1 - DEALS.index(d)] if f == 0 else d, v, p, us)
            for (et, d, v, p, us), f in zip(out, foreign, strict=True)]


def _write(events: list[tuple[str, str, int, dict[str, Any], int]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    versions: dict[str, int] = {}
    rows = []
    for pos, (et, deal, ver, payload, us) in enumerate(events, 1):
        versions[deal] = versions.get(deal, 0) + 1
        rows.append((pos, f"e{pos}", f"deal-{deal}", versions[deal], et, ver, canonical_json(payload), us, "", ""))
    if rows:
        con.executemany("INSERT INTO ledger_log VALUES (?, ?, ?, ?, ?, ?, ?, make_timestamptz(?), ?, ?)", rows)
    return con


def _python(con: duckdb.DuckDBPyConnection, cut: int | None, day: dt.date | None) -> project.LedgerState:
    at = None if cut is None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=cut)
    return project.fold(log.read(con, as_known_at=at), in_effect_on=day)


def _cuts(events: list[tuple[str, str, int, dict[str, Any], int]]) -> list[int | None]:
    us = sorted({e[4] for e in events})
    return [None, T0 - 1, *us, us[-1] + 1] if us else [None, T0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_logs(), st.sampled_from((None, dt.date(2025, 1, 1), dt.date(2025, 6, 30), dt.date(2026, 2, 1))))
def test_sql_fold_equals_python_fold(events: list[tuple[str, str, int, dict[str, Any], int]],
                                     day: dt.date | None) -> None:
    con = _write(events)
    for cut in _cuts(events):
        state = _python(con, cut, day)
        want = project.deals_frame(state)
        # every route of the single query: the one the log's shape chooses, the split (streams holding
        # one announcement taken straight from it, the others folded) and the fold of every event
        for first in (None, "split", "fold"):
            with mock.patch.object(asof, "_first_route", wraps=asof._first_route) as route:
                if first is not None:
                    route.side_effect = None
                    route.return_value = (first, frozenset(asof._DEAL_TYPES))
                got = asof.deals_at(con, cut, day)
            assert got.equals(want), (cut, day, first)
            assert asof.flows_of(got).equals(project.flows_frame(state)), (cut, day, first)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_logs())
def test_many_instants_equal_one_query_per_instant(events: list[tuple[str, str, int, dict[str, Any], int]]) -> None:
    con = _write(events)
    cuts = [c for c in _cuts(events) if c is not None]
    times = [dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=c) for c in cuts]
    many = api.deals_as_known_at_many(con, times)
    flows = api.flows_as_known_at_many(con, times)
    for at, cut in zip(times, cuts, strict=True):
        state = _python(con, cut, None)
        assert many.filter(pl.col("as_known_at") == at).drop("as_known_at").equals(project.deals_frame(state)), at
        assert flows.filter(pl.col("as_known_at") == at).drop("as_known_at").equals(project.flows_frame(state)), at


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_logs(), st.data())
def test_many_valid_dates_equal_one_query_per_date(events: list[tuple[str, str, int, dict[str, Any], int]],
                                                   data: st.DataObject) -> None:
    con = _write(events)
    cut = data.draw(st.sampled_from(_cuts(events)))
    at = None if cut is None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=cut)
    days = [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 6, 29), dt.date(2025, 6, 30),
            dt.date(2025, 12, 31), dt.date(2026, 2, 1)]
    deals = api.deals_in_effect_many(con, days, as_known_at=at)
    flows = api.flows_in_effect_many(con, days, as_known_at=at)
    for day in days:
        state = _python(con, cut, day)
        assert deals.filter(pl.col("known_on") == day).drop("known_on").equals(project.deals_frame(state)), day
        assert flows.filter(pl.col("known_on") == day).drop("known_on").equals(project.flows_frame(state)), day


def test_a_log_whose_recorded_at_goes_backwards_is_answered_per_instant() -> None:
    # Written by something other than carousel: position 3 recorded before position 2. The events known
    # at T are then not a prefix of the log; the many-instant pass must still equal the replay.
    base = {"deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"], "announced_date": "2025-10-06"}
    events = [("DealAnnounced", "d1", 2, {"deal_id": "d1", **base, "amount_usd": "5"}, T0),
              ("DealCorrected", "d1", 1, {"deal_id": "d1", "changes": {"amount_usd": "6"}}, T0 + 20),
              ("DealCorrected", "d1", 1, {"deal_id": "d1", "changes": {"title": "t"}}, T0 + 10)]
    con = _write(events)
    times = [dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=T0 + k) for k in (0, 10, 15, 20)]
    many = api.deals_as_known_at_many(con, times)
    assert many["amount_usd"].cast(pl.Float64).to_list() == [5.0, 5.0, 5.0, 6.0]
    assert many["title"].to_list() == [None, "t", "t", "t"]
    for at in times:
        want = project.deals_frame(_python(con, asof.epoch_us(at), None))
        assert many.filter(pl.col("as_known_at") == at).drop("as_known_at").equals(want)


def test_the_sql_fold_reads_every_event_type_and_upcaster() -> None:
    # A new event type or payload version must be taught to ledger.asof (until then the Python replay
    # answers): this fails as a reminder.
    current = {(name, t.schema_version) for name, t in REGISTRY.items()}
    old = {(name, v) for name, v in UPCASTERS}
    assert current | old == set(asof.SQL_EVENT_VERSIONS)


def test_an_unknown_payload_version_falls_back_to_the_python_replay() -> None:
    base = {"deal_id": "d1", "deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"],
            "announced_date": "2025-10-06", "amount_usd": "5"}
    con = _write([("DealAnnounced", "d1", 2, base, T0)])
    assert asof.sql_readable(con)
    con.execute("UPDATE ledger_log SET schema_version = 1 WHERE event_type = 'DealAnnounced'")
    con.execute("INSERT INTO ledger_log VALUES (2, 'e2', 'deal-d1', 2, 'DealCorrected', 0, '{\"changes\":{},"
                "\"deal_id\":\"d1\"}', make_timestamptz(?), '', '')", [T0 + 1])
    assert not asof.sql_readable(con)  # DealCorrected v0 is not a version the SQL fold knows


def test_odd_amount_texts_round_half_even_like_the_projection() -> None:
    # more than two decimals: DuckDB's cast rounds half away from zero, the projection half-even
    base = {"deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"], "announced_date": "2025-10-06"}
    events = [("DealAnnounced", "d1", 2, {"deal_id": "d1", **base, "amount_usd": "0.125"}, T0),
              ("DealAnnounced", "d2", 1, {"deal_id": "d2", **base, "amount_usd_bn": "1.0000000000125"}, T0 + 1),
              ("DealAnnounced", "d3", 1, {"deal_id": "d3", **base, "amount_usd_bn": "0.35"}, T0 + 2)]
    got = asof.deals_at(_write(events), None, None)
    assert [str(v) for v in got["amount_usd"].to_list()] == ["0.12", "1000000000.01", "350000000.00"]
    assert got.equals(project.deals_frame(project.fold(log.read(_write(events)))))


def test_amendments_apply_in_effective_date_order_not_recording_order() -> None:
    base = {"deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"], "announced_date": "2025-01-06"}
    events = [("DealAnnounced", "d1", 2, {"deal_id": "d1", **base, "title": "a", "horizon": "5y"}, T0),
              ("DealAmended", "d1", 1, {"deal_id": "d1", "changes": {"title": "late"}, "effective_date": "2025-12-31"},
               T0 + 1),
              ("DealAmended", "d1", 1, {"deal_id": "d1", "changes": {"title": "early"}, "effective_date": "2025-02-01"},
               T0 + 2),
              ("DealCorrected", "d1", 1, {"deal_id": "d1", "changes": {"title": "fixed", "horizon": None}}, T0 + 3)]
    con = _write(events)
    # the later effective date wins whatever the recording order; a correction stays under amendments and
    # sets a field to null when it says null
    assert asof.deals_at(con, None, None)[["title", "horizon"]].row(0) == ("late", None)
    assert asof.deals_at(con, None, dt.date(2025, 6, 1))["title"].item() == "early"
    assert asof.deals_at(con, None, dt.date(2025, 1, 31))["title"].item() == "fixed"
    assert asof.deals_at(con, T0 + 1, None)["title"].item() == "late"
    for day in (None, dt.date(2025, 6, 1), dt.date(2025, 1, 31)):
        assert asof.deals_at(con, None, day).equals(project.deals_frame(project.fold(log.read(con), in_effect_on=day)))


def test_events_before_a_deals_announcement_are_ignored_on_every_valid_date() -> None:
    # An amendment recorded before the announcement (a foreign log) must not decide whether the deal is
    # in effect: the Python replay has no record to apply it to.
    base = {"deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"]}
    events = [("DealAmended", "d1", 1, {"deal_id": "d1", "changes": {"announced_date": "2026-01-01"},
                                        "effective_date": "2025-06-30"}, T0),
              ("DealAnnounced", "d1", 2, {"deal_id": "d1", **base, "announced_date": "2025-03-31"}, T0 + 1)]
    con = _write(events)
    day = dt.date(2025, 6, 30)
    want = project.deals_frame(project.fold(log.read(con), in_effect_on=day))
    assert want["announced_date"].to_list() == [dt.date(2025, 3, 31)]
    assert asof.deals_at(con, None, day).equals(want)
    many = api.deals_in_effect_many(con, [day, dt.date(2025, 3, 30)])
    assert many.drop("known_on").equals(want)


def test_an_event_in_another_deals_stream_reaches_its_deal() -> None:
    # A retraction of d2 recorded in d1's stream (a log the writer never makes): split by stream, d2's
    # announcement would be taken straight and the retraction folded apart, under a deal never announced
    # there. The single query must see it and fold by the payload's deal, as the replay does.
    base = {"deal_type": "chip_purchase", "payers": ["openai"], "payees": ["amd"], "announced_date": "2025-03-31"}
    events = [("DealAnnounced", "d1", 2, {"deal_id": "d1", **base}, T0),
              ("DealAnnounced", "d2", 2, {"deal_id": "d2", **base}, T0 + 1),
              ("DealRetracted", "d1", 1, {"deal_id": "d2", "effective_date": None, "reason": "r"}, T0 + 2)]
    con = _write(events)
    want = project.deals_frame(project.fold(log.read(con)))
    assert want["status"].to_list() == ["active", "retracted"]
    for day in (None, dt.date(2025, 6, 30)):
        assert asof.deals_at(con, None, day).equals(project.deals_frame(project.fold(log.read(con), in_effect_on=day)))
    assert api.flows(con, as_known_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).equals(project.flows_frame(
        project.fold(log.read(con))))
