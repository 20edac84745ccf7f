"""The carousel over time, as publicly reported by each month end, as recorded in the ledger by then and
as known today: a ledger kept "in real time" (deals recorded on a patched clock) gives the vintages,
checked by hand; the reported vintage never looks ahead (a fact reported after month M never changes
M's row); the last month as known today is the current flow graph."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import network
from analysis.timeline_series import (
    absent_vintages,
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
    assert get[(dt.date(2025, 5, 31), "recorded")]["committed_usd"] == 0.0
    assert get[(dt.date(2025, 5, 31), "recorded")]["openai_share"] is None
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
    then = get[(JUNE, "recorded")]
    assert then["committed_usd"] == pytest.approx((total - 14.3) * 1e9, rel=1e-12)
    assert then["n_round_trips"] == 1
    # as publicly reported by June's end: every June announcement, whenever it was recorded
    assert {k: v for k, v in get[(JUNE, "reported")].items() if k != "vintage"} == {
        k: v for k, v in today.items() if k != "vintage"}
    rev = revealed_later(t, "recorded").filter(pl.col("month") == JUNE).to_dicts()[0]
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
    # table and figure are deterministic; a ledger with data in every vintage leaves none out
    assert timeline_csv(t) == timeline_csv(t.reverse())
    assert absent_vintages(t) == {}
    from analysis.plots import save

    a = save(timeline_plot(t), tmp_path / "a", "timeline")
    b = save(timeline_plot(t), tmp_path / "b", "timeline")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


MAY = dt.date(2025, 5, 31)
ORCL_NVDA = "orcl-nvda-2025-05-23"
META_SCALE = "meta-scale-2025-06-12"
#: May 2025 by hand ($bn, disclosed and counted, deals announced up to 05-31): Microsoft -> OpenAI 1,
#: CoreWeave -> OpenAI stock 0.35, OpenAI -> CoreWeave 11.9, Nvidia -> CoreWeave 0.25, SoftBank's own 30
#: of the $40bn round, Oracle -> Nvidia 40.
MAY_OUT = {"microsoft": 1, "coreweave": 0.35, "openai": 11.9, "nvidia": 0.25, "softbank": 30, "oracle": 40}
MAY_IN = {"openai": 1 + 0.35 + 30, "coreweave": 11.9 + 0.25, "nvidia": 40}


def _stamped(us: dt.datetime) -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    stamp = int(us.timestamp() * 1_000_000)
    mp.setattr(log, "_now_us", lambda: stamp)
    return mp


def _timing(tmp: Path, deal: str, announced: str, first_report: str) -> Path:
    """A timing-evidence file with one row: the deal first reported (a leak) on ``first_report``."""
    p = tmp / f"timing-{deal}-{first_report}.csv"
    p.write_text(
        "id,announced_date,first_public_time_et,session,evidence_kind,evidence_url,evidence_quote,"
        "second_source_url,confidence,notes,first_report_date,first_report_time_et,first_report_session\n"
        f"{deal},{announced},,unknown,wire,https://example.com/{deal},,,low,test leak,{first_report},,\n",
        encoding="utf-8")
    return p


def _ledger(tmp: Path, name: str, *, amend: bool, late: bool, leak: str | None) -> Path:
    """Deals up to 05-31 recorded on 06-01; optionally Oracle -> Nvidia amended to $50bn effective 05-25
    but recorded on 06-20, the later deals recorded now, and a leak of Meta-Scale on ``leak``."""
    from ledger import commands

    tmp.mkdir(parents=True, exist_ok=True)
    early, rest = _split(tmp)
    db = tmp / name
    mp = _stamped(dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC))
    with connect(db) as con:
        import_file(con, early)
    mp.undo()
    if amend:
        mp = _stamped(dt.datetime(2025, 6, 20, 12, tzinfo=dt.UTC))
        with connect(db) as con:
            commands.amend(con, ORCL_NVDA, effective="2025-05-25", changes=["amount_usd=50000000000"])
        mp.undo()
    with connect(db) as con:
        if late:
            import_file(con, rest)
        if leak:
            import_file(con, _timing(tmp, META_SCALE, "2025-06-12", leak))
    return db


def _rows(db: Path, months: list[dt.date]) -> dict[tuple[dt.date, str], dict[str, object]]:
    with connect(db, read_only=True) as con:
        t = timeline(con, months)
    return {(r["month"], r["vintage"]): {k: v for k, v in r.items() if k not in ("month", "vintage")}
            for r in t.to_dicts()}


def test_reported_vintage_never_looks_ahead(tmp_path: Path) -> None:
    """May as publicly reported by its end, by hand; then facts reported after May (an amendment of a May
    deal recorded on 06-20 though effective 05-25, every later announcement, a June leak) leave May's row
    exactly as it was, while the 'today' vintage of May takes the retroactive amendment."""
    base = _rows(_ledger(tmp_path / "a", "base.duckdb", amend=False, late=False, leak=None), [MAY, JUNE])
    grown = _rows(_ledger(tmp_path / "b", "grown.duckdb", amend=True, late=True, leak="2025-06-11"), [MAY, JUNE])
    may = base[(MAY, "reported")]
    total = sum(MAY_OUT.values())
    assert may["committed_usd"] == pytest.approx(total * 1e9, rel=1e-12)
    assert may["n_round_trips"] == 1  # CoreWeave <-> OpenAI
    assert may["openai_share"] == pytest.approx((1 + 0.35 + 11.9 + 30) / total, rel=1e-12)
    assert may["hhi_out"] == pytest.approx(10_000 * np.sum((np.array(list(MAY_OUT.values())) / total) ** 2), rel=1e-12)
    assert may["hhi_in"] == pytest.approx(10_000 * np.sum((np.array(list(MAY_IN.values())) / total) ** 2), rel=1e-12)
    assert grown[(MAY, "reported")] == may
    # the control: valid time alone (as known today) applies the amendment to May, recorded in June
    assert grown[(MAY, "today")]["committed_usd"] == pytest.approx((total + 10) * 1e9, rel=1e-12)
    # by June's end the amendment (06-20) and the June announcements are public
    june = grown[(JUNE, "reported")]
    assert june["committed_usd"] == pytest.approx((total + 10 + 14.3) * 1e9, rel=1e-12)
    assert june == grown[(JUNE, "today")]


def test_a_leak_counts_from_its_first_report(tmp_path: Path) -> None:
    """Meta-Scale (announced 2025-06-12) first reported on 05-30 (a test leak): public by May's end, so in
    May's reported row ($14.3bn more), though not yet in effect (today's May row lacks it)."""
    rows = _rows(_ledger(tmp_path, "leak.duckdb", amend=False, late=True, leak="2025-05-30"), [MAY])
    total = sum(MAY_OUT.values())
    assert rows[(MAY, "reported")]["committed_usd"] == pytest.approx((total + 14.3) * 1e9, rel=1e-12)
    assert rows[(MAY, "today")]["committed_usd"] == pytest.approx(total * 1e9, rel=1e-12)
    assert rows[(MAY, "recorded")]["committed_usd"] == 0.0  # nothing recorded by 05-31


def test_an_empty_vintage_is_named_not_listed(tmp_path: Path) -> None:
    """A ledger recorded in one import after its last month (the shipped case): the recorded vintage is
    absent from the table and the figure, with the reason; reported equals today here."""
    from analysis.research_sections import timeline_summary

    db = tmp_path / "now.duckdb"
    with connect(db) as con:
        import_file(con, DEALS_CSV)
        t = timeline(con)
    absent = absent_vintages(t)
    assert list(absent) == ["recorded"] and "compiled after the fact" in absent["recorded"]
    md = timeline_summary(t).to_markdown()
    assert "round_trips__recorded" not in timeline_summary(t).tables[0].frame.columns
    assert "Not listed, as recorded in the ledger by month end: no deal had been recorded" in md
    assert "As publicly reported by month end equals as known today at every month end" in md


def test_each_month_measured_on_its_own_gives_the_same_table(live_db: Path) -> None:
    """carousel_timeline measures each different snapshot once: the table equals measuring every
    (month, vintage) on its own flows, as the definition reads (the live ledger's three vintages)."""
    from analysis.timeline_series import (
        TIMELINE_SCHEMA,
        VINTAGES,
        _measures,
        carousel_timeline,
        timeline_snapshots,
    )

    with connect(live_db, read_only=True) as con:
        flows, current = timeline_snapshots(con)
    months = sorted(flows["known_on"].unique().to_list())
    rows = []
    for m in months:
        for vintage in VINTAGES:
            part = flows.filter((pl.col("known_on") == m) & (pl.col("vintage") == vintage))
            rows.append({"month": m, "vintage": vintage, **_measures(part, current)})
    one_by_one = pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row").sort("month", "vintage")
    table = carousel_timeline(flows, current, months)
    assert table.equals(one_by_one)
    assert table.height == 3 * len(months) > 30
    # Not a table of zeros: the last month as known today has the flows and round-trips.
    last = table.filter((pl.col("month") == months[-1]) & (pl.col("vintage") == "today"))
    assert last["committed_usd"][0] > 1e11 and last["n_round_trips"][0] > 0
