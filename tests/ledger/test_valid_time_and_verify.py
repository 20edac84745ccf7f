"""Valid time with amendments recorded out of order of their effective dates, corrections against
amendments, and ``verify`` checking the stored projections and the recorded head against the log."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from carousel.cli.ledger import app
from carousel.db import connect
from core.errors import ConflictError
from ledger import api, log, project
from ledger.load import import_file
from ledger.model import NewEvent, deal_stream, is_canonical

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
DEALS = DATA / "deals.csv"
N_EVENTS = len((DATA / "companies.csv").read_text().splitlines()) - 1 + 44  # companies + deals
NVCR = "nvda-crwv-2025-09-15"  # CoreWeave 8-K: $6.3B initial order, announced 2025-09-15
NVCR_AMOUNT = Decimal("6300000000.00")


@pytest.fixture
def con(db_path: Path) -> duckdb.DuckDBPyConnection:
    c = connect(db_path)
    import_file(c, DEALS)
    yield c
    c.close()


def _amend(con: duckdb.DuckDBPyConnection, deal: str, n: int, effective: str | None, **changes: str) -> None:
    log.append(con, [NewEvent(f"amend-{deal}-{n}", deal_stream(deal), "DealAmended",
                              {"deal_id": deal, "effective_date": effective, "changes": changes, "reason": ""})])


def _correct(con: duckdb.DuckDBPyConnection, deal: str, n: int, **changes: str) -> None:
    log.append(con, [NewEvent(f"correct-{deal}-{n}", deal_stream(deal), "DealCorrected",
                              {"deal_id": deal, "changes": changes, "reason": ""})])


def _row(frame: Any, deal: str) -> dict[str, Any]:
    rows = frame.filter(deal_id=deal).to_dicts()
    assert len(rows) == 1, rows
    return dict(rows[0])


def _amount(con: duckdb.DuckDBPyConnection, on: dt.date | None) -> Decimal:
    return Decimal(_row(api.deals(con, in_effect_on=on), NVCR)["amount_usd"])


# --- valid time -----------------------------------------------------------------------------------


def test_out_of_order_amendments_through_the_cli(db_path: Path) -> None:
    r = CliRunner()
    assert r.invoke(app, ["import", str(DEALS), "--db", str(db_path)]).exit_code == 0
    for eff, amount in (("2026-03-01", "9000000000"), ("2026-01-01", "7000000000")):  # recorded Mar first
        res = r.invoke(app, ["amend", NVCR, "--effective", eff, "--set", f"amount_usd={amount}", "--db", str(db_path)])
        assert res.exit_code == 0, res.output
    # Read through a plain DuckDB connection: at the time of writing, carousel.db.connect's truncation
    # check refuses this file (the second amendment's checkpoint shrinks it below the header's block
    # count, free blocks included), which is carousel/db.py's bug, not the ledger's.
    with duckdb.connect(str(db_path), read_only=True) as c:
        assert _amount(c, dt.date(2026, 4, 1)) == Decimal("9000000000.00")
        assert _amount(c, dt.date(2026, 3, 1)) == Decimal("9000000000.00")
        assert _amount(c, dt.date(2026, 2, 28)) == Decimal("7000000000.00")
        assert _amount(c, dt.date(2026, 1, 1)) == Decimal("7000000000.00")
        assert _amount(c, dt.date(2025, 12, 31)) == NVCR_AMOUNT
        # "Current" = every known amendment in effective-date order: the materialised table, the SQL view
        # and a replay as known now all agree.
        assert _amount(c, None) == Decimal("9000000000.00")
        view = c.execute("SELECT amount_usd, version FROM deals WHERE deal_id = ?", [NVCR]).fetchall()
        assert view == [(Decimal("9000000000.00"), 3)]
        now = api.deals(c, as_known_at=dt.datetime.now(dt.UTC))
        assert now.equals(api.deals(c))
        assert log.verify(c).ok


def test_ties_follow_log_order_and_fields_merge_by_effective_date(con: duckdb.DuckDBPyConnection) -> None:
    _amend(con, NVCR, 1, "2026-03-01", amount_usd="9000000000.00")
    _amend(con, NVCR, 2, "2026-01-01", amount_usd="7000000000.00", amount_kind="estimate", horizon="2032")
    _amend(con, NVCR, 3, "2026-03-01", amount_usd="9500000000.00")  # same day as #1, recorded later: wins
    on_apr = _row(api.deals(con, in_effect_on=dt.date(2026, 4, 1)), NVCR)
    # amount from the latest effective date (the later of the two March amendments); amount_kind and
    # horizon from the January amendment, which no later-effective amendment touched.
    assert (on_apr["amount_usd"], on_apr["amount_kind"], on_apr["horizon"]) == (
        Decimal("9500000000.00"), "estimate", "2032")
    on_feb = _row(api.deals(con, in_effect_on=dt.date(2026, 2, 1)), NVCR)
    assert (on_feb["amount_usd"], on_feb["amount_kind"]) == (Decimal("7000000000.00"), "estimate")
    current = _row(api.deals(con), NVCR)
    assert (current["amount_usd"], current["amount_kind"], current["version"]) == (
        Decimal("9500000000.00"), "estimate", 4)
    flows = api.flows(con).filter(deal_id=NVCR)
    assert flows["amount_usd"].to_list() == [9.5e9]


def test_a_correction_fixes_the_announced_record_at_every_date_under_the_amendments(
    con: duckdb.DuckDBPyConnection,
) -> None:
    _amend(con, NVCR, 1, "2026-01-01", amount_usd="7000000000.00")
    _correct(con, NVCR, 1, amount_usd="6000000000.00", title="CoreWeave capacity order (corrected)")
    before = _row(api.deals(con, in_effect_on=dt.date(2025, 12, 31)), NVCR)
    assert (before["amount_usd"], before["title"]) == (Decimal("6000000000.00"), "CoreWeave capacity order (corrected)")
    # The amendment in effect still sets the amount; the corrected title applies at every date.
    after = _row(api.deals(con, in_effect_on=dt.date(2026, 2, 1)), NVCR)
    assert (after["amount_usd"], after["title"]) == (Decimal("7000000000.00"), "CoreWeave capacity order (corrected)")
    assert _row(api.deals(con), NVCR)["amount_usd"] == Decimal("7000000000.00")
    # To fix the amendment itself, record an amendment with the same effective date (later position wins).
    _amend(con, NVCR, 2, "2026-01-01", amount_usd="7100000000.00")
    assert _amount(con, dt.date(2026, 2, 1)) == Decimal("7100000000.00")
    assert _amount(con, dt.date(2025, 12, 31)) == Decimal("6000000000.00")


def test_current_includes_future_amendments_and_retractions(con: duckdb.DuckDBPyConnection) -> None:
    today = dt.date.today()
    future = (today + dt.timedelta(days=400)).isoformat()
    _amend(con, NVCR, 1, future, amount_usd="8000000000.00")
    log.append(con, [NewEvent("retract-meta", deal_stream("meta-googl-2025-08-21"), "DealRetracted",
                              {"deal_id": "meta-googl-2025-08-21", "reason": "", "effective_date": future})])
    current = api.deals(con)
    assert _row(current, NVCR)["amount_usd"] == Decimal("8000000000.00")
    assert _row(current, "meta-googl-2025-08-21")["status"] == "retracted"
    on_today = api.deals(con, in_effect_on=today)
    assert _row(on_today, NVCR)["amount_usd"] == NVCR_AMOUNT
    assert _row(on_today, "meta-googl-2025-08-21")["status"] == "active"
    assert api.deals(con, as_known_at=dt.datetime.now(dt.UTC)).equals(current)


# --- property: incremental == rebuild == an independent model of valid time ----------------------

_DATES = [dt.date(2025, 1, 1) + dt.timedelta(days=30 * i) for i in range(8)]
_OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # deal
        st.sampled_from(["amend", "amend", "correct", "retract"]),
        st.one_of(st.none(), st.sampled_from(_DATES)),  # effective date, drawn in any order, with ties
        st.integers(0, 10**6),  # amount
        st.sampled_from(["amount_usd", "amount_kind", "both"]),
    ),
    max_size=10,
)
_KINDS = ["exact", "up_to", "estimate"]


def _oracle(ops: list[tuple[int, str, dt.date | None, int, str]], on: dt.date | None) -> dict[str, tuple[Any, ...]]:
    """Valid time written out directly from its definition, independently of ledger.project."""
    out = {}
    for k in range(3):
        mine = [(n, op) for n, op in enumerate(ops) if op[0] == k]
        base: dict[str, Any] = {"amount_usd": Decimal("5.00"), "amount_kind": "exact"}
        for _n, (_k, kind, _eff, amount, what) in mine:
            if kind == "correct":
                base.update(_changes(amount, what))
        dated = sorted(
            ((eff or dt.date.min, n), _changes(amount, what))
            for n, (_k, kind, eff, amount, what) in mine
            if kind == "amend" and (on is None or eff is None or eff <= on)
        )
        value = dict(base)
        for _key, changes in dated:
            value.update(changes)
        retracted = any(kind == "retract" and (on is None or eff is None or eff <= on) for _n, (_k, kind, eff, _a, _w) in mine)
        out[f"deal-{k}"] = (Decimal(value["amount_usd"]), value["amount_kind"],
                            "retracted" if retracted else "active", 1 + len(mine))
    return out


def _changes(amount: int, what: str) -> dict[str, Any]:
    ch: dict[str, Any] = {}
    if what in ("amount_usd", "both"):
        ch["amount_usd"] = f"{amount}.00"
    if what in ("amount_kind", "both"):
        ch["amount_kind"] = _KINDS[amount % 3]
    return ch


def _announce(deal_id: str) -> NewEvent:
    payload = {"deal_id": deal_id, "contract_id": deal_id, "counts_toward_total": True, "announced_date": "2025-01-01",
               "announced_time_et": None, "session": "unknown", "payers": ["a"], "payees": ["b"], "amount_usd": "5.00",
               "amount_kind": "exact", "deal_type": "chip_purchase", "horizon": None, "tickers": [], "title": None,
               "confidence": "verified", "sources": []}
    return NewEvent(f"announce-{deal_id}", deal_stream(deal_id), "DealAnnounced", payload)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS)
def test_projection_matches_valid_time_model_with_out_of_order_effective_dates(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[int, str, dt.date | None, int, str]]
) -> None:
    # In memory: the valid-time rules are under test here, not the file (a file and a commit per append cost
    # the suite minutes); the file route of the same appends is tested throughout tests/ledger.
    with connect(":memory:") as c:
        log.append(c, [_announce(f"deal-{k}") for k in range(3)])
        for n, (k, kind, eff, amount, what) in enumerate(ops):
            deal, s = f"deal-{k}", deal_stream(f"deal-{k}")
            if kind == "retract":
                ev = NewEvent(f"r{n}", s, "DealRetracted",
                              {"deal_id": deal, "reason": "", "effective_date": eff and eff.isoformat()})
            elif kind == "correct":
                ev = NewEvent(f"c{n}", s, "DealCorrected", {"deal_id": deal, "changes": _changes(amount, what), "reason": ""})
            else:
                ev = NewEvent(f"a{n}", s, "DealAmended", {"deal_id": deal, "effective_date": eff and eff.isoformat(),
                                                          "changes": _changes(amount, what), "reason": ""})
            log.append(c, [ev])  # each append rewrites the deal's projection rows incrementally
        events = log.read(c)
        incremental = api.deals(c)
        assert incremental.equals(project.deals_frame(project.fold(events)))
        assert api.flows(c).equals(project.flows_frame(project.fold(events)))
        assert log.verify(c).ok
        assert log._fast_verify(c, projections=True) is not None  # the writer's digest followed every change
        for on in [None, dt.date(2024, 12, 31), *_DATES]:
            got = api.deals(c, in_effect_on=on)
            expected = _oracle(ops, on)
            if on is not None and on < dt.date(2025, 1, 1):
                assert got.height == 0  # nothing announced yet
                continue
            have = {r["deal_id"]: (r["amount_usd"], r["amount_kind"], r["status"], r["version"]) for r in got.to_dicts()}
            assert have == expected, on
        # Incremental state (apply one event at a time to a kept state) equals a fold of the whole log.
        state = project.LedgerState()
        for ev in events:
            project.apply(state, ev)
        assert project.deal_rows(state) == project.deal_rows(project.fold(events))


# --- verify: projections ---------------------------------------------------------------------------


def _position_of(con: duckdb.DuckDBPyConnection, deal: str) -> int:
    return int(con.execute("SELECT max(position) FROM ledger_log WHERE stream_id = ?", [deal_stream(deal)]).fetchall()[0][0])


def test_verify_catches_an_edited_deals_projection_and_names_deal_and_field(con: duckdb.DuckDBPyConnection) -> None:
    assert log.verify(con).ok
    con.execute("UPDATE ledger_deals SET amount_usd = 999 WHERE deal_id = ?", [NVCR])
    rep = log.verify(con)
    assert (rep.ok, rep.check, rep.broken_position, rep.events) == (False, "projection", _position_of(con, NVCR), N_EVENTS)
    assert rep.reason == (f"projection ledger_deals differs from the log: {NVCR} field amount_usd: "
                          "stored 999.00, log gives 6300000000.00")
    # The hash chain alone still passes: the projection check is what catches it.
    assert log.verify(con, projections=False).ok
    log.rebuild_projections(con)
    assert log.verify(con).ok


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE ledger_deals SET status = 'retracted' WHERE deal_id = 'meta-googl-2025-08-21'",
         "ledger_deals differs from the log: meta-googl-2025-08-21 field status: stored 'retracted', log gives 'active'"),
        ("DELETE FROM ledger_deals WHERE deal_id = 'meta-googl-2025-08-21'",
         "ledger_deals differs from the log: deal_id meta-googl-2025-08-21 is in the log but missing from ledger_deals"),
        ("INSERT INTO ledger_deals SELECT * REPLACE ('ghost-deal' AS deal_id) FROM ledger_deals "
         "WHERE deal_id = 'meta-googl-2025-08-21'",
         "ledger_deals differs from the log: ledger_deals has ghost-deal, which the log does not produce"),
        ("UPDATE ledger_flows SET amount_usd = 1 WHERE deal_id = 'meta-googl-2025-08-21'",
         "ledger_flows differs from the log: meta-googl-2025-08-21/meta/alphabet field amount_usd: stored 1.0, "
         "log gives 10000000000.0"),
        ("DELETE FROM ledger_flows WHERE deal_id = 'meta-googl-2025-08-21'",
         "ledger_flows differs from the log: deal_id/payer/payee meta-googl-2025-08-21/meta/alphabet is in the log "
         "but missing from ledger_flows"),
        ("UPDATE ledger_companies SET name = 'Facebook' WHERE company_id = 'meta'",
         "ledger_companies differs from the log: meta field name: stored 'Facebook', log gives 'Meta Platforms'"),
    ],
)
def test_verify_catches_every_kind_of_projection_drift(con: duckdb.DuckDBPyConnection, sql: str, reason: str) -> None:
    con.execute(sql)
    rep = log.verify(con)
    assert not rep.ok and rep.check == "projection"
    assert reason in (rep.reason or ""), rep.reason
    if "ghost-deal" in sql:
        assert rep.broken_position == N_EVENTS  # no stream in the log: the head is named
    elif "companies" in sql:
        assert rep.broken_position == int(con.execute(
            "SELECT position FROM ledger_log WHERE stream_id = 'company-meta'").fetchall()[0][0])
    else:
        assert rep.broken_position == _position_of(con, "meta-googl-2025-08-21")


def test_cli_verify_fails_with_exit_5_on_a_tampered_projection(db_path: Path) -> None:
    r = CliRunner()
    r.invoke(app, ["import", str(DEALS), "--db", str(db_path)])
    with duckdb.connect(str(db_path)) as c:
        c.execute("UPDATE ledger_deals SET amount_usd = 999 WHERE deal_id = ?", [NVCR])
    res = r.invoke(app, ["verify", "--db", str(db_path)])
    assert isinstance(res.exception, ConflictError) and res.exception.exit_code == 5
    assert f"{NVCR} field amount_usd: stored 999.00, log gives 6300000000.00" in str(res.exception)


# --- verify: the recorded head ---------------------------------------------------------------------


def _head(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT position, hash FROM ledger_head").fetchall()


def test_writer_keeps_the_recorded_head_in_step(con: duckdb.DuckDBPyConnection) -> None:
    assert _head(con) == [(N_EVENTS, log.anchor(con)["hash"])]
    _amend(con, NVCR, 1, "2026-01-01", amount_usd="7000000000.00")
    assert _head(con) == [(N_EVENTS + 1, log.anchor(con)["hash"])]
    assert log.append(con, [_announce("x-deal")]).head_position == N_EVENTS + 2
    assert _head(con) == [(N_EVENTS + 2, log.anchor(con)["hash"])]
    import_file(con, DEALS)  # an idempotent re-import appends nothing and leaves the head alone
    assert _head(con) == [(N_EVENTS + 2, log.anchor(con)["hash"])]


def test_deleted_head_event_is_detected_without_an_anchor(con: duckdb.DuckDBPyConnection) -> None:
    head_hash = log.anchor(con)["hash"]
    last_deal = json.loads(con.execute("SELECT payload FROM ledger_log WHERE position = ?", [N_EVENTS]).fetchall()[0][0])["deal_id"]
    con.execute("DELETE FROM ledger_log WHERE position = ?", [N_EVENTS])
    assert log.verify(con, projections=False).ok is False  # the head check needs no replay
    rep = log.verify(con)
    assert (rep.ok, rep.check, rep.broken_position, rep.events, rep.head_position) == (
        False, "head", N_EVENTS, N_EVENTS - 1, N_EVENTS - 1)
    assert rep.reason == (f"the log ends at position {N_EVENTS - 1} but the writer recorded head position {N_EVENTS} "
                          f"(hash {head_hash}): the last 1 event(s) were deleted")
    # The writer refuses to chain new events over the hole (that would make the deletion undetectable).
    before = con.execute("SELECT count(*) FROM ledger_log").fetchall()
    with pytest.raises(ConflictError, match=f"the log ends at position {N_EVENTS - 1} but its recorded head is "
                                            f"position {N_EVENTS}"):
        _amend(con, NVCR, 1, "2026-01-01", amount_usd="7000000000.00")
    assert con.execute("SELECT count(*) FROM ledger_log").fetchall() == before
    # Without the head row, the deleted announcement's deal left in the projection still gives it away.
    con.execute("DELETE FROM ledger_head")
    rep = log.verify(con)
    assert (rep.ok, rep.check) == (False, "projection")
    assert f"ledger_deals has {last_deal}, which the log does not produce" in (rep.reason or "")


def test_cli_verify_reports_a_deleted_head_event(db_path: Path) -> None:
    r = CliRunner()
    r.invoke(app, ["import", str(DEALS), "--db", str(db_path)])
    with duckdb.connect(str(db_path)) as c:
        c.execute("DELETE FROM ledger_log WHERE position = ?", [N_EVENTS])
    res = r.invoke(app, ["verify", "--db", str(db_path)])
    assert isinstance(res.exception, ConflictError) and res.exception.exit_code == 5
    assert (f"FAILED at position {N_EVENTS}: the log ends at position {N_EVENTS - 1} but the writer recorded "
            f"head position {N_EVENTS}") in str(res.exception)


def test_database_without_head_table_verifies_and_is_backfilled(db_path: Path) -> None:
    with connect(db_path) as c:
        import_file(c, DEALS)
        head = log.anchor(c)
        c.execute("DROP TABLE ledger_head")  # as created by a carousel older than the table,
        c.execute("ALTER TABLE carousel_schema DROP COLUMN fingerprint")  # which recorded no fingerprint
    with connect(db_path, read_only=True) as c:
        rep = log.verify(c)
        assert (rep.ok, rep.events) == (True, N_EVENTS)  # nothing recorded, nothing to compare
    with connect(db_path) as c:  # a read-write open creates the table and records the current head
        assert _head(c) == [(head["position"], head["hash"])]
        assert log.verify(c).ok


# --- verify's own canonical-JSON test agrees with the model's ------------------------------------


@pytest.mark.parametrize(
    "text",
    ['{"a":"1.50","b":[1,2],"c":null}', '{"b":1,"a":2}', '{"a": 1}', '{"a":1.5}', '{"a":1e3}', '{"a":NaN}',
     '{"a":"é"}', '{"a":"\\u00e9"}', '{"a":true,"b":{"c":-3}}', '[]', 'null', '{"a":', '{"a":Infinity}', '"x"'],
)
def test_verify_canonical_check_matches_model(text: str) -> None:
    assert log._canonical_payload(text)[0] is is_canonical(text)
