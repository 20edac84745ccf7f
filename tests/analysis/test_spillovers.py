"""Spillover firm-events: chosen from the web as known at the announcement, measured like the parties'
(a spillover CAR equals the same firm added as a peer), and the parties' numbers do not move."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis.spillovers import spillover_pairs, spillover_study
from analysis.study import load_inputs, run_study
from carousel.db import connect
from core.errors import InputError
from ledger import api

DATA = Path(__file__).resolve().parents[2] / "data"
AMD = "amd-openai-2025-10-06"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    from ledger.load import import_file
    from market.snapshot import load_snapshot

    path = tmp_path_factory.mktemp("spill") / "c.duckdb"
    with connect(path) as con:
        import_file(con, DATA / "events" / "deals.csv")
        load_snapshot(con)
    with connect(path, read_only=True) as con:
        companies = api.companies(con)
        tickers = companies["tickers"].explode().drop_nulls().to_list()
        deals, returns = load_inputs(con, tickers)
    return deals, returns, companies


def test_pairs_follow_the_web_known_on_the_day(inputs: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> None:
    deals, _, companies = inputs
    one = spillover_pairs(deals, companies, 1)
    amd = one.filter(pl.col("deal_id") == AMD)
    # OpenAI's counterparties known on 2025-10-06 that are listed (AMD itself is the party)
    assert amd["ticker"].to_list() == ["9984.T", "CRWV", "GOOGL", "MSFT", "NVDA", "ORCL"]
    assert set(amd["role"]) == {"spillover_k1"}
    # Amazon's first OpenAI deal came on 2025-11-03: not a spillover of AMD's day, but of later ones
    assert "AMZN" not in amd["ticker"].to_list()
    assert "AMZN" in one.filter(pl.col("deal_id") == "nvda-openai-2026-01-30-stall")["ticker"].to_list()
    two = spillover_pairs(deals, companies, 2).filter(pl.col("deal_id") == AMD)
    assert set(two.filter(pl.col("hops") == 1)["ticker"]) == set(amd["ticker"])
    assert two.filter(pl.col("hops") == 2).height > 0 and set(two["role"]) == {"spillover_k1", "spillover_k2"}
    with pytest.raises(InputError, match="hops"):
        spillover_pairs(deals, companies, 0)


def test_parties_unchanged_and_spillover_equals_a_peer(inputs: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> None:
    deals, returns, companies = inputs
    base = run_study(deals, returns).car
    car = spillover_study(deals, returns, companies, hops=1)
    parties = car.filter(pl.col("role") == "counterparty").drop("role").sort("event_id", "window")
    assert parties.equals(base.sort("event_id", "window"))
    msft = car.filter((pl.col("event_id") == f"{AMD}:MSFT") & (pl.col("window") == "[0,0]")).to_dicts()
    assert len(msft) == 1 and msft[0]["role"] == "spillover_k1"
    # the same firm added to that deal as a peer is measured the same way
    peer = run_study(deals, returns, peers={AMD: ["MSFT"]}).car  # type: ignore[arg-type]
    ref = peer.filter((pl.col("event_id") == f"{AMD}:MSFT") & (pl.col("window") == "[0,0]")).to_dicts()[0]
    for k in ("car", "se", "t"):
        assert msft[0][k] == pytest.approx(ref[k], rel=1e-12)
    # "who gains when OpenAI signs with AMD" is one query
    day = car.filter(pl.col("deal_id") == AMD, pl.col("window") == "[0,0]", pl.col("role").str.starts_with("spillover"))
    # CRWV (listed March 2025) has too short an estimation window and is excluded like any firm-event;
    # NVDA, ORCL and 9984.T announced deals of their own 9-10 sessions before AMD's day, so their
    # [-5,+10] periods overlap and the later firm-event is left out (overlaps_earlier_event)
    assert day["ticker"].sort().to_list() == ["GOOGL", "MSFT"]
