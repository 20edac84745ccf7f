"""The dollar section (tables, tests, figures) and the round-trips' member deals, on the shipped data.

Independent routes: sums and hypotenuses recomputed row by row in Python from the study's dollar
frame, amounts read from data/events/deals.csv with the csv module, and the dollar tests against
scipy.stats (normal tail of the total, one-sample t of the mean).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis import network
from analysis.dollar import expand_to_deals, per_cycle_volume
from analysis.dollar_columns import study_dollars
from analysis.dollar_outputs import (
    announcement_amounts,
    dollar_section,
    summaries,
    write_dollar_section,
)
from analysis.events import firm_events
from analysis.study import run_study
from carousel.db import connect
from core.errors import InputError
from ledger import api as ledger_api
from market import api as market_api
from market.returns import compute_returns
from market.shares_store import load_shares_snapshot
from market.snapshot import load_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"
NVDA_CYCLE = "nvidia -> openai -> oracle -> nvidia"
AMZN_CYCLE = "amazon -> openai -> amazon"
W = "[-1,+1]"


def _amount_bn(deal_id: str) -> float:
    with (DATA / "events" / "deals.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["id"] == deal_id:
                return float(row["amount_usd_bn"])
    raise KeyError(deal_id)


@pytest.fixture(scope="module")
def shipped(seeded_ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The default study of the shipped data with its dollar columns, deals and flows."""
    path = tmp_path_factory.mktemp("dsec") / "c.duckdb"
    shutil.copy(seeded_ledger, path)
    with connect(path) as con:
        load_snapshot(con)
        load_shares_snapshot(con)
    with connect(path, read_only=True) as con:
        deals, flows = ledger_api.deals(con), ledger_api.flows(con)
        res = run_study(deals, compute_returns(market_api.prices(con)))
        dollars = study_dollars(con, res.car)
    return {"deals": deals, "flows": flows, "dollars": dollars}


@pytest.fixture(scope="module")
def section(shipped: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], dict]:
    return dollar_section(shipped["dollars"], shipped["deals"], shipped["flows"])


def _moves(dollars: pl.DataFrame, ticker_t0: set[tuple[str, dt.date]], window: str = W) -> list[dict]:
    return [r for r in dollars.filter(pl.col("window") == window).iter_rows(named=True)
            if (r["ticker"], r["t0"]) in ticker_t0]


def test_cycle_members_name_each_contract_once(shipped: dict[str, pl.DataFrame]) -> None:
    flows = shipped["flows"]
    fa = network.analyse(flows)
    members = network.cycle_members(flows, fa.cycles)
    assert set(members["cycle"].to_list()) == set(fa.cycles["cycle"].to_list())
    nv = members.filter(cycle=NVDA_CYCLE)
    # The $30bn equity (not the superseded LOI or the stall report), the counted Oracle report of the
    # four, and Oracle's chip purchase.
    assert nv["deal_id"].to_list() == ["nvda-openai-2026-02-27", "openai-orcl-2025-09-10", "orcl-nvda-2025-05-23"]
    assert nv["edges"].to_list() == [["nvidia -> openai"], ["openai -> oracle"], ["oracle -> nvidia"]]
    dup = set(flows.filter("duplicate_report")["deal_id"].to_list())
    assert len(dup) == 7 and not dup & set(members["deal_id"].to_list())
    assert members.filter(cycle="amd -> openai -> amd")["deal_id"].to_list() == [
        "amd-openai-2025-10-06", "amd-openai-2025-10-06-warrant"]
    assert members.height == 32 and members.select("cycle", "contract_id").is_duplicated().sum() == 0


def test_cycle_members_without_duplicate_marks_or_contract_ids() -> None:
    """A hand-made frame: an uncounted single-edge report is a duplicate; a multi-party deal enters."""
    flows = pl.DataFrame({
        "deal_id": ["a1", "a2", "b", "m", "m"],
        "payer": ["x", "x", "y", "y", "z"],
        "payee": ["y", "y", "x", "x", "w"],
        "counts_toward_total": [True, False, True, False, False],
    })
    cyc = pl.DataFrame({"cycle": ["x -> y -> x"], "nodes": [["x", "y"]]})
    out = network.cycle_members(flows, cyc)
    assert out["deal_id"].to_list() == ["a1", "b", "m"]
    assert out["edges"].to_list() == [["x -> y"], ["y -> x"], ["y -> x"]]


def test_expand_to_deals_gives_the_warrant_amds_move(shipped: dict[str, pl.DataFrame]) -> None:
    dollars = shipped["dollars"]
    events = firm_events(shipped["deals"])
    ex = expand_to_deals(dollars, events).filter(pl.col("window") == "[0,0]")
    chips = ex.filter(deal_id="amd-openai-2025-10-06").row(0, named=True)
    warrant = ex.filter(deal_id="amd-openai-2025-10-06-warrant").row(0, named=True)
    assert warrant["study_deal_id"] == "amd-openai-2025-10-06"
    assert warrant["dollar_car"] == chips["dollar_car"] and 61e9 < chips["dollar_car"] < 63e9


def test_cycle_totals_and_value_per_circulating_dollar(shipped: dict[str, pl.DataFrame],
                                                       section: tuple[dict[str, pl.DataFrame], dict]) -> None:
    frames, _ = section
    cyc = frames["by_cycle"].rows_by_key("cycle", named=True, unique=True)
    # amazon -> openai -> amazon: AMZN's moves of 2025-11-03 ($38bn compute) and 2026-02-27 (the $50bn
    # equity and $100bn compute announced together: one move), each once.
    moves = _moves(shipped["dollars"], {("AMZN", dt.date(2025, 11, 3)), ("AMZN", dt.date(2026, 2, 27))})
    assert len(moves) == 2 and all(m["dollar_car"] is not None for m in moves)
    total = sum(m["dollar_car"] for m in moves)
    se = math.sqrt(sum(m["dollar_se"] ** 2 for m in moves))
    amzn = cyc[AMZN_CYCLE]
    assert amzn["dollar_bn"] == pytest.approx(total / 1e9, rel=1e-12)
    assert amzn["se_bn"] == pytest.approx(se / 1e9, rel=1e-12)
    assert amzn["volume_bn"] == _amount_bn("amzn-openai-2026-02-27") == 50.0  # the 'up to' bottleneck
    assert amzn["per_circulating_dollar"] == pytest.approx(total / 50e9, rel=1e-12)
    assert amzn["volume_is_firm"] is False and amzn["n"] == 2
    assert 300 < amzn["dollar_bn"] < 400
    # An undisclosed edge: no volume, never a ratio; a stale count (ORCL 2025-05-23): incomplete, with
    # the partial sum and the member named.
    assert cyc["amd -> openai -> amd"]["ratio_reason"] == "volume_undisclosed"
    nv = cyc[NVDA_CYCLE]
    assert nv["dollar_bn"] is None and not nv["complete"] and nv["ratio_reason"] == "parties_missing"
    assert nv["missing"] == "ORCL 2025-05-23: count_stale"
    valued = [m for m in _moves(shipped["dollars"], {("NVDA", dt.date(2026, 2, 27)), ("ORCL", dt.date(2025, 9, 10)),
                                                     ("NVDA", dt.date(2025, 5, 23)), ("ORCL", dt.date(2025, 5, 23))})
              if m["dollar_car"] is not None]
    assert len(valued) == 3
    assert nv["partial_bn"] == pytest.approx(sum(m["dollar_car"] for m in valued) / 1e9, rel=1e-12)
    assert cyc["coreweave -> openai -> coreweave"]["ratio_reason"] == "no_firm_event"  # CRWV pre-IPO
    assert frames["by_cycle"].height == 9


def test_per_cycle_volume_hand_frame() -> None:
    frame = pl.DataFrame({
        "event_id": ["a:X", "b:Y", "b:Y2"], "deal_id": ["a", "b", "b"], "ticker": ["X", "Y", "Z"],
        "t0": [dt.date(2025, 1, 2)] * 3, "window": ["[0,0]"] * 3,
        "dollar_car": [3e9, -1e9, None], "dollar_se": [1e9, 2e9, None], "dollar_reason": [None, None, "fx_missing"],
    })
    members = pl.DataFrame({"cycle": ["c1", "c1", "c2"], "deal_id": ["a", "b", "a"]})
    cycles = pl.DataFrame({"cycle": ["c1", "c2"], "volume_usd": [4e9, None],
                           "volume_is_firm": [True, False], "volume_is_lower_bound": [False, False]})
    out = per_cycle_volume(frame, members, cycles).rows_by_key("cycle", named=True, unique=True)
    assert out["c1"]["ratio_reason"] == "parties_missing" and out["c1"]["dollar_car_partial"] == 2e9
    assert out["c2"]["ratio_reason"] == "volume_undisclosed" and out["c2"]["dollar_car"] == 3e9
    complete = per_cycle_volume(frame.head(2), members, cycles).rows_by_key("cycle", named=True, unique=True)
    assert complete["c1"]["per_circulating_dollar"] == 2e9 / 4e9
    assert complete["c1"]["per_circulating_dollar_se"] == math.hypot(1e9, 2e9) / 4e9


def test_movers_and_deal_totals(shipped: dict[str, pl.DataFrame],
                                section: tuple[dict[str, pl.DataFrame], dict]) -> None:
    frames, _ = section
    rows = [r for r in shipped["dollars"].filter(pl.col("window") == W).iter_rows(named=True)
            if r["dollar_car"] is not None]
    m = frames["movers"]
    creators, destroyers = m.filter(side="creator"), m.filter(side="destroyer")
    assert creators.height == destroyers.height == 10
    assert creators["dollar_bn"][0] == pytest.approx(max(r["dollar_car"] for r in rows) / 1e9, rel=1e-12)
    assert destroyers["dollar_bn"][0] == pytest.approx(min(r["dollar_car"] for r in rows) / 1e9, rel=1e-12)
    assert (creators["dollar_bn"] > 0).all() and (destroyers["dollar_bn"] < 0).all()
    orcl = m.filter(ticker="ORCL", t0=dt.date(2025, 9, 10)).row(0, named=True)
    row = next(r for r in rows if r["event_id"] == "openai-orcl-2025-09-10:ORCL")
    amount = _amount_bn("openai-orcl-2025-09-10") * 1e9
    assert orcl["per_committed_dollar"] == pytest.approx(row["dollar_car"] / amount, rel=1e-12)
    assert 0.6 < orcl["per_committed_dollar"] < 0.7  # ~$0.66 of Oracle value per $1 of the $300bn
    deal = frames["by_deal"].filter(deal_id="openai-orcl-2025-09-10").row(0, named=True)
    assert deal["per_committed_dollar"] == pytest.approx(row["dollar_car"] / amount, rel=1e-12)
    assert deal["per_committed_dollar_se"] == pytest.approx(row["dollar_se"] / amount, rel=1e-12)
    amd = frames["by_deal"].filter(deal_id="amd-openai-2025-10-06-warrant").row(0, named=True)
    assert amd["ratio_reason"] == "amount_undisclosed" and amd["per_committed_dollar"] is None


def test_announcement_amounts_count_each_contract_once(shipped: dict[str, pl.DataFrame]) -> None:
    a = announcement_amounts(shipped["deals"], firm_events(shipped["deals"]))
    amzn = a.filter(ticker="AMZN", t0=dt.date(2026, 2, 27)).row(0, named=True)
    assert amzn["amount_usd"] == (_amount_bn("amzn-openai-2026-02-27") + _amount_bn("openai-amzn-2026-02-27")) * 1e9
    assert amzn["amount_kinds"] == ["exact", "up_to"] and not amzn["amount_partial"]
    amd = a.filter(ticker="AMD", t0=dt.date(2025, 10, 6)).row(0, named=True)
    assert amd["amount_usd"] is None


def test_dollar_tests_agree_with_scipy(shipped: dict[str, pl.DataFrame],
                                       section: tuple[dict[str, pl.DataFrame], dict]) -> None:
    frames, _ = section
    tests = frames["tests"]
    assert tests["window"].unique(maintain_order=True).to_list() == ["[-5,+5]", "[-1,+1]", "[0,0]", "[0,+10]"]
    for window in ("[0,0]", W):
        w = shipped["dollars"].filter((pl.col("window") == window) & pl.col("dollar_car").is_not_null())
        d, s = w["dollar_car"].to_numpy(), w["dollar_se"].to_numpy()
        t = tests.filter(window=window).rows_by_key("term", named=True, unique=True)
        total, mean = t["total_dollar_car"], t["mean_dollar_car"]
        # Firm-events without a value: the window is incomplete, its total unknown; the statistics over
        # the valued ones are kept as partial ones beside it, the excluded members named.
        left_out = shipped["dollars"].filter((pl.col("window") == window) & pl.col("dollar_car").is_null())
        assert left_out.height == 15 and d.size == 25
        for r in (total, mean):
            assert r["coef_bn"] is None and r["se_bn"] is None and r["stat"] is None and r["p"] is None
            assert r["complete"] is False and r["n"] == d.size and r["n_without_value"] == left_out.height
            assert r["missing"] == "; ".join(sorted(f"{x['ticker']} {x['t0']}: {x['dollar_reason']}"
                                                    for x in left_out.iter_rows(named=True)))
        assert total["partial_bn"] == pytest.approx(d.sum() / 1e9, rel=1e-12)
        assert total["partial_se_bn"] == pytest.approx(np.sqrt((s ** 2).sum()) / 1e9, rel=1e-12)
        z = d.sum() / np.sqrt((s ** 2).sum())
        assert total["partial_p"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
        ref = stats.ttest_1samp(d, 0.0)
        assert mean["partial_stat"] == pytest.approx(ref.statistic, rel=1e-10)
        assert mean["partial_p"] == pytest.approx(ref.pvalue, rel=1e-10)
    cum = frames["cumulative"]
    total_w = tests.filter(window=W, term="total_dollar_car")["partial_bn"][0]
    assert cum["cumulative_partial_bn"][-1] == pytest.approx(total_w, rel=1e-12)
    assert cum["cumulative_se_bn"][-1] == pytest.approx(
        tests.filter(window=W, term="total_dollar_car")["partial_se_bn"][0], rel=1e-12)


def test_cumulative_stops_at_the_first_day_with_a_missing_member(
        shipped: dict[str, pl.DataFrame], section: tuple[dict[str, pl.DataFrame], dict]) -> None:
    """Recomputed day by day in Python: a day with a member lacking a value has no day total, and no
    running total from it on (2026-04-09: META valued, CRWV count_stale)."""
    cum = section[0]["cumulative"]
    rows = [r for r in shipped["dollars"].iter_rows(named=True) if r["window"] == W]
    days = sorted({r["t0"] for r in rows})
    assert cum["t0"].to_list() == days
    running, seen_gap = 0.0, False
    for day, c in zip(days, cum.iter_rows(named=True), strict=True):
        members = [r for r in rows if r["t0"] == day]
        lacking = sorted(f"{r['ticker']} {r['t0']}: {r['dollar_reason']}" for r in members if r["dollar_car"] is None)
        valued = sum(r["dollar_car"] for r in members if r["dollar_car"] is not None)
        running += valued
        seen_gap = seen_gap or bool(lacking)
        assert c["missing"] == ("; ".join(lacking) or None)
        assert c["cumulative_partial_bn"] == pytest.approx(running / 1e9, rel=1e-12, abs=1e-9)
        if lacking:
            assert c["day_bn"] is None
        else:
            assert c["day_bn"] == pytest.approx(valued / 1e9, rel=1e-12, abs=1e-12)
        assert (c["cumulative_bn"] is None) is seen_gap and c["complete"] is (not seen_gap)
    apr9 = cum.filter(t0=dt.date(2026, 4, 9)).row(0, named=True)
    assert apr9["day_bn"] is None and apr9["n_valued"] == 1 and apr9["missing"].startswith("CRWV 2026-04-09")


def test_tests_table_names_what_it_computes_and_who_is_left_out(
        section: tuple[dict[str, pl.DataFrame], dict]) -> None:
    s = summaries(section[0])["tests"]
    text = s.to_markdown() + s.to_latex()
    assert "Saha" not in text and "Ferrell" not in text
    assert "Total (z) and mean (t) dollar CAR per window: incomplete" in text
    assert "CRWV 2026-04-09: count_stale" in text and "INTC 2025-08-19: count_changed_in_gap" in text


def test_tables_and_figures_are_written_the_same_twice(section: tuple[dict[str, pl.DataFrame], dict],
                                                      shipped: dict[str, pl.DataFrame], tmp_path: Path) -> None:
    frames, figures = section
    s = summaries(frames)
    orcl = frames["movers"].filter(ticker="ORCL", t0=dt.date(2025, 9, 10)).row(0, named=True)
    cell = f"{orcl['dollar_bn']:.1f}***"
    assert f"| {cell.replace('*', chr(92) + '*')} |" in s["movers"].to_markdown()
    assert f"{cell} &" in s["movers"].to_latex()
    a = write_dollar_section(frames, figures, tmp_path / "a" / "tables", tmp_path / "a" / "figures")
    again = dollar_section(shipped["dollars"], shipped["deals"], shipped["flows"])
    b = write_dollar_section(*again, tmp_path / "b" / "tables", tmp_path / "b" / "figures")
    assert len(a) == len(b) == 19
    for p, q in zip(a, b, strict=True):
        assert p.read_bytes() == q.read_bytes(), p.name
    csv_back = pl.read_csv(tmp_path / "a" / "tables" / "dollar_by_cycle.csv")
    assert csv_back.height == 9


def test_bad_input_is_refused(shipped: dict[str, pl.DataFrame]) -> None:
    with pytest.raises(InputError, match="lacks column"):
        dollar_section(shipped["dollars"].drop("dollar_se"), shipped["deals"], shipped["flows"])
    with pytest.raises(InputError, match="window"):
        dollar_section(shipped["dollars"], shipped["deals"], shipped["flows"], window="[-2,+2]")
