"""The main job, ``carousel run``: ledger -> prices -> event study -> flow graph -> figures, tables, report.

Imperative shell around the pure pieces: every step reads or writes the database or files; the maths
lives in ``analysis``. Re-running is idempotent: the import and the snapshot load append nothing the
second time, and the study tables and output files are rewritten with byte-identical content.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from carousel.db import connect
from carousel.outfiles import check_destination, check_folder, publish, stage_path, staged
from core.errors import CarouselError, InputError
from core.paths import DATA_DIR, resolve_db

ESTIMATION = (-250, -11)
WINDOWS = ((0, 0), (-1, 1), (-5, 5), (0, 10))
FOCUS_EVENT = "amd-openai-2025-10-06:AMD"


@dataclass
class RunSummary:
    db: Path
    out: Path
    events_appended: int = 0
    deals_corrected: int = 0
    retracted_changed: int = 0
    price_rows_appended: int = 0
    firm_events: int = 0
    excluded: int = 0
    cycles: int = 0
    files: list[Path] = field(default_factory=list)
    highlights: list[dict[str, Any]] = field(default_factory=list)


def announcement_sizes(deals: pl.DataFrame) -> pl.DataFrame:
    """Per firm-event (as the study builds them): the disclosed size of its announcement, in $bn.

    A firm-event stands for every deal row announced with it (two-way deals are two rows; one
    announcement can carry three), so its size is the sum over those rows' contracts, each contract
    once at its largest report; null when no amount is disclosed.
    """
    from analysis.events import collapse_same_day, firm_events

    ev = collapse_same_day(firm_events(deals)).select("event_id", "deal_ids").explode("deal_ids")
    amounts = deals.select("deal_id", "contract_id", pl.col("amount_usd").cast(pl.Float64))
    return (
        ev.join(amounts, left_on="deal_ids", right_on="deal_id", how="left")
        .group_by("event_id", "contract_id")
        .agg(pl.col("amount_usd").max())
        .group_by("event_id")
        .agg((pl.col("amount_usd").sum() / 1e9).alias("amount_bn"), pl.col("amount_usd").count().alias("_n"))
        .with_columns(pl.when(pl.col("_n") > 0).then(pl.col("amount_bn")).alias("amount_bn"))
        .drop("_n")
        .sort("event_id")
    )


def provenance_html(con: duckdb.DuckDBPyConnection, deals: pl.DataFrame) -> str:
    """Where this report's numbers come from, read from the database (not assumed)."""
    from analysis.factors import load_ff3

    n_events, head, head_hash = con.execute(
        "SELECT count(*), max(position), arg_max(hash, position) FROM ledger_log"
    ).fetchall()[0]
    batches = con.execute(
        "SELECT source, count(*), sum(row_count), min(start), max(\"end\") FROM price_batches "
        "WHERE row_count > 0 GROUP BY source ORDER BY source"
    ).fetchall()
    n_tickers, first, last = con.execute("SELECT count(DISTINCT ticker), min(date), max(date) FROM prices").fetchall()[0]
    ff3_end = str(load_ff3()["date"].max())
    fetched = "; ".join(f"{src}: {n} batch(es), {rows:,} rows, {lo} to {hi}" for src, n, rows, lo, hi in batches)
    return (
        f"<p>Deals: {deals.height} active deals from {n_events} ledger events (shipped source: "
        "<code>data/events/deals.csv</code>, verified rows with sources; NOTES.md there lists confounders "
        "and duplicate reports, <code>contracts.csv</code> which reports count).</p>"
        f"<p>Prices: {n_tickers} tickers, {first} to {last}, latest fetch per day ({html.escape(fetched)}). "
        "The shipped snapshot's PROVENANCE.md lists adjustment quirks (INTC, TSM, GOOG and SOXX have no "
        "adjusted close there and fall back to close, flagged in the returns view).</p>"
        f"<p>Factors: Fama-French 3 daily, <code>data/factors/ff3_daily.csv</code>, to {ff3_end}.</p>"
        f"<p>Ledger anchor: position {head}, hash <code>{head_hash}</code>.</p>"
    )


def study_params(res: Any) -> dict[str, Any]:
    """The study's parameters: shown in the report and stamped on the stored results."""
    return {"model": "market model", "benchmark": "SPY", "estimation_window": list(ESTIMATION),
            "event_windows": [list(w) for w in WINDOWS], "min_obs": 120, "returns": "simple, adjusted close (close where none)",
            "method": res.method, "conventions": res.conventions.name,
            # run_study's default: a reader must know how time-less announcements got their t0
            "unknown_time_policy": "same_day (US business day of the date; next Tokyo session for 9984.T)"}


def prepare_out(out: Path) -> None:
    """Create ``out``/figures and ``out``/tables, or InputError naming --out (never an OSError)."""
    for folder in (out, out / "figures", out / "tables"):
        if folder != out:
            check_folder(folder)  # a symlinked figures/ or tables/ would put outputs outside --out
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} exists and is not a folder", file=folder, field="--out")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create output folder {folder}: {exc.strerror or exc}", field="--out"
            ) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"output folder {folder} is not writable", field="--out")
    # A planted symlink (or report.html as a folder) is refused before the job touches the database;
    # carousel.outfiles.publish checks every destination again before renaming.
    check_destination(out / "report.html")
    for folder in (out / "figures", out / "tables"):
        for entry in sorted(folder.iterdir()):
            if entry.is_symlink():
                check_destination(entry)


def run(
    db: Path | None = None,
    out: Path = Path("out"),
    *,
    online: bool = False,
    method: str = "batch",
    load_inputs: bool = True,
    console: Console | None = None,
    progress: bool = True,
) -> RunSummary:
    from analysis import htmlreport, network, papertables, plots
    from analysis.store import persist_study
    from analysis.study import run_study
    from analysis.window import EventWindow
    from ledger import api as ledger_api
    from ledger.load import import_file
    from market import api as market_api
    from market.returns import compute_returns
    from market.snapshot import load_snapshot

    console = console or Console(markup=False)
    path = resolve_db(db)
    summary = RunSummary(db=path, out=out)
    # Outputs are written to a staging folder and renamed into place at the end (carousel.outfiles).
    stage = stage_path(out)
    figs, tabs = stage / "figures", stage / "tables"
    # The output folders are checked before any step writes to the database: a bad --out must fail
    # up front, not after the ledger and prices were committed.
    prepare_out(out)
    steps: list[tuple[str, Callable[[], None]]] = []
    state: dict[str, Any] = {}

    def step_ledger() -> None:
        with connect(path) as con:
            # record_changes: shipped deal data revised by a newer carousel reaches an existing database
            # as corrections (the event-sourced way) instead of stopping the main job with a conflict.
            rep = import_file(con, DATA_DIR / "events" / "deals.csv", record_changes=True)
        summary.events_appended = rep.appended
        summary.deals_corrected = len(rep.corrected)
        summary.retracted_changed = len(rep.retracted_changed)

    def step_prices() -> None:
        # The shipped snapshot seeds the store (and a newer shipped snapshot updates it), but is never
        # loaded over fetched prices: load_snapshot skips, per ticker, every ticker with fetched
        # (non-snapshot) rows, since appended after a Yahoo batch the snapshot would be the latest
        # version of every day they share and hide Yahoo's values in the `prices` view. The other
        # tickers still get the snapshot, so one fetched ticker does not leave the rest without prices.
        with connect(path) as con:
            summary.price_rows_appended = load_snapshot(con).appended_rows
            # Shipped share counts (market values for the dollar CARs): own transaction, idempotent.
            from market.shares_store import load_shares_snapshot

            load_shares_snapshot(con)
        if online:
            from carousel.universe import universe
            from market.refresh import refresh, refresh_lock
            from market.sources import YahooSource

            with refresh_lock(path), connect(path) as con:
                wanted, _ = universe(con)
                rep = refresh(con, YahooSource(), wanted)
            if rep.batch is not None:
                summary.price_rows_appended += rep.batch.appended_rows
            if rep.failed:
                console.print(Text(f"refresh failed for {len(rep.failed)} ticker(s): "
                                   f"{', '.join(sorted(rep.failed))}; their stored prices are used",
                                   style="yellow"))

    def step_study() -> None:
        with connect(path, read_only=True) as con:
            deals = ledger_api.deals(con)
            flows = ledger_api.flows(con)
            companies = ledger_api.companies(con)
            prices = market_api.prices(con)
        if deals.height == 0:
            raise CarouselError(f"{path}: the ledger has no deals; run `carousel ledger import FILE` "
                                "(or `carousel run` for the shipped data) first")
        if prices.height == 0:
            raise CarouselError(f"{path}: no prices stored; run `carousel market load-snapshot` or "
                                "`carousel refresh` first")
        res = run_study(deals, compute_returns(prices), estimation=ESTIMATION, windows=WINDOWS, method=method)
        keys = res.panel.keys.select("event_id", "deal_id", "ticker", "t0")
        with connect(path) as con:
            persist_study(con, res, keys, params=study_params(res))
        state.update(res=res, deals=deals, flows=flows, companies=companies, keys=keys)
        summary.firm_events, summary.excluded = res.nobs, res.excluded.height

    def step_graph() -> None:
        fa = network.analyse(state["flows"])
        state["fa"] = fa
        summary.cycles = fa.cycles.height

    def step_figures() -> None:
        res, fa = state["res"], state["fa"]
        names = dict(zip(state["companies"]["company_id"], state["companies"]["name"], strict=True))
        made = plots.save(plots.network_figure(fa, names), figs, "flow_network")
        keys = res.panel.keys["event_id"].to_list()
        focus = FOCUS_EVENT if FOCUS_EVENT in keys else keys[0]
        path_df = plots.car_path(res.panel, keys.index(focus), -5, 10)
        made += plots.save(plots.car_path_figure(path_df, f"CAR, {focus} (market model)"), figs, "car_path")
        made += plots.save(plots.caar_figure(res.aar), figs, "caar")
        day0, short = EventWindow(0, 0).label, EventWindow(-1, 1).label
        car0 = res.car.filter(window=day0)
        made += plots.save(plots.forest_figure(car0), figs, "forest_event_day")
        car1 = res.car.filter(window=short)
        made += plots.save(plots.timeline_figure(car1, short), figs, "timeline")
        sizes = car1.join(announcement_sizes(state["deals"]), on="event_id", how="left")
        made += plots.save(plots.size_figure(sizes, short), figs, "size_vs_car")
        summary.files += made
        state["focus"] = focus

    def step_tables() -> None:
        res, fa = state["res"], state["fa"]
        t = papertables.car_table(res.car)
        summary.files += papertables.write_all(t, tabs, "event_study_car", "Cumulative abnormal returns around AI deal announcements (market model on SPY, estimation window -250 to -11)")
        battery = res.tests((-1, 1)).to_frame()
        battery.write_csv(tabs / "tests_window_m1_p1.csv", float_precision=6)
        fa.cycles.with_columns(pl.col("nodes").list.join(" "), pl.col("bottleneck").list.join("; ")).write_csv(tabs / "cycles.csv")
        fa.shares.write_csv(tabs / "concentration.csv", float_precision=6)
        fa.stress.with_columns(pl.col("second_order_via").list.join(" ")).write_csv(tabs / "stress.csv")
        summary.files += [tabs / "tests_window_m1_p1.csv", tabs / "cycles.csv", tabs / "concentration.csv", tabs / "stress.csv"]
        state["battery"] = battery
        state["car_table"] = t

    def _missing_circle_note(fa: network.FlowAnalysis) -> str:
        """The article's Nvidia <-> CoreWeave circle needs a CoreWeave -> Nvidia edge, which the shipped data
        do not have: say so where a reader looks for it, as long as the data still lack it."""
        g = fa.graph
        if not g.has_edge("nvidia", "coreweave") or g.has_edge("coreweave", "nvidia"):
            return ""
        return ('<p class="note">No deal row has CoreWeave paying Nvidia: CoreWeave buys its GPUs from Nvidia '
                "as an ongoing supply flow with no single announcement (data/events/NOTES.md), so the "
                "Nvidia &lt;-&gt; CoreWeave circle appears only through OpenAI and Oracle.</p>")

    def step_report() -> None:
        res, fa = state["res"], state["fa"]
        sec = htmlreport.Section
        params = study_params(res)
        with connect(path, read_only=True) as con:
            provenance = provenance_html(con, state["deals"])
        fig = lambda name, cap: htmlreport.figure_html(figs / f"{name}.png", cap)  # noqa: E731
        sections = [
            sec("Money flows and round-trips", html.escape(fa.summary()).replace("\n", "<br>")
                + fig("flow_network", "Committed flows between companies; red edges lie on a round-trip.")
                + htmlreport.table_html(fa.cycles.select("cycle", "length", (pl.col("volume_usd") / 1e9).alias("volume_bn"), (pl.col("volume_upper_bound_usd") / 1e9).alias("at_most_bn"), pl.col("bottleneck").list.join("; "), "has_undisclosed", "volume_is_lower_bound", "volume_is_firm"))
                + htmlreport.table_html(fa.shares)
                + _missing_circle_note(fa)),
            sec("Event study", fig("car_path", f"CAR path with 95% band: {state['focus']}")
                + fig("caar", "Cumulative average abnormal return across firm-events")
                + fig("forest_event_day", "Event-day abnormal returns with 95% intervals")
                + fig("timeline", "Announcements against the running sum of CAR[-1,+1]")
                + fig("size_vs_car", "Deal size against CAR[-1,+1]")
                + htmlreport.table_html(state["car_table"].filter(pl.col("window") == EventWindow(-1, 1).label))
                + f"<p class=\"note\">{html.escape(papertables.STAR_NOTE)}</p>"
                + htmlreport.table_html(state["battery"])),
            sec("Parameters and provenance", f"<pre>{html.escape(json.dumps(params, indent=2))}</pre>" + provenance
                + f"<p>{res.nobs} firm-events estimated, {res.excluded.height} excluded:</p>"
                + htmlreport.table_html(res.excluded.select("event_id", "reason"))),
        ]
        page = htmlreport.render("carousel: the AI deal carousel, measured",
                                 "Deal announcements among Nvidia, OpenAI, Oracle, AMD, Microsoft, SoftBank, Meta, "
                                 "Google, CoreWeave and Broadcom, their money flows and the abnormal returns they caused.",
                                 sections)
        (stage / "report.html").write_text(page, encoding="utf-8")
        summary.files.append(stage / "report.html")
        fa_car = res.car.filter(pl.col("p") < 0.05).sort("t", descending=True).head(5)
        summary.highlights = fa_car.select("event_id", "window", "car", "t").to_dicts()

    # `carousel report` (load_inputs=False) works on the database as it is: importing the shipped deals
    # into a user's own ledger would be permanent (the log is append-only), and the snapshot must not be
    # loaded behind the user's back either.
    steps = ([("ledger import", step_ledger), ("prices", step_prices)] if load_inputs else []) + [
        ("event study", step_study), ("flow graph", step_graph), ("figures", step_figures),
        ("tables", step_tables), ("report", step_report)]
    with staged(stage), Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("carousel run", total=len(steps))
        for name, fn in steps:
            bar.update(task, description=f"carousel run: {name}")
            fn()
            bar.advance(task)
        summary.files = publish(stage, out, summary.files)
    return summary


def print_summary(s: RunSummary, console: Console) -> None:
    t = Table(title="carousel run", show_header=False)
    t.add_row("database", str(s.db))
    t.add_row("ledger events appended", str(s.events_appended))
    if s.deals_corrected:
        t.add_row("deals corrected (shipped rows changed)", str(s.deals_corrected))
    if s.retracted_changed:
        t.add_row("retracted deals left unchanged (shipped rows changed)", str(s.retracted_changed))
    t.add_row("price rows appended", str(s.price_rows_appended))
    t.add_row("firm-events estimated / excluded", f"{s.firm_events} / {s.excluded}")
    t.add_row("round-trips in the flow graph", str(s.cycles))
    t.add_row("files written", f"{len(s.files)} under {s.out}")
    t.add_row("report", str(s.out / "report.html"))
    for h in s.highlights:
        t.add_row(f"top: {h['event_id']} {h['window']}", f"CAR {100 * h['car']:.2f}%  t {h['t']:.2f}")
    console.print(t)
