"""The date basis: the official announcement, its evidenced time of day, or the first credible report,
on the shipped ledger with its timing evidence."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from analysis.date_basis import apply_date_basis
from analysis.study import load_inputs, run_study
from carousel.db import connect
from core.errors import InputError
from ledger.load import import_file

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def inputs(evidenced_db: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    with connect(evidenced_db, read_only=True) as con:
        return load_inputs(con, ["SPY"])


def _t0(res: object, event_id: str) -> date:
    car = res.car  # type: ignore[attr-defined]
    return car.filter(pl.col("event_id") == event_id)["t0"][0]


def test_official_basis_is_the_default_study(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    based = apply_date_basis(deals, "official")
    assert based.drop("time_source", *(c for c in based.columns if c.startswith("official_"))).columns == deals.columns
    assert apply_date_basis(based, "official").equals(based)  # bases do not stack
    a = run_study(deals, returns, windows=((0, 0),))
    b = run_study(deals, returns, windows=((0, 0),), date_basis="official")
    assert a.car.equals(b.car)


def test_evidence_and_first_report_move_t0_where_the_evidence_says(
        inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    official = run_study(deals, returns, windows=((0, 0),))
    evidence = run_study(deals, returns, windows=((0, 0),), date_basis="evidence")
    first = run_study(deals, returns, windows=((0, 0),), date_basis="first_report")
    # Stargate: labelled after the close of 2025-01-21 (t0 01-22); the evidence found it public at
    # 13:07 that day, so t0 is the 21st.
    assert _t0(official, "stargate-2025-01-21:ORCL") == date(2025, 1, 22)
    assert _t0(evidence, "stargate-2025-01-21:ORCL") == date(2025, 1, 21)
    # Anthropic-Google: officially 2025-10-23 (time unknown, same day); first reported 2025-10-21
    # after the close, so the first-report basis reacts on 10-22. The evidence basis keeps the date.
    gid = "anthropic-googl-2025-10-23:GOOGL"
    assert _t0(official, gid) == date(2025, 10, 24)  # no official time: the evidence's after-close fills it
    assert _t0(evidence, gid) == date(2025, 10, 24)  # evidence: after the close of the 23rd
    assert _t0(first, gid) == date(2025, 10, 22)
    # A deal without evidence keeps its t0 under every basis, with the same numbers.
    ev = "meta-googl-2025-08-21:GOOGL"
    row = [r.car.filter(pl.col("event_id") == ev).select("t0", "car").row(0) for r in (official, evidence, first)]
    assert row[0] == row[1] == row[2]


def test_bad_basis_and_missing_evidence_are_input_errors(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, _ = inputs
    with pytest.raises(InputError, match="unknown date basis"):
        apply_date_basis(deals, "rumour")
    with pytest.raises(InputError, match="timing evidence"):
        apply_date_basis(deals.drop("timing_session"), "evidence")


def _csv_ret(ticker: str, day: date) -> float:
    """Simple adj-close return of ``day`` over the previous row, read from the shipped CSV by hand."""
    rows = (DATA / "prices" / f"{ticker}.csv").read_text().splitlines()[1:]
    closes = {r.split(",")[0]: float(r.split(",")[5]) for r in rows}
    days = sorted(closes)
    i = days.index(day.isoformat())
    return closes[days[i]] / closes[days[i - 1]] - 1


def _next_xnys_session(day: date) -> date:
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation, not ours
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XNYS", start="2024-01-02", end="2026-12-31")
    return cal.next_session(day.isoformat()).date()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("event_id", "announced"), [
    ("softbank-openai-2025-03-31:MSFT", date(2025, 3, 31)),   # evidence 22:17 ET, after the close
    ("anthropic-googl-2025-10-23:GOOGL", date(2025, 10, 23)),  # evidence: after the close
    ("stargate-sites-2025-09-23:ORCL", date(2025, 9, 23)),     # evidence: after the close
    ("nvda-openai-2026-01-30-stall:NVDA", date(2026, 1, 30)),  # evidence 19:51 ET Friday
])
def test_official_basis_takes_the_time_of_day_from_same_date_evidence(
        inputs: tuple[pl.DataFrame, pl.DataFrame], event_id: str, announced: date) -> None:
    """Review (market) finding 1: the official row says 'unknown'; the evidence for the same date says
    after the close, so day 0 is exchange_calendars' next XNYS session, not the announcement day."""
    from analysis.events import firm_events

    deals, _ = inputs
    ev = firm_events(deals).filter(pl.col("event_id") == event_id).row(0, named=True)
    assert ev["t0"] == _next_xnys_session(announced)
    assert ev["t0"] > announced
    assert ev["time_source"] == "evidence"
    # The unknown-time policy no longer decides; without the evidence columns it still would.
    bare = deals.drop([c for c in deals.columns if c.startswith(("timing_", "first_report_"))])
    old = firm_events(bare).filter(pl.col("event_id") == event_id).row(0, named=True)
    assert (old["t0"], old["time_source"]) == (announced, "none")


def test_official_basis_event_day_car_is_the_next_sessions_return(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """The estimated rows the reviewer named: market-adjusted CAR[0,0] is the stock's return minus
    SPY's on the session after the announcement, by hand from data/prices (adj_close)."""
    deals, returns = inputs
    res = run_study(deals, returns, model="market_adjusted", windows=((0, 0),), min_obs=1)
    for event_id, t0 in (("anthropic-googl-2025-10-23:GOOGL", date(2025, 10, 24)),
                         ("softbank-openai-2025-03-31:MSFT", date(2025, 4, 1))):
        row = res.car.filter(pl.col("event_id") == event_id).row(0, named=True)
        ticker = event_id.split(":")[1]
        assert row["t0"] == t0
        assert row["car"] == pytest.approx(_csv_ret(ticker, t0) - _csv_ret("SPY", t0), abs=1e-12)
    # GOOGL +2.70 % vs SPY +0.82 % on 10-24 (the review's hand figures); MSFT +1.81 % vs SPY +0.38 %.
    googl = res.car.filter(pl.col("event_id") == "anthropic-googl-2025-10-23:GOOGL")["car"][0]
    assert googl == pytest.approx(0.0270 - 0.0082, abs=2e-4)


def test_official_basis_keeps_official_times_and_ignores_other_dates(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """Only a missing official time is filled: Stargate 2025-01-21 is officially after the close (the
    13:07 leak stays with the evidence basis), and Anthropic-Google's 10-21 first report never moves
    the official date."""
    from analysis.events import firm_events

    deals, _ = inputs
    ev = firm_events(deals)
    star = ev.filter(pl.col("event_id") == "stargate-2025-01-21:ORCL").row(0, named=True)
    assert (star["t0"], star["time_source"], star["session"]) == (date(2025, 1, 22), "official", "after_close")
    goog = ev.filter(pl.col("event_id") == "anthropic-googl-2025-10-23:GOOGL").row(0, named=True)
    assert goog["announced_date"] == date(2025, 10, 23)
    # Evidence 'unknown' without a time (CoreWeave 2025-09-25) leaves the policy in charge.
    crwv = ev.filter(pl.col("event_id") == "openai-crwv-2025-09-25:CRWV").row(0, named=True)
    assert (crwv["session"], crwv["time_source"], crwv["t0"]) == ("unknown", "none", date(2025, 9, 25))


def _one_deal(session: str, timing_session: str | None, timing_time: str | None) -> pl.DataFrame:
    return pl.DataFrame({
        "deal_id": ["d"], "status": ["active"], "announced_date": [date(2025, 10, 6)],
        "announced_time_et": [None], "session": [session], "tickers": [["AMD"]],
        "timing_time_et": [timing_time], "timing_session": [timing_session],
        "first_report_date": [None], "first_report_time_et": [None], "first_report_session": [None],
    }, schema_overrides={"announced_time_et": pl.Utf8, "timing_time_et": pl.Utf8, "timing_session": pl.Utf8,
                         "first_report_date": pl.Date, "first_report_time_et": pl.Utf8,
                         "first_report_session": pl.Utf8})


@pytest.mark.parametrize("basis", ["official", "evidence", "first_report"])
def test_unknown_evidence_without_a_time_is_no_evidence(basis: str) -> None:
    """Review (market) finding 4: evidence 'unknown' must not overwrite a known official session.
    Monday 2025-10-06 pre-market is day 0 = 10-06 under either unknown-time policy."""
    from analysis.events import firm_events

    deals = _one_deal("pre_market", "unknown", None)
    based = apply_date_basis(deals, basis)
    assert based.select("session", "time_source").row(0) == ("pre_market", "official")
    for policy in ("same_day", "next_session"):
        assert firm_events(based, unknown_policy=policy)["t0"][0] == date(2025, 10, 6)
    # Evidence with a session does replace it under the evidence bases (and not under the official one).
    told = apply_date_basis(_one_deal("pre_market", "after_close", None), basis)
    assert told["session"][0] == ("pre_market" if basis == "official" else "after_close")
    filled = apply_date_basis(_one_deal("unknown", "after_close", None), basis)
    assert filled.select("session", "time_source").row(0) == ("after_close", "evidence")
    assert firm_events(filled)["t0"][0] == date(2025, 10, 7)


def test_the_appendix_and_the_report_say_where_each_time_of_day_came_from(
        inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    from analysis.events import collapse_same_day, firm_events
    from analysis.maintable import TIME_SOURCE_NOTE, appendix_summary, appendix_table
    from analysis.report import time_source_note

    deals, returns = inputs
    res = run_study(deals, returns, windows=((0, 0),))
    app = appendix_table(res)
    goog = app.filter(pl.col("ticker") == "GOOGL", pl.col("deal_id") == "anthropic-googl-2025-10-23").row(0, named=True)
    assert (goog["t0"], goog["time_source"]) == ("2025-10-24", "evidence")
    amd = app.filter(pl.col("deal_id") == "amd-openai-2025-10-06").row(0, named=True)
    assert amd["time_source"] == "official"
    md = appendix_summary(app, res.excluded, wide=True).to_markdown()
    assert "t0 time from" in md and TIME_SOURCE_NOTE in md
    # The excluded overlapping rows say it too (ORCL stargate-sites 2025-09-24 after the 09-10 contract).
    ex = res.excluded.filter(pl.col("event_id") == "stargate-sites-2025-09-23:ORCL").row(0, named=True)
    assert (ex["t0"], ex["time_source"]) == (date(2025, 9, 24), "evidence")
    # Counts in the report's parameter table: the estimated firm-events' sources, counted independently.
    ev = collapse_same_day(firm_events(deals))
    kept = ev.join(res.panel.keys.select("event_id"), on="event_id", how="semi")
    n = {k: kept.filter(pl.col("time_source") == k).height for k in ("official", "evidence", "none")}
    assert sum(n.values()) == res.nobs and n["evidence"] > 0
    assert time_source_note(res) == (f"deal row {n['official']}, timing evidence of the announcement date "
                                     f"{n['evidence']}, none known (unknown-time policy) {n['none']} "
                                     "(per firm-event: event_study_car.md)")


def test_the_deal_row_basis_reads_no_evidence(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """The robustness check of the official basis's fill: GOOGL 2025-10-23 back on the announcement day
    (unknown time, same-day policy), its market-adjusted CAR[0,0] that day's return minus SPY's by hand
    (+0.55 % - 0.59 %, the review's figures); Stargate keeps its official after-close label."""
    from analysis.events import firm_events

    deals, returns = inputs
    ev = firm_events(apply_date_basis(deals, "deal_row"))
    goog = ev.filter(pl.col("event_id") == "anthropic-googl-2025-10-23:GOOGL").row(0, named=True)
    assert (goog["t0"], goog["session"], goog["time_source"]) == (date(2025, 10, 23), "unknown", "none")
    star = ev.filter(pl.col("event_id") == "stargate-2025-01-21:ORCL").row(0, named=True)
    assert (star["t0"], star["time_source"]) == (date(2025, 1, 22), "official")
    res = run_study(deals, returns, model="market_adjusted", windows=((0, 0),), min_obs=1, date_basis="deal_row")
    car = res.car.filter(pl.col("event_id") == "anthropic-googl-2025-10-23:GOOGL")["car"][0]
    assert car == pytest.approx(_csv_ret("GOOGL", date(2025, 10, 23)) - _csv_ret("SPY", date(2025, 10, 23)), abs=1e-12)
    assert car == pytest.approx(0.0055 - 0.0059, abs=2e-4)


@pytest.mark.parametrize("basis", ["official", "evidence"])
def test_evidence_for_a_since_corrected_date_fills_nothing(tmp_path: Path, basis: str) -> None:
    """The timing evidence of softbank-openai-2025-03-31 (22:17 ET, after the close) is for 03-31. A user
    corrects the announcement to 04-01 (no time): the evidence describes another day's news and must not
    put 04-01's announcement after the close (review: MSFT got t0 04-02, CAR -0.66%). With no time known
    the unknown-time policy decides: 04-01 08:00 ET is before the NYSE open of Tuesday 2025-04-01."""
    from carousel_runs import carousel_here

    from analysis.events import firm_events
    from ledger import api

    db = tmp_path / "c.duckdb"
    with connect(db) as con:
        import_file(con, DATA / "events" / "deals.csv")
        import_file(con, DATA / "events" / "timing_evidence.csv")
    res = carousel_here("ledger", "correct", "softbank-openai-2025-03-31", "--set", "announced_date=2025-04-01",
                        "--reason", "test", "--db", db)
    assert res.returncode == 0, res.stderr
    with connect(db, read_only=True) as con:
        deals, _returns = load_inputs(con, ["SPY"])
        dates = api.timing_dates(con)
    assert dates.filter(pl.col("deal_id") == "softbank-openai-2025-03-31")["timing_for_date"].to_list() == [
        date(2025, 3, 31)]
    fe = firm_events(apply_date_basis(deals, basis)).filter(pl.col("deal_id") == "softbank-openai-2025-03-31")
    msft = fe.filter(pl.col("ticker") == "MSFT").row(0, named=True)
    assert (msft["t0"], msft["time_source"]) == (date(2025, 4, 1), "none")
    # the other deals' same-date evidence still fills (GOOGL 10-23 after the close -> 10-24)
    googl = firm_events(apply_date_basis(deals, basis)).filter(
        (pl.col("deal_id") == "anthropic-googl-2025-10-23") & (pl.col("ticker") == "GOOGL"))
    assert googl["t0"].to_list() == [date(2025, 10, 24)]
