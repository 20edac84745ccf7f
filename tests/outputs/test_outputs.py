"""Research outputs: the flow graph's numbers, figure determinism, tables, read-only SQL, the main job
and the report rendered in headless Chromium."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from analysis import network, papertables, plots
from carousel.db import connect
from carousel.queries import check_read_only, query
from core.errors import InputError
from ledger import api
from ledger.load import import_file

REPO = Path(__file__).resolve().parents[2]
DEALS = REPO / "data" / "events" / "deals.csv"


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    with connect(tmp_path_factory.mktemp("g") / "g.duckdb") as con:
        import_file(con, DEALS)
        return api.flows(con)


def test_round_trips_on_the_shipped_deals(flows: pl.DataFrame) -> None:
    fa = network.analyse(flows)
    cyc = {r["cycle"]: r for r in fa.cycles.iter_rows(named=True)}
    # Nvidia invests in OpenAI ($30B counted; the $100B LOI was superseded), OpenAI buys from Oracle
    # ($300B), Oracle buys Nvidia chips ($40B): the smallest edge, $30B, can circulate.
    assert cyc["nvidia -> openai -> oracle -> nvidia"]["volume_usd"] == pytest.approx(30e9)
    # Two-way pairs: CoreWeave sells compute to OpenAI and issued it $350M of stock.
    assert cyc["coreweave -> openai -> coreweave"]["volume_usd"] == pytest.approx(0.35e9)
    assert cyc["amazon -> openai -> amazon"]["volume_usd"] == pytest.approx(50e9)
    # Nvidia -> CoreWeave closes through OpenAI and Oracle (there is no CoreWeave -> Nvidia row).
    assert cyc["coreweave -> openai -> oracle -> nvidia -> coreweave"]["volume_usd"] == pytest.approx(0.35e9)
    # AMD's chips-for-warrant round trip has undisclosed amounts: found, flagged, no volume invented.
    amd = cyc["amd -> openai -> amd"]
    assert amd["has_undisclosed"] and amd["volume_usd"] is None
    assert fa.cycles.height == 9
    # Microsoft -> OpenAI: $1B (2019) plus an undisclosed 2023 tranche: a lower bound, flagged.
    msft = cyc["microsoft -> openai -> microsoft"]
    assert msft["volume_usd"] == pytest.approx(1e9) and msft["volume_is_lower_bound"]
    assert not cyc["nvidia -> openai -> oracle -> nvidia"]["volume_is_lower_bound"]


def test_excluded_edges_are_neither_undisclosed_nor_in_the_graph(flows: pl.DataFrame) -> None:
    fa = network.analyse(flows)
    e = {(r["payer"], r["payee"]): r for r in fa.edges.iter_rows(named=True)}
    # SoftBank's Nvidia stake (open-market shares) and its sale: known amounts, excluded by contracts.csv.
    for key in (("softbank", "nvidia"), ("open_market", "softbank")):
        assert not e[key]["counted"] and not e[key]["undisclosed"]
        assert not fa.graph.has_edge(*key)
    # Stargate's multi-party commitments have no attributable amount: undisclosed, still in the web.
    assert e[("softbank", "stargate")]["counted"] and e[("softbank", "stargate")]["undisclosed"]
    assert fa.graph.has_edge("softbank", "stargate")
    assert (fa.graph.number_of_nodes(), fa.graph.number_of_edges()) == (16, 30)
    assert int(fa.edges["undisclosed"].sum()) == 10
    assert fa.stress.filter(failed="softbank", company="nvidia").height == 0


def test_concentration_matches_an_independent_computation(flows: pl.DataFrame) -> None:
    fa = network.analyse(flows)
    counted = [r for r in flows.iter_rows(named=True) if r["counts_toward_total"] and r["amount_usd"] is not None]
    total = sum(r["amount_usd"] for r in counted)
    assert total == pytest.approx(1032.8e9)  # SoftBank's $30B share of the $40B round
    inflow: dict[str, float] = {}
    for r in counted:
        inflow[r["payee"]] = inflow.get(r["payee"], 0.0) + r["amount_usd"]
    hhi_in = sum((v / total) ** 2 for v in inflow.values()) * 10_000
    assert fa.hhi_in == pytest.approx(hhi_in)
    assert fa.hhi_in == pytest.approx(2010.16, abs=0.01)
    assert fa.hhi_out == pytest.approx(4890.49, abs=0.01)
    oracle = fa.shares.filter(company="oracle").row(0, named=True)
    assert oracle["in_share"] == pytest.approx(300 / 1032.8)


def test_stress_lists_first_and_second_order_inflows(flows: pl.DataFrame) -> None:
    fa = network.analyse(flows)
    s = fa.stress.filter(failed="openai")
    oracle = s.filter(company="oracle").row(0, named=True)
    assert oracle["first_order_usd"] == pytest.approx(300e9)
    nvidia = s.filter(company="nvidia").row(0, named=True)
    assert nvidia["first_order_usd"] is None and nvidia["second_order_via"] == ["oracle"]
    assert nvidia["second_order_usd"] == pytest.approx(40e9)
    # Undisclosed second-order inflows are flagged, never summed as zero.
    amd = s.filter(company="amd").row(0, named=True)
    assert amd["first_order_undisclosed"] and amd["second_order_usd"] is None and amd["second_order_undisclosed"]


def test_car_path_band_uses_the_full_prediction_error_variance() -> None:
    import numpy as np
    from estudy2_reference import estudy2_panel

    panel = estudy2_panel()
    path = plots.car_path(panel, 0, 0, 4)
    row = 0
    cols = np.arange(panel.day_index(0), panel.day_index(4) + 1)
    x, a = panel.x_event[row][cols], panel.xtx_inv[row]
    ones = np.ones(len(cols))
    expected = panel.sigma[row] * np.sqrt(len(cols) + ones @ x @ a @ x.T @ ones)
    assert path["se"][-1] == pytest.approx(expected, rel=1e-12)
    assert path["car"][-1] == pytest.approx(np.nansum(panel.ar[row, cols]), rel=1e-12)


def test_tables_carry_stars_and_booktabs() -> None:
    car = pl.DataFrame({
        "deal_id": ["d_1", "d_1", "d_2"], "ticker": ["AMD", "AMD", "ORCL"],
        "t0": [dt.date(2025, 10, 6)] * 3, "window": ["[0,0]", "[-1,+1]", "[0,0]"],
        "car": [0.2314, 0.01, -0.02], "se": [0.0231, 0.04, 0.011], "t": [10.0, 0.25, -1.8],
        "p": [1e-20, 0.8, 0.07],
    })
    t = papertables.car_table(car)
    assert t["stars"].to_list() == ["", "***", "*"]
    tex = papertables.to_latex(t, "Caption & co", "tab:x")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"d\_1 & AMD & 2025-10-06 & [0,0] & 23.14*** & 2.31 & 10.00 & \textless{}0.0001 \\" in tex
    assert "Caption \\& co" in tex
    md = papertables.to_markdown(t)
    assert "| d_2 | ORCL | 2025-10-06 | [0,0] | -2.00\\* | 1.10 | -1.80 | 0.0700 |" in md
    assert papertables.STAR_NOTE.replace("*", "\\*") in md


def test_csv_table_keeps_full_precision(tmp_path: Path) -> None:
    # Rounded to 2 decimals and printed with 4, 1.30374 used to appear as 1.3000: digits that look
    # measured but were rounded away. The CSV carries the values; the display formats round.
    car = pl.DataFrame({
        "deal_id": ["d"], "ticker": ["MSFT"], "t0": [dt.date(2019, 7, 22)], "window": ["[-1,+1]"],
        "car": [0.0130374], "se": [0.0123456789], "t": [1.05604], "p": [0.29213],
    })
    t = papertables.car_table(car)
    paths = papertables.write_all(t, tmp_path, "x", "c")
    back = pl.read_csv(paths[1])
    assert back["car_pct"].item() == pytest.approx(1.30374, rel=1e-12)
    assert back["se_pct"].item() == pytest.approx(1.23456789, rel=1e-12)
    assert back["p"].item() == 0.29213
    assert "| 1.30 | 1.23 | 1.06 | 0.2921 |" in paths[2].read_text()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO ledger_log VALUES (1)", "DELETE FROM ledger_log", "UPDATE ledger_log SET payload = ''",
        "DROP TABLE ledger_log", "CREATE TABLE x (a INT)", "ATTACH 'other.duckdb'", "COPY ledger_log TO 'x.csv'",
        "SET threads = 1", "SELECT 1; DELETE FROM ledger_log", "INSTALL httpfs", "PRAGMA enable_profiling",
    ],
)
def test_sql_refuses_every_write(sql: str) -> None:
    with pytest.raises(InputError, match="read-only|exactly one"):
        check_read_only(sql)


def test_sql_cannot_read_or_write_files_and_db_is_unchanged(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = run_out
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="query failed"):
        query("SELECT * FROM read_csv('/etc/passwd')", db)
    res = subprocess.run([sys.executable, "-m", "carousel", "sql", "DELETE FROM deals", "--db", str(db)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "read-only: DELETE statements are refused" in res.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_run_outputs_and_views(run_out: tuple[Path, Path]) -> None:
    db, out = run_out
    car = query("SELECT * FROM car WHERE event_id = 'amd-openai-2025-10-06:AMD' AND \"window\" = '[0,0]'", db)
    assert car["car"][0] == pytest.approx(0.23139, abs=5e-5)
    assert car["t"][0] > 5
    n = query("SELECT count(*) AS n FROM abnormal_returns", db)["n"][0]
    assert n == 40 * 21  # 40 firm-events (same-day deal rows collapsed, overlaps dropped) x 21 days (-10..+10)
    for name in ("flow_network", "car_path", "caar", "forest_event_day", "timeline", "size_vs_car"):
        for fmt in ("pdf", "svg", "png"):
            assert (out / "figures" / f"{name}.{fmt}").stat().st_size > 1000
    # the per-event appendix is a longtable (its header repeats on every page) followed by the list of
    # firm-events not estimated; the main table is one tabular
    assert (out / "tables" / "event_study_car.tex").read_text().count(r"\begin{longtable}") == 2
    assert (out / "tables" / "main_results.tex").read_text().count(r"\toprule") == 1
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "No deal row has CoreWeave paying Nvidia" in page  # the article's circle the data cannot show
    # The research sections (issues 14, 15) and the headline's dollar box, read from the written table.
    assert "<h2>Dollar value moved</h2>" in page and "<h2>Inference for clustered events</h2>" in page
    tests = pl.read_csv(out / "tables" / "dollar_tests.csv").filter(
        (pl.col("window") == "[0,0]") & (pl.col("term") == "total_dollar_car")).row(0, named=True)
    head = page.split("<h2>Money flows")[0]
    assert f"US${tests['partial_bn']:+,.1f}bn" in head and f"the {tests['n']} valued firm-events" in head
    assert f"{tests['n_without_value']} firm-event(s) without a market value left out" in head
    for name in ("dollar_movers", "dollar_cumulative"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    # Issue 14's done-when: totals per deal and per cycle in the report, equal to the car view's dollar
    # CARs ([-1,+1]) summed by hand (the Amazon cycle's 2026-02-27 move belongs to two deals, counted once).
    dcar = query("SELECT ticker, t0::VARCHAR AS t0, dollar_car FROM car WHERE \"window\" = '[-1,+1]' "
                 "AND dollar_car IS NOT NULL", db)
    moved = {(r["ticker"], r["t0"]): r["dollar_car"] / 1e9 for r in dcar.iter_rows(named=True)}
    assert "Market value moved per deal, CAR[-1,+1]" in page and "Market value moved per round-trip, CAR[-1,+1]" in page
    by_deal = dict(pl.read_csv(out / "tables" / "dollar_by_deal.csv").select("deal_id", "dollar_bn").iter_rows())
    assert by_deal["openai-orcl-2025-09-10"] == pytest.approx(moved[("ORCL", "2025-09-10")], abs=1e-6)
    assert by_deal["amd-openai-2025-10-06"] == pytest.approx(moved[("AMD", "2025-10-06")], abs=1e-6)
    by_cycle = dict(pl.read_csv(out / "tables" / "dollar_by_cycle.csv").select("cycle", "dollar_bn").iter_rows())
    amazon = moved[("AMZN", "2025-11-03")] + moved[("AMZN", "2026-02-27")]
    assert by_cycle["amazon -> openai -> amazon"] == pytest.approx(amazon, abs=1e-6)
    for value in (by_deal["openai-orcl-2025-09-10"], by_cycle["amazon -> openai -> amazon"]):
        assert f"{value:,.1f}" in page
    app = pl.read_csv(out / "tables" / "event_study_car.csv")
    assert (app["p_holm"].drop_nulls() >= app.filter(pl.col("p_holm").is_not_null())["p"]).all()
    cyc = pl.read_csv(out / "tables" / "cycles.csv")
    row = cyc.filter(pl.col("cycle") == "nvidia -> openai -> oracle -> nvidia").row(0, named=True)
    assert (row["volume_usd"], row["bottleneck"], row["volume_is_firm"]) == (30e9, "nvidia -> openai", True)
    # The carousel over time: the last month end as known today has the flow graph's round-trips; as
    # publicly reported by each month end it is the same web (nothing in the shipped ledger was revealed
    # after its month); the shipped ledger was recorded in one import after every announcement, so the
    # 'as recorded' series is empty: not listed, and the notes say why.
    over = pl.read_csv(out / "tables" / "timeline_carousel.csv").sort("month")
    assert over["n_round_trips__today"][-1] == cyc.height
    assert over["n_round_trips__reported"].to_list() == over["n_round_trips__today"].to_list()
    assert over["committed_bn__reported"][-1] == over["committed_bn__today"][-1] > 1000
    assert not [c for c in over.columns if c.endswith("__recorded")]
    md = (out / "tables" / "timeline_carousel.md").read_text(encoding="utf-8")
    assert "Not listed, as recorded in the ledger by month end: no deal had been recorded" in md


def test_rerun_is_idempotent_and_byte_identical(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    db, out = run_out
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    db2 = tmp_path / "c.duckdb"
    shutil.copy(db, db2)
    out2 = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "carousel", "run", "--db", str(db2), "--out", str(out2)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert re.search(r"ledger events appended\s*│\s*0\s", res.stdout), res.stdout
    assert re.search(r"price rows appended\s*│\s*0\s", res.stdout), res.stdout
    second = {p.relative_to(out2): p.read_bytes() for p in sorted(out2.rglob("*")) if p.is_file()}
    assert first.keys() == second.keys()
    differ = [str(k) for k in first if first[k] != second[k]]
    assert differ == []


@pytest.mark.browser
def test_report_renders_in_headless_chromium(run_out: tuple[Path, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    _, out = run_out
    report = out / "report.html"
    html = report.read_text()
    # self-contained: the sorting/hover script is inlined, nothing is fetched
    assert "http://" not in html.split("<body>")[0] and "<script src" not in html and "src=\"http" not in html
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace(
        "</body>",
        "<script>window.onload=function(){var ok=Array.from(document.images).filter(function(i){"
        "return i.complete&&i.naturalWidth>0}).length;document.body.setAttribute('data-ok',ok);};</script></body>",
    ))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    # six figures, the four-date small multiples, the dollar section's two figures, the run-up figure and
    # the carousel over time
    assert 'data-ok="11"' in dom.stdout, dom.stderr[-500:]
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    img = Image.open(shot).convert("RGB").resize((120, 240))
    assert len(set(img.get_flattened_data())) > 50  # figures and tables, not a blank page


def test_sql_csv_writes_list_columns_as_json(run_out: tuple[Path, Path]) -> None:
    db, _ = run_out
    res = subprocess.run([sys.executable, "-m", "carousel", "sql",
                          "SELECT company_id, tickers FROM companies WHERE company_id = 'alphabet'",
                          "--format", "csv", "--db", str(db)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["company_id,tickers", 'alphabet,"[""GOOGL"", ""GOOG""]"']


def test_report_after_a_yahoo_refresh_keeps_yahoos_prices(tmp_path: Path) -> None:
    """A store filled by Yahoo first (an online machine): `carousel report` must not load the shipped
    snapshot over it, or the snapshot would become the latest version of every shared day."""
    from market.snapshot import read_snapshot
    from market.store import append_batch

    db = tmp_path / "c.duckdb"
    rows = read_snapshot(REPO / "data" / "prices")
    # Yahoo's (revised) value for AMD's event day differs from the snapshot's.
    hit = (pl.col("ticker") == "AMD") & (pl.col("date") == dt.date(2025, 10, 6))
    snap_close = rows.filter(hit)["adj_close"][0]
    yahoo = rows.with_columns(pl.when(hit).then(pl.col("adj_close") * 1.01).otherwise(pl.col("adj_close")).alias("adj_close"))
    with connect(db) as con:
        import_file(con, DEALS)
        append_batch(con, yahoo, source="yahoo", tickers=sorted(set(yahoo["ticker"])),
                     start=yahoo["date"].min(), end=yahoo["date"].max())  # type: ignore[arg-type]
    res = subprocess.run([sys.executable, "-m", "carousel", "report", "--db", str(db), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    batches = query("SELECT source FROM price_batches ORDER BY batch_id", db)["source"].to_list()
    assert batches == ["yahoo"]
    got = query("SELECT adj_close FROM prices WHERE ticker = 'AMD' AND date = DATE '2025-10-06'", db)["adj_close"][0]
    assert got == pytest.approx(snap_close * 1.01, rel=1e-12)
    assert (tmp_path / "o" / "report.html").stat().st_size > 10_000


def test_announcement_sizes_sum_every_row_of_an_announcement(tmp_path: Path) -> None:
    from analysis.study import announcement_sizes

    with connect(tmp_path / "s.duckdb") as con:
        import_file(con, DEALS)
        deals = api.deals(con)
    size = dict(announcement_sizes(deals).iter_rows())
    # Amazon-OpenAI 2026-02-27 is two rows ($50B equity one way, $100B of compute the other): $150B,
    # not whichever row sorts first.
    assert size["amzn-openai-2026-02-27:AMZN"] == pytest.approx(150.0)
    # Microsoft/Nvidia/Anthropic 2025-11-18: $30B + $10B + $5B, for both listed firms.
    assert size["anthropic-msft-2025-11-18:NVDA"] == pytest.approx(45.0)
    assert size["anthropic-msft-2025-11-18:MSFT"] == pytest.approx(45.0)
    # Undisclosed stays null, never 0.
    assert size["msft-openai-2023-01-23:MSFT"] is None


def test_report_uses_the_users_ledger_and_adds_nothing_to_it(tmp_path: Path) -> None:
    """`carousel report` on a user's own ledger: no shipped deals imported behind their back."""
    for name in ("companies.csv", "contracts.csv"):
        shutil.copy(DEALS.parent / name, tmp_path / name)
    header, *rows = DEALS.read_text(encoding="utf-8").splitlines()
    mine = [r for r in rows if r.startswith(("amd-openai-2025-10-06,", "openai-orcl-2025-09-10,"))]
    assert len(mine) == 2
    (tmp_path / "deals.csv").write_text("\n".join([header, *mine]) + "\n", encoding="utf-8")
    db = tmp_path / "c.duckdb"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "carousel", *args, "--db", str(db)],
                              capture_output=True, text=True, timeout=300)

    missing = cli("report", "--out", str(tmp_path / "o0"))
    assert missing.returncode == 4 and "does not exist" in missing.stderr, missing.stderr
    assert cli("market", "load-snapshot").returncode == 0
    empty = cli("report", "--out", str(tmp_path / "o0"))
    assert empty.returncode == 1 and "the ledger has no deals" in empty.stderr, empty.stderr
    assert cli("ledger", "import", str(tmp_path / "deals.csv")).returncode == 0
    before = query("SELECT count(*) AS n FROM ledger_events", db)["n"][0]
    res = cli("report", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert query("SELECT count(*) AS n FROM ledger_events", db)["n"][0] == before
    assert sorted(query("SELECT deal_id FROM deals", db)["deal_id"].to_list()) == [
        "amd-openai-2025-10-06", "openai-orcl-2025-09-10"]
    assert query("SELECT count(*) AS n FROM price_batches", db)["n"][0] == 1
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Deals: 2 active deals" in page
    # Two firm-events cannot support the calendar-time portfolio: the section says why and keeps the views
    # that can be computed (the CAAR tests over the two event days), the run goes on.
    clustered = page.split("<h2>Inference for clustered events</h2>")[1].split("<h2>")[0]
    assert "Calendar-time portfolio not computed: " in clustered and "portfolio days cannot identify" in clustered
    assert "CAAR tests resampling whole date clusters" in clustered and "Not computed on this ledger" not in clustered


def test_stress_flags_partly_undisclosed_edges(flows: pl.DataFrame) -> None:
    # Microsoft->OpenAI is $1bn disclosed plus an undisclosed 2023 tranche: a lower bound, as in the
    # cycles table, so the stress view must not present the $1bn as the whole amount at risk.
    s = network.analyse(flows).stress
    msft = s.filter(failed="microsoft", company="openai").row(0, named=True)
    assert msft["first_order_usd"] == pytest.approx(1e9) and msft["first_order_undisclosed"]
    anth = s.filter(failed="anthropic", company="openai").row(0, named=True)
    assert anth["second_order_via"] == ["microsoft"] and anth["second_order_usd"] == pytest.approx(1e9)
    assert anth["second_order_undisclosed"]
    # a fully disclosed edge stays unflagged
    oracle = s.filter(failed="openai", company="oracle").row(0, named=True)
    assert not oracle["first_order_undisclosed"]


def _flow(deal: str, payer: str, payee: str, amount: float | None, kind: str = "exact", counts: bool = True) -> dict:
    return {"deal_id": deal, "contract_id": deal, "payer": payer, "payee": payee, "amount_usd": amount,
            "amount_kind": "undisclosed" if amount is None else kind, "deal_type": "x",
            "announced_date": dt.date(2025, 1, 1), "counts_toward_total": counts}


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"deal_id": pl.String, "contract_id": pl.String, "payer": pl.String,
                                      "payee": pl.String, "amount_usd": pl.Float64, "amount_kind": pl.String,
                                      "deal_type": pl.String, "announced_date": pl.Date,
                                      "counts_toward_total": pl.Boolean}, orient="row")


def test_multi_party_and_excluded_rows_are_told_apart() -> None:
    """A multi-party row (no attributable amount, counts_toward_total False) beside a disclosed row makes
    the edge partly undisclosed; an edge made only of an excluded report without an amount is not a flow."""
    fa = network.analyse(_frame([
        _flow("a-b", "a", "b", 5e9),
        _flow("jv", "a", "b", None, counts=False), _flow("jv", "c", "b", None, counts=False),  # two payers
        _flow("stall-report", "b", "d", None, counts=False),  # excluded: another report counts
        _flow("d-a", "d", "a", 2e9),
    ]))
    e = {(r["payer"], r["payee"]): r for r in fa.edges.iter_rows(named=True)}
    assert e[("a", "b")]["partly_undisclosed"] and e[("a", "b")]["amount_usd"] == 5e9
    assert e[("c", "b")]["counted"] and e[("c", "b")]["undisclosed"]
    assert not e[("b", "d")]["counted"] and not e[("b", "d")]["undisclosed"]
    assert not fa.graph.has_edge("b", "d") and fa.cycles.height == 0


def test_cycle_flags_follow_the_bottleneck_edge() -> None:
    """A partly undisclosed edge that is not the smallest cannot lower the volume; 'up to' at the
    bottleneck makes the volume a ceiling, not a firm amount; an excluded edge keeps its known amount."""
    fa = network.analyse(_frame([
        _flow("a-b-1", "a", "b", 10e9), _flow("a-b-2", "a", "b", None),  # partly undisclosed, not smallest
        _flow("b-a", "b", "a", 3e9, kind="up_to"),
        _flow("a-c", "a", "c", 1e9), _flow("c-a-1", "c", "a", 4e9), _flow("c-a-2", "c", "a", None),
        _flow("x-y", "x", "y", 7e9, counts=False),
    ]))
    cyc = {r["cycle"]: r for r in fa.cycles.iter_rows(named=True)}
    ab = cyc["a -> b -> a"]
    assert ab["volume_usd"] == 3e9 and ab["bottleneck"] == ["b -> a"]
    assert not ab["volume_is_lower_bound"] and not ab["volume_is_firm"]
    ac = cyc["a -> c -> a"]
    assert ac["volume_usd"] == 1e9 and not ac["volume_is_lower_bound"] and ac["volume_is_firm"]
    e = {(r["payer"], r["payee"]): r for r in fa.edges.iter_rows(named=True)}
    assert e[("x", "y")]["excluded_usd"] == 7e9 and e[("x", "y")]["amount_usd"] is None
    assert not e[("x", "y")]["undisclosed"]


def test_concentration_lists_companies_with_only_undisclosed_flows(flows: pl.DataFrame) -> None:
    fa = network.analyse(flows)
    sh = {r["company"]: r for r in fa.shares.iter_rows(named=True)}
    assert set(sh) == set(fa.graph.nodes)
    # AMD's chips and warrant are undisclosed both ways: listed with zero disclosed share, flagged.
    amd = sh["amd"]
    assert (amd["out_usd"], amd["in_usd"]) == (0.0, 0.0)
    assert (amd["n_undisclosed_out"], amd["n_undisclosed_in"]) == (1, 2)  # AMD->OpenAI; OpenAI, Oracle->AMD
    assert sh["stargate"]["n_undisclosed_in"] == 4
    assert sum(r["in_share"] for r in sh.values()) == pytest.approx(1.0)
    # the article's Oracle -> Nvidia $40B is an FT report: an estimate, so the cycle volume is not firm
    cyc = {r["cycle"]: r for r in fa.cycles.iter_rows(named=True)}
    assert cyc["nvidia -> openai -> oracle -> nvidia"]["volume_is_firm"]  # bottleneck: Nvidia's $30B equity
    assert cyc["amd -> openai -> oracle -> amd"]["volume_upper_bound_usd"] == pytest.approx(300e9)


def test_an_up_to_edge_anywhere_on_the_cycle_makes_the_volume_approximate() -> None:
    """a->b is $10bn exact plus an undisclosed tranche (at least 10), b->a 'up to' $12bn (at most 12, maybe
    5): the minimum of the stated amounts, 10, is neither firm nor a lower bound. With b->a undisclosed
    instead, a->b's partial sum bounds nothing from above."""
    base = [_flow("ab1", "a", "b", 10e9), _flow("ab2", "a", "b", None)]
    fa = network.analyse(_frame([*base, _flow("ba", "b", "a", 12e9, kind="up_to")]))
    (r,) = fa.cycles.iter_rows(named=True)
    assert (r["volume_usd"], r["bottleneck"]) == (10e9, ["a -> b"])
    assert not r["volume_is_firm"] and not r["volume_is_lower_bound"]
    assert "approximate" in fa.summary()
    fa = network.analyse(_frame([*base, _flow("ba", "b", "a", None)]))
    (r,) = fa.cycles.iter_rows(named=True)
    assert r["volume_usd"] is None and r["volume_upper_bound_usd"] is None and r["has_undisclosed"]
    # nothing disclosed at all: shares and HHI are 0, not NaN
    fa = network.analyse(_frame([_flow("x", "a", "b", None), _flow("y", "b", "a", None)]))
    assert (fa.hhi_in, fa.hhi_out) == (0.0, 0.0) and fa.shares["in_share"].to_list() == [0.0, 0.0]


def test_a_multi_party_duplicate_report_is_excluded_not_undisclosed() -> None:
    """With the ledger's duplicate_report mark, a multi-party deal that contracts.csv excludes (another
    report counts) is no flow, while a multi-party deal that counts stays an undisclosed committed edge."""
    rows = [
        {**_flow("jv-report", "a", "b", None, counts=False), "duplicate_report": True},
        {**_flow("jv-report", "c", "b", None, counts=False), "duplicate_report": True},
        {**_flow("jv", "d", "e", None, counts=False), "duplicate_report": False},
        {**_flow("jv", "f", "e", None, counts=False), "duplicate_report": False},
        {**_flow("ab", "a", "b", 4e9), "duplicate_report": False},
    ]
    frame = _frame([{k: v for k, v in r.items() if k != "duplicate_report"} for r in rows]).with_columns(
        duplicate_report=pl.Series([r["duplicate_report"] for r in rows]))
    e = {(r["payer"], r["payee"]): r for r in network.analyse(frame).edges.iter_rows(named=True)}
    assert not e[("c", "b")]["counted"] and not e[("c", "b")]["undisclosed"]
    assert not e[("a", "b")]["partly_undisclosed"] and e[("a", "b")]["amount_usd"] == 4e9
    assert e[("d", "e")]["counted"] and e[("d", "e")]["undisclosed"]
    # without the mark (a hand-made frame), a deal with several edges reads as multi-party
    e2 = {(r["payer"], r["payee"]): r for r in network.analyse(frame.drop("duplicate_report")).edges.iter_rows(named=True)}
    assert e2[("c", "b")]["counted"] and e2[("a", "b")]["partly_undisclosed"]


def test_an_all_null_duplicate_report_column_falls_back() -> None:
    frame = _frame([_flow("jv", "a", "b", None, counts=False), _flow("jv", "c", "b", None, counts=False)])
    frame = frame.with_columns(duplicate_report=pl.lit(None))  # dtype Null, as from a hand-made frame
    e = {(r["payer"], r["payee"]): r for r in network.analyse(frame).edges.iter_rows(named=True)}
    assert e[("a", "b")]["counted"] and e[("a", "b")]["undisclosed"]
