"""The main job, ``carousel run``: ledger -> prices -> event study -> flow graph -> figures, tables, report.

Imperative shell around the pure pieces: every step reads or writes the database or files; the maths
lives in ``analysis``. Re-running is idempotent: the import and the snapshot load append nothing the
second time, and the study tables and output files are rewritten with byte-identical content.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analysis.network import FlowAnalysis
from analysis.report import Provenance
from analysis.results import EventStudyResult
from analysis.spec import DEFAULT_EXPLAIN, DEFAULT_SPEC, ExplainSpec, StudySpec
from carousel.db import connect
from carousel.figure_pool import ALL_FORMATS, FigurePool
from carousel.outfiles import check_destination, check_folder, publish, stage_path, staged
from core.errors import CarouselError, InputError
from core.paths import DATA_DIR, resolve_db

if TYPE_CHECKING:
    from analysis.research_sections import DrawFn

FOCUS_EVENT = "amd-openai-2025-10-06:AMD"


@dataclass
class RunSummary:
    db: Path
    out: Path
    events_appended: int = 0
    deals_corrected: int = 0
    retracted_changed: int = 0
    #: shipped timing rows not applied because the user's record of the deal stands: (deal_id, why)
    timing_kept: tuple[tuple[str, str], ...] = ()
    price_rows_appended: int = 0
    firm_events: int = 0
    excluded: int = 0
    cycles: int = 0
    files: list[Path] = field(default_factory=list)
    highlights: list[dict[str, Any]] = field(default_factory=list)


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


@dataclass(frozen=True)
class Job:
    """What one ``carousel run`` / ``carousel report`` does: the steps' common, read-only input."""

    db: Path
    out: Path
    spec: StudySpec
    online: bool = False
    load_inputs: bool = True
    #: the second stage (``[explain]`` of carousel.toml)
    explain: ExplainSpec = DEFAULT_EXPLAIN

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @property
    def tables(self) -> Path:
        return self.out / "tables"


@dataclass(frozen=True)
class Inputs:
    """The ledger and market data the analysis steps read (step ``read inputs``)."""

    deals: pl.DataFrame
    flows: pl.DataFrame
    companies: pl.DataFrame
    returns: pl.DataFrame
    provenance: Provenance
    #: (date, flows of the deals in effect on it) at four dates, for the small multiples
    flow_history: tuple[tuple[str, pl.DataFrame], ...] = ()


@dataclass(frozen=True)
class Outputs:
    """What the figure and table steps hand to the report."""

    focus: str
    car_table: pl.DataFrame
    battery: pl.DataFrame


# ---------------------------------------------------------------------------------------- steps
# Each step takes the job, the one connection and the earlier steps' typed outputs; only the first two
# and the study's persistence write to the database.


def import_ledger(job: Job, con: duckdb.DuckDBPyConnection, summary: RunSummary) -> None:
    """The shipped deals into the ledger (idempotent). A shipped row that changed since it was last
    imported from this file is recorded as a correction; a user's own corrections (by hand, or by an
    import of another file with --record-changes) are not the shipped file's and are never reverted."""
    from ledger.load import import_file
    from ledger.timing import SHIPPED

    rep = import_file(con, DATA_DIR / "events" / "deals.csv", record_changes=True, origin=SHIPPED)
    # The timing evidence of the shipped deals (beside, never over, their official announced times).
    # As 'shipped': a deal whose evidence in effect is the user's, or whose announced_date the user changed,
    # keeps the user's record and is listed (ledger.timing.plan_timing), never an error that stops the run.
    timing = import_file(con, DATA_DIR / "events" / "timing_evidence.csv", origin=SHIPPED)
    summary.events_appended = rep.appended + timing.appended
    summary.timing_kept = timing.kept
    summary.deals_corrected = len(rep.corrected)
    summary.retracted_changed = len(rep.retracted_changed)


def load_prices(job: Job, con: duckdb.DuckDBPyConnection, summary: RunSummary, console: Console) -> None:
    """The shipped snapshot (never over fetched prices, see market.snapshot), then Yahoo if --online."""
    from market.snapshot import load_snapshot

    summary.price_rows_appended = load_snapshot(con).appended_rows
    # Shipped share counts (market values for the dollar CARs): own transaction, idempotent.
    from market.shares_store import load_shares_snapshot

    load_shares_snapshot(con)
    if not job.online:
        return
    from carousel.universe import exchanges, universe
    from market.refresh import refresh, refresh_lock
    from market.sources import YahooSource

    with refresh_lock(job.db):
        wanted, _ = universe(con)
        rep = refresh(con, YahooSource(), wanted, exchanges=exchanges(con))
    if rep.batch is not None:
        summary.price_rows_appended += rep.batch.appended_rows
    if rep.failed:
        console.print(f"[yellow]refresh failed for {len(rep.failed)} ticker(s): "
                      f"{', '.join(sorted(rep.failed))}; their stored prices are used[/]")


def read_inputs(job: Job, con: duckdb.DuckDBPyConnection) -> Inputs:
    """Deals, flows, companies, returns and provenance, or CarouselError when there is nothing to study."""
    from analysis.factors import load_ff3
    from analysis.study import load_inputs
    from ledger import api as ledger_api
    from ledger import log as ledger_log

    deals, returns = load_inputs(con, job.spec.extra_tickers())
    if deals.height == 0:
        raise CarouselError(f"{job.db}: the ledger has no deals; run `carousel ledger import FILE` "
                            "(or `carousel run` for the shipped data) first")
    if returns.height == 0:
        raise CarouselError(f"{job.db}: no prices stored; run `carousel market load-snapshot` or "
                            "`carousel refresh` first")
    n_events, head, head_hash = ledger_log.head_summary(con)
    batches = con.execute(
        "SELECT source, count(*), sum(row_count), min(start), max(\"end\") FROM price_batches "
        "WHERE row_count > 0 GROUP BY source ORDER BY source").fetchall()
    n_tickers, first, last = con.execute(
        "SELECT count(DISTINCT ticker), min(date), max(date) FROM prices").fetchall()[0]
    prov = Provenance(
        active_deals=deals.height, ledger_events=n_events, ledger_head=head, ledger_hash=head_hash,
        price_tickers=n_tickers, price_first=str(first), price_last=str(last),
        batches=tuple((str(a), int(b), int(c), str(d), str(e)) for a, b, c, d, e in batches),
        ff3_end=str(load_ff3()["date"].max()),
    )
    return Inputs(deals=deals, flows=ledger_api.flows(con), companies=ledger_api.companies(con),
                  returns=returns, provenance=prov, flow_history=flow_history(con, deals))


def flow_history(con: duckdb.DuckDBPyConnection, deals: pl.DataFrame) -> tuple[tuple[str, pl.DataFrame], ...]:
    """The flows in effect on four dates: the quarter-quantiles of the announcement dates (the last
    is the latest announcement). Valid time (``in_effect_on``), not transaction time: in a database
    built from the shipped file every event was recorded on the same day, so ``as_known_at`` would
    draw one picture four times."""
    from ledger import api as ledger_api

    dates = deals["announced_date"].drop_nulls().sort()
    if dates.len() == 0:
        return ()
    picks = sorted({dates[min(dates.len() - 1, int(q * (dates.len() - 1)))] for q in (0.25, 0.5, 0.75, 1.0)})
    return tuple((str(d), ledger_api.flows(con, in_effect_on=d)) for d in picks)


def estimate(job: Job, inputs: Inputs) -> EventStudyResult:
    from analysis.study import run_spec

    return run_spec(inputs.deals, inputs.returns, job.spec)


def study_params(spec: StudySpec) -> dict[str, Any]:
    """The specification the stored results came from: stamped on them, so `carousel verify` can name
    results that no longer match (analysis.store.verify_study)."""
    return {k: [list(w) for w in v] if k == "windows" else v for k, v in dataclasses.asdict(spec).items()}


def dollar_values(con: duckdb.DuckDBPyConnection, res: EventStudyResult, returns: pl.DataFrame) -> pl.DataFrame:
    """The CAR frame with its dollar columns (read only): the report's dollar section and the stored
    ``car`` view carry the same numbers; plus the estimation-window dollar SE for the dollar tests."""
    from analysis.dollar_columns import study_dollars_with_estimation_se

    return study_dollars_with_estimation_se(con, res, returns)


def persist(con: duckdb.DuckDBPyConnection, res: EventStudyResult, dollars: pl.DataFrame,
            spec: StudySpec) -> None:
    """The study into the ``abnormal_returns`` and ``car`` views (replaced atomically) with its stamp.

    Called last, after the outputs are in place: a job that fails while writing them (a full disk)
    leaves the stored results of the previous run, matching the outputs still on disk."""
    from analysis.store import persist_study

    persist_study(con, res, res.panel.keys.select("event_id", "deal_id", "ticker", "t0"), dollars,
                  params=study_params(spec))


@dataclass(frozen=True)
class Research:
    """The research sections' content handed to the report: the dollar frames and the clustered views."""

    dollar: dict[str, pl.DataFrame] | None
    clustered: dict[str, Any] | None
    #: why a section could not be computed on this ledger (e.g. too few firm-events): section -> reason
    skipped: dict[str, str] = field(default_factory=dict)
    #: the main results under each t0 policy and date basis (analysis.robustness)
    robustness: Any = None
    #: the second stage (analysis.explain) as a Summary
    explain: Any = None
    #: run-up, abnormal volume, variance ratio (research_sections.activity_summaries)
    activity: Any = None
    #: the carousel over time (research_sections.timeline_summary)
    timeline: Any = None


def research(job: Job, con: duckdb.DuckDBPyConnection, inputs: Inputs, res: EventStudyResult,
             fa: FlowAnalysis, dollars: pl.DataFrame, draw: DrawFn) -> tuple[Research, list[Path]]:
    """Dollar value moved (issue 14) and inference for clustered events (issue 15): tables and figures."""
    from analysis.clustered import clustered_inference
    from analysis.date_basis import apply_date_basis
    from analysis.dollar_outputs import dollar_frames
    from analysis.events import firm_events
    from analysis.research_sections import (
        RUN_N_BOOT,
        RUN_N_RESAMPLES,
        RUN_SEED,
        clustered_summaries,
        write_dollar_files,
        write_summaries,
    )

    # A small ledger (a user's own two deals) cannot support every test: the section then says why
    # instead of failing the whole run, and writes no file of its own.
    skipped: dict[str, str] = {}
    files: list[Path] = []
    frames: dict[str, pl.DataFrame] | None = None
    clustered: dict[str, Any] | None = None
    # The study's own t0s: its date basis and time-of-day policy (the dollar section's amounts per t0).
    events = firm_events(apply_date_basis(inputs.deals, job.spec.date_basis),
                         unknown_policy=job.spec.unknown_policy)
    try:
        frames = dollar_frames(dollars, inputs.deals, inputs.flows, events=events, cycle_frame=fa.cycles,
                               excluded=res.excluded)
    except InputError as exc:
        skipped["dollar"] = str(exc)
    else:
        files += write_dollar_files(frames, job.tables, job.figures, draw=draw)
    try:
        ci = clustered_inference(res, inputs.returns, tuple((w.start, w.end) for w in job.spec.windows),
                                 n_boot=RUN_N_BOOT, n_resamples=RUN_N_RESAMPLES, seed=RUN_SEED)
    except InputError as exc:
        skipped["clustered"] = str(exc)
    else:
        # each view fails on its own (named in ci.notes); the section goes only when none is computed
        clustered = clustered_summaries(ci) or None
        if clustered is None:
            skipped["clustered"] = " ".join(ci.notes)
        else:
            files += write_summaries(clustered, job.tables, "clustered", longtables=("joint",))
    explained = explain_section(con, job, inputs, res, skipped)
    if explained is not None:
        files += write_summaries({"second_stage": explained}, job.tables, "explain")
    activity = activity_section(con, job, inputs, res, skipped, files, draw)
    over_time = timeline_section(con, job, files, draw)
    from analysis.robustness import event_day_robustness, robustness_summary

    robust = robustness_summary(event_day_robustness(inputs.deals, inputs.returns, job.spec, base=res))
    files += write_summaries({"event_day": robust}, job.tables, "robustness")
    return Research(frames, clustered, skipped, robust, explained, activity, over_time), files


def timeline_section(con: duckdb.DuckDBPyConnection, job: Job, files: list[Path], draw: DrawFn) -> Any:
    """The carousel per month end (analysis.timeline_series): the table and the figure of every vintage
    with data (an empty one is named, not drawn); None for a ledger without announcements."""
    from analysis.research_sections import timeline_summary, write_summaries
    from analysis.timeline_series import timeline, timeline_plot

    frame = timeline(con)
    if frame.height == 0:
        return None
    summary = timeline_summary(frame)
    files += write_summaries({"carousel": summary}, job.tables, "timeline", longtables=("carousel",))
    files += draw(timeline_plot, (frame,), job.figures, "carousel_over_time")
    return summary


def activity_section(con: duckdb.DuckDBPyConnection, job: Job, inputs: Inputs, res: EventStudyResult,
                     skipped: dict[str, str], files: list[Path], draw: DrawFn) -> Any:
    """Run-up ([-10,-1], [-1,-1]) with the Stargate ORCL figure, abnormal volume and the pooled variance
    ratio of [-1,+1] (issue 15 items 4-5); appends the files it writes to ``files``."""
    from analysis.activity_figures import daily_ar_figure, runup_rows
    from analysis.date_basis import apply_date_basis
    from analysis.maintable import main_results
    from analysis.models import benchmark_tickers
    from analysis.research_sections import RUNUP_EVENT, activity_summaries, write_summaries
    from analysis.runup import runup_study
    from analysis.study import load_prices
    from analysis.volatility import variance_ratio
    from analysis.volume import DEFAULT_VOLUME_BENCHMARK, abnormal_volume

    spec = job.spec
    options: dict[str, Any] = {"estimation": spec.estimation, "min_obs": spec.min_obs,
                               "conventions": spec.conventions, "mask_other_events": spec.mask_other_events,
                               "unknown_policy": spec.unknown_policy}
    deals = apply_date_basis(inputs.deals, spec.date_basis)
    try:
        runup = runup_study(deals, inputs.returns, windows=((-10, -1), (-1, -1)), model="market",
                            benchmarks=spec.benchmarks[:1], **options).study
        _, prices = load_prices(con, list(benchmark_tickers((DEFAULT_VOLUME_BENCHMARK,))))
        volume = abnormal_volume(deals, prices, benchmarks=(DEFAULT_VOLUME_BENCHMARK,), windows=spec.windows,
                                 **options)
        # The main study's own abnormal returns over its main window ([-1,+1] by default).
        main = spec.main_window
        ratio = variance_ratio(res.panel, (main.start, main.end))
    except InputError as exc:
        skipped["activity"] = str(exc)
        return None
    summaries = activity_summaries(main_results(runup), main_results(volume), ratio.pooled)
    files += write_summaries(summaries, job.tables, "activity")
    if RUNUP_EVENT in runup.panel.keys["event_id"].to_list():
        title = f"{RUNUP_EVENT}: daily AR ({runup.model.name})"  # activity_figures.runup_figure's
        files += draw(daily_ar_figure, (runup_rows(runup, RUNUP_EVENT), RUNUP_EVENT, title), job.figures,
                      "runup_stargate_orcl")
    return summaries


def explain_section(con: duckdb.DuckDBPyConnection, job: Job, inputs: Inputs, res: EventStudyResult,
                    skipped: dict[str, str]) -> Any:
    """The second stage of ``[explain]`` (default: the README's, WLS, HC3 and two-way clustered) on this
    run's CARs (same study, same t0s), one SE and p per covariance; None (with the reason in
    ``skipped``) when the window is not estimated or the fit is impossible."""
    from analysis.explain import explain, explain_frame, study_features
    from analysis.research_sections import explain_summary

    x = job.explain
    if x.window not in job.spec.windows:
        skipped["explain"] = f"the window {x.window.label} is not among the study's windows"
        return None
    feats = study_features(con, inputs.deals, job.spec)
    try:
        frame = explain_frame(res, feats, x.window)
        # The bootstrap (if asked) belongs to the first covariance: its clusters, its table column.
        fits = [explain(frame, x.formula, weights=x.weights, cov=c, bootstrap=x.bootstrap if i == 0 else 0,
                        boot_weights=x.boot_weights, seed=x.seed, window=x.window.label)
                for i, c in enumerate(x.covariance)]
    except InputError as exc:
        skipped["explain"] = str(exc)
        return None
    return explain_summary([f.to_frame() for f in fits], fits[0].nobs, x)


def make_figures(job: Job, inputs: Inputs, res: EventStudyResult, fa: FlowAnalysis,
                 draw: DrawFn, flow_layout: Callable[[], dict[str, Any]] | None = None) -> tuple[str, list[Path]]:
    """Every figure of the study and the flow graph, drawn and written by ``draw`` (in the job's
    formats; a figure worker builds it from the data computed here); returns the CAR path's
    firm-event and the files. ``flow_layout`` gives the flow graph's layout (a worker computes it for
    the report): the network figure, submitted last so that it is ready, draws with it."""
    from analysis import plots
    from analysis.report import model_label
    from analysis.study import announcement_sizes

    figs, spec = job.figures, job.spec
    names = dict(zip(inputs.companies["company_id"], inputs.companies["name"], strict=True))
    # The history first: its layout takes longest to draw.
    history = []
    if inputs.flow_history:
        history = draw(plots.flow_history_figure, (inputs.flow_history, names), figs, "flow_network_history")
    made: list[Path] = []
    keys = res.panel.keys["event_id"].to_list()
    focus = FOCUS_EVENT if FOCUS_EVENT in keys else keys[0]
    start = min(-5, *(w.start for w in spec.windows))
    end = max(10, *(w.end for w in spec.windows))
    path_df = plots.car_path(res.panel, keys.index(focus), start, end)
    made += draw(plots.car_path_figure, (path_df, f"CAR, {focus} ({model_label(spec)})"), figs, "car_path")
    made += draw(plots.caar_figure, (plots.caar_path(res.panel, start, end),), figs, "caar")
    made += draw(plots.forest_figure, (res.car.filter(window=spec.day_window.label),), figs, "forest_event_day")
    main = spec.main_window.label
    car1 = res.car.filter(window=main)
    made += draw(plots.timeline_figure, (car1, main), figs, "timeline")
    sizes = car1.join(announcement_sizes(inputs.deals, spec), on="event_id", how="left")
    made += draw(plots.size_figure, (sizes, main, car1.height), figs, "size_vs_car")
    network = draw(plots.network_figure, (fa, names, flow_layout() if flow_layout else None), figs, "flow_network")
    return focus, network + made + history


def make_tables(job: Job, res: EventStudyResult, fa: FlowAnalysis) -> tuple[pl.DataFrame, pl.DataFrame, list[Path]]:
    """The paper tables (CAR table, test battery, cycles, concentration, stress) under out/tables."""
    from analysis import papertables
    from analysis.maintable import write_main
    from analysis.report import groups_note, listing_calendars, model_label

    tabs, spec = job.tables, job.spec
    t = papertables.car_table(res.car)
    caption = (f"Cumulative abnormal returns around AI deal announcements ({model_label(spec)}, "
               f"estimation window {spec.estimation[0]} to {spec.estimation[1]})")
    note = groups_note(spec, res.panel.keys["ticker"].unique().to_list(), listing_calendars(res))
    files = write_main(res, tabs, caption, header=(note,) if note else ())
    main = spec.main_window
    battery = res.tests(main).to_frame()
    name = f"tests_window_{_slug(main.start)}_{_slug(main.end)}.csv"
    battery.write_csv(tabs / name, float_precision=6)
    fa.cycles.with_columns(pl.col("nodes").list.join(" "), pl.col("bottleneck").list.join("; ")).write_csv(
        tabs / "cycles.csv")
    fa.shares.write_csv(tabs / "concentration.csv", float_precision=6)
    fa.stress.with_columns(pl.col("second_order_via").list.join(" ")).write_csv(tabs / "stress.csv")
    files += [tabs / name, tabs / "cycles.csv", tabs / "concentration.csv", tabs / "stress.csv"]
    return t, battery, files


def _slug(day: int) -> str:
    return f"m{-day}" if day < 0 else f"p{day}" if day > 0 else "0"


def write_report(job: Job, inputs: Inputs, res: EventStudyResult, fa: FlowAnalysis, o: Outputs,
                 extra: Research | None = None, flow_layout: dict[str, Any] | None = None) -> Path:
    from analysis.report import build_report

    page = build_report(res=res, fa=fa, spec=job.spec, provenance=inputs.provenance, figures=job.figures,
                        car_table=o.car_table, battery=o.battery, focus=o.focus,
                        dollar=extra.dollar if extra else None,
                        clustered=extra.clustered if extra else None,
                        skipped=extra.skipped if extra else None,
                        robustness=extra.robustness if extra else None,
                        explain=extra.explain if extra else None,
                        activity=extra.activity if extra else None,
                        timeline=extra.timeline if extra else None,
                        flow_layout=flow_layout,
                        main_window=job.spec.main_window.label,
                        company_names=dict(zip(inputs.companies["company_id"], inputs.companies["name"], strict=True)))
    path = job.out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def run(
    db: Path | None = None,
    out: Path = Path("out"),
    *,
    online: bool = False,
    spec: StudySpec = DEFAULT_SPEC,
    explain: ExplainSpec = DEFAULT_EXPLAIN,
    load_inputs: bool = True,
    console: Console | None = None,
    progress: bool = True,
    formats: tuple[str, ...] = ALL_FORMATS,
    jobs: int = 0,
) -> RunSummary:
    """The main job: the named steps below, in order, on one database connection.

    ``carousel report`` (``load_inputs=False``) works on the database as it is: importing the shipped
    deals into a user's own ledger would be permanent (the log is append-only), and the snapshot must
    not be loaded behind the user's back either.

    ``formats``: the figure files written (PNG at least: the report embeds it). ``jobs``: worker
    processes that save the figures while the job goes on (carousel.figure_pool); 0 saves them in
    this process. The files are the same bytes either way.
    """
    from analysis import network, plots

    console = console or Console(markup=False)  # deal ids and file names are data, not rich markup
    # Outputs are written to a staging folder under --out and renamed into place once all exist
    # (carousel.outfiles): a failure or a full disk leaves the previous outputs as they were.
    stage = stage_path(out)
    job = Job(db=resolve_db(db), out=stage, spec=spec, online=online, load_inputs=load_inputs, explain=explain)
    summary = RunSummary(db=job.db, out=out)
    # The output folders are checked before any step writes to the database: a bad --out must fail
    # up front, not after the ledger and prices were committed.
    prepare_out(out)
    if not load_inputs and not job.db.exists():
        # `carousel report` reads a user's database and must not create an empty one: the read-only
        # open raises the missing-database error (exit 4).
        connect(job.db, read_only=True).close()
    names = (["ledger import", "prices"] if load_inputs else []) + [
        "read inputs", "event study", "flow graph", "figures", "tables", "research sections", "report"]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, disable=not progress, transient=True) as bar, \
            connect(job.db) as con, staged(stage), FigurePool(formats, jobs) as figures:
        task = bar.add_task("carousel run", total=len(names))

        def step(name: str) -> None:
            bar.update(task, description=f"carousel run: {name}")

        def done() -> None:
            bar.advance(task)

        if load_inputs:
            step("ledger import")
            import_ledger(job, con, summary)
            done()
            step("prices")
            load_prices(job, con, summary, console)
            done()
        step("read inputs")
        inputs = read_inputs(job, con)
        done()
        step("event study")
        res = estimate(job, inputs)
        dollars = dollar_values(con, res, inputs.returns)
        summary.firm_events, summary.excluded = res.nobs, res.excluded.height
        done()
        step("flow graph")
        fa = network.analyse(inputs.flows)
        summary.cycles = fa.cycles.height
        # The report's network layout (the paper figure's Kamada-Kawai, which imports scipy.optimize)
        # is computed by a figure worker meanwhile.
        flow_layout = figures.call(plots._layout, fa.graph)
        done()
        step("figures")
        focus, files = make_figures(job, inputs, res, fa, figures.draw, flow_layout)
        summary.files += files
        done()
        step("tables")
        car_table, battery, files = make_tables(job, res, fa)
        summary.files += files
        done()
        step("research sections")
        extra, files = research(job, con, inputs, res, fa, dollars, figures.draw)
        summary.files += files
        done()
        step("report")
        figures.wait()  # the report embeds the PNGs
        summary.files.append(write_report(job, inputs, res, fa, Outputs(focus, car_table, battery), extra,
                                          flow_layout()))
        top = res.car.filter(pl.col("p") < 0.05).sort("t", descending=True).head(5)
        summary.highlights = top.select("event_id", "window", "car", "t").to_dicts()
        summary.files = publish(stage, out, summary.files)
        persist(con, res, dollars, job.spec)
        done()
    return summary


def print_summary(s: RunSummary, console: Console) -> None:
    t = Table(title="carousel run", show_header=False)
    t.add_row("database", str(s.db))
    t.add_row("ledger events appended", str(s.events_appended))
    if s.deals_corrected:
        t.add_row("deals corrected (shipped rows changed)", str(s.deals_corrected))
    if s.retracted_changed:
        t.add_row("retracted deals left unchanged (shipped rows changed)", str(s.retracted_changed))
    for deal_id, why in s.timing_kept:
        t.add_row(f"shipped timing row not applied: {deal_id}", why)
    t.add_row("price rows appended", str(s.price_rows_appended))
    t.add_row("firm-events estimated / excluded", f"{s.firm_events} / {s.excluded}")
    t.add_row("round-trips in the flow graph", str(s.cycles))
    t.add_row("files written", f"{len(s.files)} under {s.out}")
    t.add_row("report", str(s.out / "report.html"))
    for h in s.highlights:
        t.add_row(f"top: {h['event_id']} {h['window']}", f"CAR {100 * h['car']:.2f}%  t {h['t']:.2f}")
    console.print(t)
