"""The research answers of ``carousel run``'s report: dollar value moved (issue 14) and inference for
clustered events (issue 15), as report sections, table files and the headline's dollar box.

Why a module: the maths live in ``analysis.dollar_outputs`` and ``analysis.clustered``; what the report
says about them (which tables, human column names, the one sentence on how to read them, the resampling
sizes in the notes) is report content, kept apart from ``analysis.report`` so that module stays the page's
frame. Builders are pure (frames and results in, HTML and Summaries out); the two ``write_*`` functions
are the only ones that write files.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from analysis import htmlreport, plots
from analysis.clustered import ClusteredInference
from analysis.dollar_outputs import summaries as dollar_summaries
from analysis.spec import DEFAULT_EXPLAIN, ExplainSpec, parse_cov
from analysis.summary import Column, Fmt, Summary, Table, fixed, integer, percent, pvalue

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``build(*args) -> Figure``: a module-level function of ``analysis`` drawing a figure from its data
#: (a figure worker receives it pickled by name, with the data).
Builder = Callable[..., "Figure"]
#: ``draw(build, args, folder, name) -> paths``: builds ``build(*args)`` and writes it in every format
#: (the main job's is ``carousel.figure_pool.FigurePool.draw``, which hands it to a figure worker).
DrawFn = Callable[[Builder, tuple[Any, ...], Path, str], list[Path]]

#: Resampling sizes of ``carousel run``: about 1 s for the clustered step on the shipped data (2 cores);
#: ``analysis.clustered.clustered_inference`` with its defaults (999 / 9999) is the full-size route.
RUN_N_BOOT = 199
RUN_N_RESAMPLES = 1999
RUN_SEED = 20250122

_BN = 1e9


# ---------------------------------------------------------------------------------------- dollars


def dollar_headline(tests: pl.DataFrame, window: str = "[0,0]") -> tuple[str, str] | None:
    """The headline box of the total dollar CAR of ``window``: (value, caption with its caveat).

    A window with a firm-event without a market value has no total: the box then shows the total over
    the valued firm-events and says how many are left out, never a smaller sum passed off as the total.
    """
    row = tests.filter((pl.col("window") == window) & (pl.col("term") == "total_dollar_car"))
    if row.height == 0:
        return None
    r = row.row(0, named=True)
    value = r["coef_bn"] if r["complete"] else r["partial_bn"]
    if value is None:
        return None
    p = r["p"] if r["complete"] else r["partial_p"]
    caveat = ("all firm-events valued" if r["complete"] else
              f"partial: {r['n_without_value']} firm-event(s) without a market value left out")
    over = f"{r['n']} firm-events" if r["complete"] else f"the {r['n']} valued firm-events"
    return (f"US${value:+,.1f}bn", f"market value moved, total dollar CAR{window} over {over} "
            f"(p = {p:.3f}; {caveat}; firm-events taken as independent)")


def dollar_html(frames: dict[str, pl.DataFrame], figures: Path) -> str:
    """The report section: what the dollar CARs are, the tables, the two figures."""
    s = dollar_summaries(frames)
    parts = [
        "<p>How much market value the announcements created or destroyed: each firm-event's CAR times its "
        "market value on the day before the window, in US$ bn. Read the totals with their SE: a total whose "
        "|z| is below 2 is within the noise; an incomplete window shows the valued firm-events only.</p>",
        s["tests"].to_html(),
        _fig(figures, "dollar_cumulative", "Running total of dollar CARs by announcement day, with its 95% band"),
        s["movers"].to_html(),
        _fig(figures, "dollar_movers", "Largest creators and destroyers of market value"),
        htmlreport.sortable(s["by_deal"].to_html()),
        s["by_cycle"].to_html(),
    ]
    return "".join(parts)


def skipped_html(reason: str) -> str:
    """A section that could not be computed on this ledger, with the reason the analysis gave."""
    return f'<p class="note">Not computed on this ledger: {html.escape(reason)}</p>'


def _fig(figures: Path, name: str, caption: str) -> str:
    png = figures / f"{name}.png"
    return htmlreport.figure_html(png, caption) if png.exists() else ""


# ---------------------------------------------------------------------------------------- clustered


def clustered_summaries(ci: ClusteredInference) -> dict[str, Summary]:
    """The three views for reading: joint tests per date cluster, calendar-time portfolio, CAAR resampling.

    Human column names; the notes state the resampling sizes and seed actually used. A view that could
    not be computed on this ledger is left out; the section's notes (``ci.notes``: firm-events whose t0
    is not a benchmark session, views not computed and why) go under the first view shown.
    """
    joint = ci.joint
    if "reason" not in joint.columns:
        joint = joint.with_columns(pl.lit(None, pl.String).alias("reason"))
    for c, dtype in (("tickers", pl.String), ("F", pl.Float64), ("df_num", pl.Int64), ("df_den", pl.Int64),
                     ("p_F", pl.Float64), ("p_boot", pl.Float64)):
        if c not in joint.columns:
            joint = joint.with_columns(pl.lit(None, dtype).alias(c))
    joint = joint.with_columns(pl.col("t0").cast(pl.String), pl.col("tickers").str.replace_all(", ", ","),
                               pl.col("hypothesis").replace_strict(
        {"all_zero": "all zero", "sum_zero": "sum zero", "equal": "equal", "not_estimated": "not estimated"},
        default=pl.col("hypothesis"), return_dtype=pl.String))
    out: dict[str, Callable[[], Summary]] = {
        "joint": lambda: Summary.of(Table(joint, (
            Column("t0", "Event day"), Column("tickers", "Firms"), Column("window", "Window"),
            Column("hypothesis", "Null hypothesis"), Column("F", "F", fixed(2)),
            Column("df_num", "df1", integer()), Column("df_den", "df2", integer()),
            Column("p_F", "p (F)", pvalue(4)), Column("p_boot", "p (boot.)", pvalue(4)),
            Column("reason", "Note"))),
            title="Joint tests of the firms announcing on the same day (MVRM, Binder 1985)",
            notes=["Null hypothesis: all zero, every firm's CAR is zero; sum zero, the CARs sum to zero; "
                   "equal, the CARs are equal. Each firm is fitted as in the CAR tables (its own estimation "
                   "days and model: SPY and the previous session's SPY for a listing that closes before New "
                   "York opens), so the tests are about the CARs shown there. F exact under iid normal errors "
                   "(Hotelling) when the firms share regressors and days, otherwise approximate; the bootstrap "
                   "resamples whole estimation-"
                   f"period days (Hein and Westfall 2004), {ci.n_boot} draws, seed {ci.seed} "
                   "(carousel run's size; the library default is 999)."]),
        "calendar_time": lambda: Summary.of(Table(ci.calendar_time, (
            Column("window", "Window"), Column("alpha", "Alpha (daily AR) %", percent(3)),
            Column("se", "SE %", percent(3)), Column("t", "t", fixed(2)), Column("p", "p", pvalue(4)),
            Column("days", "Days", integer()), Column("firms_per_day", "Firms per day", fixed(2)))),
            title="Calendar-time portfolio (Jaffe 1974; Mitchell and Stafford 2000)",
            notes=["Equal-weighted portfolio of the firms inside their event window each day, regressed on "
                   "SPY; Newey-West standard errors, t(T-k)."]),
        "caar": lambda: Summary.of(Table(ci.caar, (
            Column("window", "Window"), Column("method", "Method"), Column("caar", "CAAR %", percent(2)),
            Column("se", "SE %", percent(2)), Column("t", "t", fixed(2)), Column("p", "p", pvalue(4)),
            Column("n", "N", integer()), Column("clusters", "Date clusters", integer()))),
            title="CAAR tests resampling whole date clusters",
            notes=["bootstrap: bootstrap-t over date clusters; sign_flip: random signs per date cluster "
                   "(exact up to 12 clusters); resamples as run by carousel run, "
                   f"{RUN_N_RESAMPLES} draws, seed {ci.seed}."]),
    }
    frames = {"joint": ci.joint, "calendar_time": ci.calendar_time, "caar": ci.caar}
    shown = {k: build() for k, build in out.items() if frames[k].height}
    first = next((k for k in _CLUSTERED_ORDER if k in shown), None)
    if first is not None and ci.notes:
        shown[first] = replace(shown[first], notes=(*shown[first].notes, *ci.notes))
    return shown


#: the order of the clustered views on the page
_CLUSTERED_ORDER = ("caar", "calendar_time", "joint")


def clustered_html(summaries: dict[str, Summary]) -> str:
    return ("<p>Firms announcing on the same day share their market shocks, so tests that treat their "
            "CARs as independent overstate the evidence. These tests keep each day's firms together: a CAAR "
            "p-value here that is much larger than the main table's says the main result leans on a few "
            "crowded days.</p>"
            + "".join(htmlreport.sortable(summaries[k].to_html()) if k == "joint" else summaries[k].to_html()
                      for k in _CLUSTERED_ORDER if k in summaries))


# ---------------------------------------------------------------------------------------- second stage

#: The second stage the README documents for ``carousel explain`` (window [-1,+1], WLS with 1/se^2).
#: The README's second stage (the default of ``[explain]``).
EXPLAIN_FORMULA = DEFAULT_EXPLAIN.formula
EXPLAIN_WINDOW = DEFAULT_EXPLAIN.window.label


def _cov_name(cov: str) -> tuple[str, str]:
    """(column suffix, label) of a covariance: ``hc3`` -> ('hc3', 'HC3'), ``cluster:date,firm`` ->
    ('cl', 'date, firm'), ``cluster:date`` -> ('cl_date', 'date')."""
    kind, names = parse_cov(cov)
    if kind != "cluster":
        return kind.lower(), kind
    shown = [{"t0": "date", "company": "firm"}.get(n, n) for n in names]
    return ("cl" if shown == ["date", "firm"] else "cl_" + "_".join(shown)), ", ".join(shown)


def explain_summary(fits: list[pl.DataFrame], nobs: int, spec: ExplainSpec) -> Summary:
    """One row per term: the coefficient with one SE and p per covariance of ``spec`` (``fits``:
    ``ExplainResult.to_frame()`` of each, in ``spec.covariance`` order; the coefficients are the same
    fit's), and the first fit's wild cluster bootstrap p when ``spec.bootstrap`` > 0."""
    names = [_cov_name(c) for c in spec.covariance]
    first = names[0][0]
    both = fits[0].select("term", "coef")
    for (suffix, _label), f in zip(names, fits, strict=True):
        both = both.join(f.select("term", pl.col("se").alias(f"se_{suffix}"), pl.col("p").alias(f"p_{suffix}")),
                         on="term", how="left", maintain_order="left")
    cols = [Column("term", "Term"), Column("coef", "Coefficient", fixed(4), stars=f"p_{first}")]
    for suffix, label in names:
        cols += [Column(f"se_{suffix}", f"SE ({label})", fixed(4)), Column(f"p_{suffix}", f"p ({label})", pvalue(4))]
    if spec.bootstrap:
        both = both.join(fits[0].select("term", "boot_p"), on="term", how="left", maintain_order="left")
        cols.append(Column("boot_p", "Bootstrap p", pvalue(4)))
    w = spec.window
    two_way = any(parse_cov(c) == ("cluster", ("t0", "company")) for c in spec.covariance)
    note = ("WLS with weights 1/se^2 of each CAR" if spec.weights == "wls" else "OLS") + (
        "; characteristics as known on the announcement date. "
        f"Stars: the {names[0][1]} p-value (* p<0.10, ** p<0.05, *** p<0.01). ")
    if two_way:
        note += "Two-way clustered by event day and firm (Cameron, Gelbach and Miller 2011). "
    if "C(deal_kind)" in spec.formula.replace(" ", ""):
        note += "C(deal_kind)[T.x]: kind x against chips. "
    note += (f"The same fit as `carousel explain '{spec.formula}' --window={w.start},{w.end} --weights "
             f"{spec.weights} --cov {spec.cov}`" + (f" --bootstrap {spec.bootstrap}" if spec.bootstrap else "")
             + ".")
    notes = [note]
    if spec.bootstrap:
        notes.append(f"Bootstrap p: restricted wild cluster bootstrap, {spec.bootstrap} draws, {spec.boot_weights} "
                     f"weights, seed {spec.seed}, clustered by the first cluster variable of "
                     f"{spec.cov} (by event day when it is not clustered).")
    if two_way:
        notes.append("A blank two-way SE: the two-way variance (date + firm - both) is not positive for that term, "
                     "as happens for a category with a single firm-event.")
    return Summary.of(Table(both, tuple(cols)),
                      title=f"What explains CAR{w.label}: {spec.formula} ({spec.weights.upper()}, N = {nobs})",
                      notes=notes)


def explain_html(s: Summary) -> str:
    """The section's lead: names the window and the characteristics of the fit in the table (the
    ``[explain]`` specification's, read back from the table's title)."""
    title = s.title or (s.tables[0].title if s.tables else "") or ""
    window = title.split(":", 1)[0].removeprefix("What explains CAR") or EXPLAIN_WINDOW
    what = ("the deal's size, whether the firm sits on a round-trip and the kind of deal"
            if f": {EXPLAIN_FORMULA} (" in title else "the characteristics in the table's title")
    n_se = sum(1 for c in s.tables[0].columns if c.name.startswith("se_")) if s.tables else 1
    under = "both standard errors" if n_se == 2 else ("each standard error" if n_se > 2 else "its standard error")
    return (f"<p>Which announcements moved prices more: the CARs of the {html.escape(window)} window regressed on "
            f"{what}. A coefficient is the change in CAR per unit of the term; read its p under {under} "
            "(firm-events of one day or one firm are not independent).</p>" + s.to_html())


# ---------------------------------------------------------------------------------------- activity

RUNUP_EVENT = "stargate-2025-01-21:ORCL"


def activity_summaries(runup: pl.DataFrame, volume: pl.DataFrame, ratio: pl.DataFrame) -> dict[str, Summary]:
    """Run-up, abnormal volume and the pooled variance ratio for reading. ``runup``/``volume``:
    ``analysis.maintable.main_results`` of the run-up and volume studies; ``ratio``:
    ``VarianceRatioResult.pooled``."""
    def caar_table(frame: pl.DataFrame, fmt: Fmt, label: str) -> Table:
        return Table(frame.select("window", "n", "caar", "se", pl.col("cross_sectional_t_p").alias("p")), (
            Column("window", "Window"), Column("n", "N", integer()), Column("caar", label, fmt, stars="p"),
            Column("se", "SE", fmt), Column("p", "p", pvalue(4))))
    return {
        "runup": Summary.of(caar_table(runup, percent(2), "CAAR %"),
                            title="Run-up before the announcement (leaks)",
                            notes=["Same model and estimation window as the main study; a positive pre-event "
                                   "CAAR says prices moved before the news was official. p: cross-sectional "
                                   "t, t(N-1); * p<0.10, ** p<0.05, *** p<0.01."]),
        "volume": Summary.of(caar_table(volume, fixed(3), "CAAV (log volume)"),
                             title="Abnormal trading volume around the announcements",
                             notes=["Market model of log(1 + volume) on the market's log volume; the CAAV is the "
                                    "summed abnormal log volume (x on one day: volume exp(x) times its normal "
                                    "level). p: cross-sectional t, t(N-1)."]),
        "variance_ratio": Summary.of(Table(ratio, (
            Column("window", "Window"), Column("n", "N", integer()),
            Column("mean_ratio", "Mean variance ratio", fixed(2)), Column("chi2", "Chi2", fixed(1)),
            Column("df", "df", integer()), Column("p", "p", pvalue(4)))),
            title="Event-window variance against the estimation period (pooled)",
            notes=["Squared standardised abnormal returns in the window over their estimation-period variance; "
                   "1 = no change. Chi2 pooled over firm-events and days. The GARCH(1,1) route is left out of "
                   "carousel run for speed: carousel study --model garch."]),
    }


def activity_html(s: dict[str, Summary], figures: Path) -> str:
    return ("<p>Did prices move before the news, did trading volume rise, did volatility change? Read each "
            "table's p: a small p in the run-up windows points to a leak; the figure follows Oracle "
            "around the Stargate announcement day by day.</p>"
            + s["runup"].to_html()
            + _fig(figures, "runup_stargate_orcl", f"{RUNUP_EVENT}: daily abnormal returns in the ten trading days "
                   "before t0 (95% bars) and their running sum")
            + s["volume"].to_html() + s["variance_ratio"].to_html())


# ---------------------------------------------------------------------------------------- timeline


def timeline_summary(frame: pl.DataFrame) -> Summary:
    """The carousel per month end in every vintage that has data (``analysis.timeline_series.timeline``'s
    frame); a vintage without any deal is not listed, and the notes say why."""
    from analysis.timeline_series import VINTAGE_LABELS, absent_vintages, same_as_today

    absent = absent_vintages(frame)
    shown = [v for v in ("today", "reported", "recorded") if v not in absent]
    wide = frame.pivot(on="vintage", index="month", values=["committed_usd", "n_round_trips", "openai_share"],
                       separator="__").sort("month")
    display = wide.select(
        pl.col("month").cast(pl.String),
        *((pl.col(f"committed_usd__{v}") / 1e9).alias(f"committed_bn__{v}") for v in shown),
        *(pl.col(f"n_round_trips__{v}") for v in shown),
        pl.col("openai_share__today"))
    cols = (Column("month", "Month end"),
            *(Column(f"committed_bn__{v}", f"US$ bn, {v}", fixed(1, thousands=True)) for v in shown),
            *(Column(f"n_round_trips__{v}", f"Round-trips, {v}", integer()) for v in shown),
            Column("openai_share__today", "OpenAI share", fixed(3)))
    notes = ["US$ bn: committed, disclosed flows (each contract once); OpenAI share: as known today. today: the "
             "deals in effect at the month end as the ledger records them now; reported: as publicly reported "
             "by that month end (each deal from its announcement or an earlier first report; the ledger records "
             "no reported date for amendments and retractions, so they count from their recording); recorded: "
             "as the ledger had recorded them by that month end."]
    notes += [f"{VINTAGE_LABELS[v].capitalize()} equals as known today at every month end: on this ledger later "
              "records revealed nothing about an earlier month." for v in shown if v != "today" and same_as_today(frame, v)]
    notes += [f"Not listed, {VINTAGE_LABELS[v]}: {why}." for v, why in absent.items()]
    title = "The carousel over time: each month end " + ", ".join(VINTAGE_LABELS[v] for v in shown)
    return Summary.of(Table(display, cols), title=title, notes=notes)


def timeline_html(s: Summary, figures: Path) -> str:
    return ("<p>How the web of commitments grew, month by month: money committed (disclosed, each contract "
            "once) and round-trips among the deals in effect at each month end, as known today and as it had "
            "been reported by then. A series with no data is not drawn; the notes under the table say why.</p>"
            + _fig(figures, "carousel_over_time", "Committed flows and round-trips per month end")
            + s.to_html())


# ---------------------------------------------------------------------------------------- files


#: Columns the LaTeX of a table leaves out so it fits an article's text width (the CSV and Markdown keep
#: them): long text columns whose content is summarised in the notes.
TEX_DROP: dict[str, tuple[str, ...]] = {
    "dollar_tests": ("dist", "coef_bn", "n_without_value"),
    "dollar_by_deal": ("ratio_reason", "tickers"),
    "dollar_by_cycle": ("ratio_reason", "missing", "volume_bn", "n"),
    "dollar_movers": ("side", "t0"),
    "clustered_joint": ("F", "df_num", "df_den", "reason"),
    "timeline_carousel": ("openai_share__today",),
}
TEX_NOTES: dict[str, str] = {
    "dollar_tests": "Total: z against N(0,1); mean: t(N-1). The total over all firm-events is in the CSV "
                    "(blank there when a firm-event has no market value).",
    "dollar_by_deal": "Listed parties and the reason a ratio is blank are in the CSV.",
    "dollar_by_cycle": "Round-trips written a>b>c; the number of firm-events, the circulating volume, the "
                       "reason a ratio is blank and the firm-events without a value are in the CSV.",
    "dollar_movers": "Creators first (largest gain at the top), then destroyers; the event days are in "
                     "the CSV.",
    "clustered_joint": "The F statistics, their degrees of freedom and the notes on untested clusters are in "
                       "the CSV.",
    "timeline_carousel": "OpenAI's share per month is in the CSV.",
}


def latex(s: Summary, name: str, *, longtable: bool = False) -> str:
    """``s`` as compact booktabs LaTeX (script size, narrow column gaps, :data:`TEX_DROP` left out)."""
    drop = set(TEX_DROP.get(name, ()))
    tables = tuple(replace(t, frame=_compact(t.frame), columns=tuple(c for c in t.columns if c.name not in drop))
                   for t in s.tables)
    extra = (TEX_NOTES[name],) if name in TEX_NOTES else ()
    narrow = replace(s, tables=tables, notes=(*s.notes, *extra))
    tex = narrow.to_latex(label=f"tab:{name}", longtable=longtable, size="scriptsize")
    gap = "\\setlength{\\tabcolsep}{3pt}"
    return tex.replace("\\scriptsize\n", "\\scriptsize" + gap + "\n", 1)


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """Round-trips as ``a>b>c`` and terms without their ``_dollar_car`` suffix: the page is narrow."""
    if "cycle" in frame.columns:
        frame = frame.with_columns(pl.col("cycle").str.replace_all(" -> ", ">", literal=True))
    if "term" in frame.columns:
        frame = frame.with_columns(pl.col("term").str.replace("_dollar_car", "", literal=True))
    return frame


def write_summaries(summaries: dict[str, Summary], tables: Path, prefix: str,
                    longtables: tuple[str, ...] = ()) -> list[Path]:
    """Each Summary as ``<prefix>_<name>.{csv,md,tex}`` under ``tables``; the paths written.

    ``longtables``: the names whose LaTeX breaks across pages (a float taller than a page does not
    compile cleanly)."""
    out: list[Path] = []
    for name, s in summaries.items():
        base = tables / f"{prefix}_{name}"
        tex = latex(s, f"{prefix}_{name}", longtable=name in longtables)
        for ext, text in (("csv", s.to_csv(float_precision=6)), ("md", s.to_markdown()), ("tex", tex)):
            path = base.with_suffix(f".{ext}")
            path.write_text(text, encoding="utf-8")
            out.append(path)
    return out


def write_dollar_files(frames: dict[str, pl.DataFrame], tables: Path, figure_dir: Path,
                       draw: DrawFn | None = None, window: str | None = None) -> list[Path]:
    """The dollar section's files: ``dollar_<name>.{csv,md,tex}``, ``dollar_cumulative.csv`` and the
    figures of ``analysis.dollar_outputs.FIGURES`` (as ``analysis.dollar_outputs.write_dollar_section``,
    with LaTeX that fits a page). ``draw`` builds and writes a figure (default: in this process; the
    main job's hands it to a worker process); ``window`` is the frames' window (default the section's)."""
    from analysis.dollar_outputs import FIGURES, WINDOW

    out = write_summaries(dollar_summaries(frames), tables, "dollar")
    cum = tables / "dollar_cumulative.csv"
    frames["cumulative"].write_csv(cum, float_precision=6)
    out.append(cum)
    for name, (build, frame) in FIGURES.items():
        args = (frames[frame], window or WINDOW)
        out += draw(build, args, figure_dir, name) if draw is not None else plots.save(build(*args), figure_dir, name)
    return out
