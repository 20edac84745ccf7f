"""The carousel over time, as known at each month end and as known today: a ledger kept "in real time"
(deals recorded on a patched clock) gives the two vintages, checked by hand; the last month as known
today is the current flow graph."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import network
from analysis.timeline_series import (
    month_ends,
    persist_timeline,
    revealed_later,
    timeline,
    timeline_csv,
    timeline_plot,
)
from carousel.db import connect
from core.errors import InputError
from ledger import api, log
from ledger.load import import_file

DEALS_CSV = Path(__file__).resolve().parents[2] / "data" / "events" / "deals.csv"
JUNE = dt.date(2025, 6, 30)


def _split(tmp: Path) -> tuple[Path, Path]:
    with DEALS_CSV.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows, fields = list(reader), reader.fieldnames
    assert fields is not None
    early = [r for r in rows if r["announced_date"] and r["announced_date"] <= "2025-05-31"]
    late = [r for r in rows if r not in early]
    paths = []
    for name, part in (("early.csv", early), ("late.csv", late)):
        p = tmp / name
        with p.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(part)
        paths.append(p)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def live_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Deals announced up to 2025-05-31 recorded on 2025-06-01; the rest recorded now."""
    tmp = tmp_path_factory.mktemp("timeline")
    early, late = _split(tmp)
    db = tmp / "c.duckdb"
    stamp = int(dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC).timestamp() * 1_000_000)
    mp = pytest.MonkeyPatch()
    mp.setattr(log, "_now_us", lambda: stamp)
    with connect(db) as con:
        import_file(con, early)
    mp.undo()
    with connect(db) as con:
        import_file(con, late)
    return db


def test_month_ends() -> None:
    assert month_ends(dt.date(2025, 11, 5), dt.date(2026, 2, 1)) == [
        dt.date(2025, 11, 30), dt.date(2025, 12, 31), dt.date(2026, 1, 31), dt.date(2026, 2, 28)]
    with pytest.raises(InputError):
        month_ends(dt.date(2026, 1, 1), dt.date(2025, 1, 1))


def test_two_vintages_by_hand(live_db: Path) -> None:
    with connect(live_db, read_only=True) as con:
        t = timeline(con, [dt.date(2025, 5, 31), JUNE])
    get = {(r["month"], r["vintage"]): r for r in t.to_dicts()}
    # 05-31: nothing was recorded yet at month end; today the May web is known
    assert get[(dt.date(2025, 5, 31), "then")]["committed_usd"] == 0.0
    assert get[(dt.date(2025, 5, 31), "then")]["openai_share"] is None
    # June as known today ($bn, disclosed and counted): Microsoft 1, CoreWeave stock 0.35, OpenAI ->
    # CoreWeave 11.9, Nvidia -> CoreWeave 0.25, SoftBank's own 30, Oracle -> Nvidia 40, Meta -> Scale 14.3
    out = {"microsoft": 1, "coreweave": 0.35, "openai": 11.9, "nvidia": 0.25, "softbank": 30, "oracle": 40, "meta": 14.3}
    inn = {"openai": 1 + 0.35 + 30, "coreweave": 11.9 + 0.25, "nvidia": 40, "scale_ai": 14.3}
    total = sum(out.values())
    today = get[(JUNE, "today")]
    assert today["committed_usd"] == pytest.approx(total * 1e9, rel=1e-12)
    assert today["openai_share"] == pytest.approx((1 + 0.35 + 11.9 + 30) / total, rel=1e-12)
    assert today["hhi_out"] == pytest.approx(10_000 * np.sum((np.array(list(out.values())) / total) ** 2), rel=1e-12)
    assert today["hhi_in"] == pytest.approx(10_000 * np.sum((np.array(list(inn.values())) / total) ** 2), rel=1e-12)
    # CoreWeave <-> OpenAI, and CoreWeave -> OpenAI -> Oracle -> Nvidia -> CoreWeave through the
    # 2025-06-30 Oracle report (standing in for its contract's counting report)
    assert today["n_round_trips"] == 2
    # June as known at its end: only the deals recorded on 06-01 (announced up to 05-31)
    then = get[(JUNE, "then")]
    assert then["committed_usd"] == pytest.approx((total - 14.3) * 1e9, rel=1e-12)
    assert then["n_round_trips"] == 1
    rev = revealed_later(t).filter(pl.col("month") == JUNE).to_dicts()[0]
    assert rev["committed_usd__revealed"] == pytest.approx(14.3e9, rel=1e-12)
    assert rev["n_round_trips__revealed"] == 1


def test_last_month_today_is_the_current_graph_and_outputs(live_db: Path, tmp_path: Path) -> None:
    with connect(live_db, read_only=True) as con:
        t = timeline(con)
        current = network.analyse(api.flows(con))
    last = t.filter(pl.col("vintage") == "today").sort("month").tail(1).to_dicts()[0]
    assert last["month"] == dt.date(2026, 4, 30)
    assert last["n_round_trips"] == current.cycles.height == 9
    # ... less the undated 'up to $4B' OpenAI -> CoreWeave expansion, in effect on no date
    assert last["committed_usd"] == pytest.approx(current.total_usd - 4e9, rel=1e-12)
    # SQL form
    db2 = tmp_path / "t.duckdb"
    with connect(db2) as con:
        persist_timeline(con, t)
        persist_timeline(con, t)  # replaces, never appends
        n, s = con.execute("SELECT count(*), sum(n_round_trips) FROM carousel_timeline WHERE vintage = 'today'").fetchall()[0]
    assert n == t.filter(pl.col("vintage") == "today").height and s == t.filter(pl.col("vintage") == "today")["n_round_trips"].sum()
    # table and figure are deterministic
    assert timeline_csv(t) == timeline_csv(t.reverse())
    from analysis.plots import save

    a = save(timeline_plot(t), tmp_path / "a", "timeline")
    b = save(timeline_plot(t), tmp_path / "b", "timeline")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_snapshots_from_one_read_equal_one_query_per_month(live_db: Path) -> None:
    """timeline_snapshots reads the log once and folds each prefix: every (month, vintage) frame equals
    ``ledger.api.flows(as_known_at=, in_effect_on=)``, the query per month it replaced (two vintages,
    one of them with deals recorded after the month end)."""
    from polars.testing import assert_frame_equal

    from analysis.timeline_series import _end_of_day, timeline_snapshots

    months = month_ends(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    with connect(live_db, read_only=True) as con:
        flows, _ = timeline_snapshots(con, months)
        for m in months:
            for vintage, known_at in (("then", _end_of_day(m)), ("today", None)):
                got = flows.filter((pl.col("known_on") == m) & (pl.col("vintage") == vintage))
                want = api.flows(con, as_known_at=known_at, in_effect_on=m)
                assert_frame_equal(got.drop("known_on", "vintage"), want)
    # Not vacuous: the vintages differ in May (nothing recorded by its end) and agree in June.
    may = flows.filter(pl.col("known_on") == dt.date(2025, 5, 31))
    assert may.filter(pl.col("vintage") == "then").height == 0 < may.filter(pl.col("vintage") == "today").height
