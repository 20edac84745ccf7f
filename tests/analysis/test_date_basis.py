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
from market.snapshot import load_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    db = tmp_path_factory.mktemp("basis") / "c.duckdb"
    with connect(db) as con:
        import_file(con, DATA / "events" / "deals.csv")
        import_file(con, DATA / "events" / "timing_evidence.csv")
        load_snapshot(con)
        return load_inputs(con, ["SPY"])


def _t0(res: object, event_id: str) -> date:
    car = res.car  # type: ignore[attr-defined]
    return car.filter(pl.col("event_id") == event_id)["t0"][0]


def test_official_basis_is_the_default_study(inputs: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns = inputs
    assert apply_date_basis(deals, "official") is deals
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
    assert _t0(official, gid) == date(2025, 10, 23)
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
