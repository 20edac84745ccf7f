"""The content of ``out/report.html``: sections built from the study, the flow analysis and provenance.

Why here and not in the shell: what the report says (which tables, which notes, which parameters) is
research output like a table or a figure; the shell only gathers inputs from the database and writes
the file. Pure: every input is passed in (figures as PNG files already written).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from analysis import htmlreport, papertables
from analysis.network import FlowAnalysis
from analysis.results import EventStudyResult
from analysis.spec import StudySpec
from analysis.summary import Fmt, Summary

TITLE = "carousel: the AI deal carousel, measured"
INTRO = ("Deal announcements among Nvidia, OpenAI, Oracle, AMD, Microsoft, SoftBank, Meta, Google, CoreWeave "
         "and Broadcom, their money flows and the abnormal returns they caused.")


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from, as read from the database by the shell."""

    active_deals: int
    ledger_events: int
    ledger_head: int | None
    ledger_hash: str | None
    price_tickers: int
    price_first: str
    price_last: str
    batches: tuple[tuple[str, int, int, str, str], ...]  # source, batches, rows, first, last
    ff3_end: str

    def to_html(self) -> str:
        fetched = "; ".join(f"{src}: {n} batch(es), {rows:,} rows, {lo} to {hi}"
                            for src, n, rows, lo, hi in self.batches)
        return (
            f"<p>Deals: {self.active_deals} active deals from {self.ledger_events} ledger events (shipped "
            "source: <code>data/events/deals.csv</code>, verified rows with sources; NOTES.md there lists "
            "confounders and duplicate reports, <code>contracts.csv</code> which reports count).</p>"
            f"<p>Prices: {self.price_tickers} tickers, {self.price_first} to {self.price_last}, latest fetch "
            f"per day ({html.escape(fetched)}). The shipped snapshot's PROVENANCE.md lists adjustment quirks "
            "(INTC, TSM, GOOG and SOXX have no adjusted close there and fall back to close, flagged in the "
            "returns view).</p>"
            f"<p>Factors: Fama-French 3 daily, <code>data/factors/ff3_daily.csv</code>, to {self.ff3_end}.</p>"
            f"<p>Ledger anchor: position {self.ledger_head}, hash <code>{self.ledger_hash}</code>.</p>"
        )


def model_label(spec: StudySpec) -> str:
    """``'market model on SPY (9984.T: multifactor on SPY, SPY[-1])'``: the model a caption names."""
    names = {"mean": "mean-adjusted model", "market_adjusted": "market-adjusted returns", "market": "market model",
             "multifactor": "multi-factor model", "ff3": "Fama-French 3-factor model"}
    base = names[spec.resolved_model]
    if spec.resolved_model not in ("mean", "ff3"):
        base += " on " + ", ".join(spec.benchmarks)
    return base


def listing_calendars(res: EventStudyResult) -> dict[str, str] | None:
    """Ticker -> the exchange calendar the study aligned its t0s on (None when the keys lack it)."""
    keys = res.panel.keys
    return dict(keys.select("ticker", "calendar").unique().iter_rows()) if "calendar" in keys.columns else None


def groups_note(spec: StudySpec, tickers: list[str], calendars: Mapping[str, str] | None = None) -> str:
    """Which listings the study estimated with another model, in one sentence ('' when none).
    ``calendars``: ticker -> exchange calendar (``res.panel.keys``' ``calendar``), as the study used."""
    others = spec.groups(tickers, calendars)[1:]
    if not others:
        return ""
    parts = [f"{', '.join(g.tickers)}: {g.label}" for g in others]
    return ("Listings estimated with their own benchmarks (exchanges that close before New York opens price "
            "US news on their next session): " + "; ".join(parts) + ".")


#: How the report names each ``time_source`` (analysis.date_basis).
_SOURCES = {"official": "deal row", "evidence": "timing evidence of the announcement date",
            "first_report": "earlier first report", "none": "none known (unknown-time policy)"}


def time_source_note(res: EventStudyResult) -> str:
    """Where the estimated firm-events' times of day came from, with counts ('' when not recorded): the
    evidence fills a deal row without one, which moves t0 where it places the news after the close."""
    keys = res.panel.keys
    if "time_source" not in keys.columns or keys.height == 0:
        return ""
    counts = dict(keys.group_by("time_source").len().iter_rows())
    parts = [f"{_SOURCES.get(k, k)} {counts[k]}" for k in (*_SOURCES, *sorted(set(counts) - set(_SOURCES)))
             if k in counts]
    return ", ".join(parts) + " (per firm-event: event_study_car.md)"


def parameters_table(spec: StudySpec, res: EventStudyResult) -> str:
    rows = [*spec.parameters(), ("Returns", "simple, from adjusted close (close where none)"),
            ("Firm-events estimated / excluded", f"{res.nobs} / {res.excluded.height}")]
    source = time_source_note(res)
    if source:
        rows.append(("Time of day of t0", source))
    frame = pl.DataFrame({"Parameter": [r[0] for r in rows], "Value": [r[1] for r in rows]})
    return htmlreport.table_html(frame)


def missing_circle_note(fa: FlowAnalysis) -> str:
    """The article's Nvidia <-> CoreWeave circle needs a CoreWeave -> Nvidia edge, which the shipped data
    do not have: say so where a reader looks for it, as long as the data still lack it."""
    g = fa.graph
    if not g.has_edge("nvidia", "coreweave") or g.has_edge("coreweave", "nvidia"):
        return ""
    return ('<p class="note">No deal row has CoreWeave paying Nvidia: CoreWeave buys its GPUs from Nvidia '
            "as an ongoing supply flow with no single announcement (data/events/NOTES.md), so the "
            "Nvidia &lt;-&gt; CoreWeave circle appears only through OpenAI and Oracle.</p>")


def build_report(
    *,
    res: EventStudyResult,
    fa: FlowAnalysis,
    spec: StudySpec,
    provenance: Provenance,
    figures: Path,
    car_table: pl.DataFrame,
    battery: pl.DataFrame,
    focus: str,
    main_window: str,
    company_names: dict[str, str] | None = None,
    dollar: dict[str, pl.DataFrame] | None = None,
    clustered: dict[str, Summary] | None = None,
    skipped: dict[str, str] | None = None,
    robustness: Summary | None = None,
    explain: Summary | None = None,
    activity: dict[str, Summary] | None = None,
    timeline: Summary | None = None,
    flow_layout: dict[str, Any] | None = None,
) -> str:
    """The whole HTML page (deterministic: no timestamp).

    ``flow_layout``: ``analysis.plots._layout(fa.graph)`` when already computed (the main job has a
    figure worker compute it while it goes on); computed here otherwise.

    ``dollar``: :func:`analysis.dollar_outputs.dollar_section`'s frames; ``clustered``:
    :func:`analysis.research_sections.clustered_summaries`; each adds its section when given, and
    ``skipped`` (section -> reason) says why one could not be computed on this ledger."""
    sec = htmlreport.Section

    def fig(name: str, cap: str) -> str:
        return htmlreport.figure_html(figures / f"{name}.png", cap)

    from analysis import research_sections
    from analysis.maintable import main_results, main_summary
    from analysis.summary import Column, Table, fixed, integer, pvalue

    note = groups_note(spec, res.panel.keys["ticker"].unique().to_list(), listing_calendars(res))
    main = main_results(res)
    srt = htmlreport.sortable
    cycles = Table(fa.cycles.select(
        "cycle", "length", "volume_usd", "volume_upper_bound_usd", pl.col("bottleneck").list.join("; "),
        "volume_is_lower_bound", "volume_is_firm"), (
        Column("cycle", "Round-trip"), Column("length", "Companies", integer()),
        Column("volume_usd", "Volume (US$ bn)", Fmt("fixed", 1, True, "", ""), align="right"),
        Column("volume_upper_bound_usd", "At most (US$ bn)", Fmt("fixed", 1, True, "", ""), align="right"),
        Column("bottleneck", "Bottleneck edge"), Column("volume_is_lower_bound", "Lower bound"),
        Column("volume_is_firm", "Firm")))
    cycles = Table(cycles.frame.with_columns(pl.col("volume_usd") / 1e9, pl.col("volume_upper_bound_usd") / 1e9),
                   cycles.columns)
    car_cols = (Column("deal_id", "Deal"), Column("ticker", "Ticker"), Column("t0", "Event day"),
                Column("car_pct", "CAR %", fixed(2), stars="p"), Column("se_pct", "SE %", fixed(2)),
                Column("t", "t", fixed(2)), Column("p", "p", pvalue(4)))
    car_main = car_table.filter(pl.col("window") == main_window)
    names = {}
    if "company" in fa.shares.columns:
        names = {c: c for c in fa.shares["company"].to_list()}
    sections = [
        sec("Headline numbers", "<p>The study in five numbers: money committed between the companies, the "
            "circles it forms, and how the stock market reacted to the announcements on average.</p>"
            + headline_html(res, fa, main, dollar["tests"] if dollar else None)),
        sec("Money flows and round-trips", "<p>Who committed money to whom, and where the money can come "
            "back to its source. Hover an edge for its deals, amount and the stock reaction.</p>"
            + flow_svg(fa, company_names or names, res.car, main_window, pos=flow_layout)
            + html.escape(fa.summary()).replace("\n", "<br>")
            + fig("flow_network", "Committed flows between companies; red edges lie on a round-trip.")
            + (fig("flow_network_history", "The carousel on four dates: the deals in effect on each "
                   "(announced by then and not retracted), drawn in one layout.")
               if (figures / "flow_network_history.png").exists() else "")
            + "<p>Round-trips (click a header to sort):</p>" + srt(Summary.of(cycles).to_html())
            + "<p>Concentration: each company's share of the money paid and received.</p>"
            + srt(htmlreport.table_html(fa.shares))
            + missing_circle_note(fa)),
        sec("Event study", "<p>How each announcement moved the stock prices of the listed companies in it, "
            "beyond what the market did that day (the main table, then each firm-event).</p>"
            + main_summary(main).to_html()
            + (f"<p class=\"note\">{html.escape(note)}</p>" if note else "")
            + fig("car_path", f"CAR path with 95% band: {focus}")
            + fig("caar", "Cumulative average abnormal return across firm-events, with its 95% band")
            + fig("forest_event_day", "Event-day abnormal returns with 95% intervals")
            + fig("timeline", f"Announcements against the running sum of CAR{main_window}")
            + fig("size_vs_car", f"Deal size against CAR{main_window}")
            + f"<p>Every firm-event, CAR{main_window} (click a header to sort):</p>"
            + srt(Summary.of(Table(car_main, car_cols), notes=[papertables.STAR_NOTE]).to_html())
            + "<p>The test battery for the window, day by day:</p>" + srt(htmlreport.table_html(battery))),
        *([sec("Dollar value moved", research_sections.dollar_html(dollar, figures))] if dollar else
          [sec("Dollar value moved", research_sections.skipped_html(skipped["dollar"]))]
          if skipped and "dollar" in skipped else []),
        *([sec("Inference for clustered events", research_sections.clustered_html(clustered))] if clustered else
          [sec("Inference for clustered events", research_sections.skipped_html(skipped["clustered"]))]
          if skipped and "clustered" in skipped else []),
        *([sec("What explains the reactions", research_sections.explain_html(explain))] if explain else
          [sec("What explains the reactions", research_sections.skipped_html(skipped["explain"]))]
          if skipped and "explain" in skipped else []),
        *([sec("The carousel over time", research_sections.timeline_html(timeline, figures))]
          if timeline else []),
        *([sec("Run-up, volume and volatility", research_sections.activity_html(activity, figures))]
          if activity else [sec("Run-up, volume and volatility", research_sections.skipped_html(skipped["activity"]))]
          if skipped and "activity" in skipped else []),
        *([sec("Robustness: the choice of event day", "<p>The main results re-estimated under each rule for "
               "the event day: read down a window's eight rows; a CAAR that keeps its sign and size across them "
               "does not hinge on when the news is dated.</p>" + robustness.to_html())] if robustness else []),
        sec("Parameters and provenance", "<p>What was estimated and from which data, so every number can be "
            "reproduced.</p>" + parameters_table(spec, res) + provenance.to_html()
            + f"<p>{res.nobs:,} firm-events estimated, {res.excluded.height:,} excluded:</p>"
            + htmlreport.table_html(res.excluded.select("event_id", "reason"))),
        sec("Glossary", glossary_html()),
    ]
    return htmlreport.render(TITLE, INTRO, sections)


# ---------------------------------------------------------------------------------------- reading aids

GLOSSARY = {
    "AR": "abnormal return: the day's return minus the return the normal-return model predicts",
    "CAR": "cumulative abnormal return of one firm-event over an event window, e.g. [-1,+1] = the trading "
           "day before to the day after the announcement",
    "CAAR": "cumulative average abnormal return: the mean CAR over the firm-events",
    "Firm-event": "one listed company's stock around one announcement (several deal rows announced together "
                  "are one firm-event)",
    "Round-trip": "a cycle of committed money flows that returns to where it started; its volume is the "
                  "smallest (bottleneck) edge",
    "HHI": "Herfindahl-Hirschman index of concentration: the sum of squared shares (1 = one company)",
    "p": "two-sided p-value; stars: * p<0.10, ** p<0.05, *** p<0.01",
}


def glossary_html() -> str:
    return '<dl class="glossary">' + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in GLOSSARY.items()) + "</dl>"


def _bn(v: float | None) -> str:
    return "undisclosed" if v is None else f"US${v / 1e9:,.1f}bn"


def headline_html(res: EventStudyResult, fa: FlowAnalysis, main: pl.DataFrame,
                  dollar_tests: pl.DataFrame | None = None) -> str:
    """The first screen: committed flows, round-trips, CAAR per window with stars, largest reaction, and
    (with ``dollar_tests``) the total dollar CAR of the event day with its completeness caveat."""
    from analysis.research_sections import dollar_headline
    from analysis.summary import stars

    boxes = [(_bn(fa.total_usd), "committed, disclosed flows (each contract once)"),
             (f"{fa.cycles.height}", "round-trips in the flow graph")]
    for r in main.iter_rows(named=True):
        if r["caar"] is not None:
            boxes.append((f"{100 * r['caar']:+.2f}%{stars(r['cross_sectional_t_p'])}",
                          f"CAAR {r['window']}, N = {r['n']:,} (p = {r['cross_sectional_t_p']:.3f})"))
    top = res.car.drop_nulls("t").sort("t", descending=True).head(1)
    if top.height:
        r = top.row(0, named=True)
        boxes.append((f"{100 * r['car']:+.1f}%", f"largest reaction: {r['ticker']} {r['window']}, "
                      f"{r['deal_id']} (t = {r['t']:.1f})"))
    moved = dollar_headline(dollar_tests) if dollar_tests is not None else None
    if moved:
        boxes.append(moved)
    return '<div class="headline">' + "".join(
        f"<div><b>{html.escape(v)}</b><span>{html.escape(t)}</span></div>" for v, t in boxes) + "</div>"


def flow_svg(fa: FlowAnalysis, names: dict[str, str], car: pl.DataFrame, window: str,
             pos: dict[str, Any] | None = None) -> str:
    """The flow graph as inline SVG: hovering an edge shows its deals, amount and the CARs of their
    listed counterparties (``car``: the study's CAR frame). Same layout as the paper figure (``pos``:
    ``analysis.plots._layout(fa.graph)`` when already computed)."""
    g = fa.graph
    if g.number_of_nodes() == 0:
        return ""
    if pos is None:
        from analysis.plots import _layout

        pos = _layout(g)
    on_cycle = {(a, b) for c in fa.cycles["nodes"].to_list() for a, b in zip(c, c[1:] + c[:1], strict=True)}
    amounts = [g.edges[e]["amount"] for e in g.edges if g.edges[e]["amount"] is not None]
    top = max(amounts, default=1.0)
    cars = car.filter(pl.col("window") == window).drop_nulls("car")
    by_deal: dict[str, list[str]] = {}
    for r in cars.iter_rows(named=True):
        by_deal.setdefault(r["deal_id"], []).append(f"{r['ticker']} {100 * r['car']:+.1f}%")
    xy = {n: (float(p[0]) * 400 + 500, float(-p[1]) * 300 + 340) for n, p in pos.items()}
    parts = []
    for a, b in sorted(g.edges):
        e = g.edges[(a, b)]
        (x1, y1), (x2, y2) = xy[a], xy[b]
        cx, cy = (x1 + x2) / 2 + 0.12 * (y2 - y1), (y1 + y2) / 2 - 0.12 * (x2 - x1)
        amt = e["amount"]
        width = 1.5 if amt is None else 1.5 + 8 * (amt / top) ** 0.5
        deals = [str(d) for d in (e.get("deals") or [])]
        reactions = [c for d in deals for c in by_deal.get(d, [])]
        dash = "" if amt is not None else ' stroke-dasharray="5,4"'
        color = "#c0392b" if (a, b) in on_cycle else "#7f8c8d"
        info = (f"{names.get(a, a)} -> {names.get(b, b)}: {_bn(amt)}"
                + (f"; deals: {', '.join(deals)}" if deals else "")
                + (f"; CAR{window}: {', '.join(reactions)}" if reactions else "; no listed counterparty CAR"))
        parts.append(
            f'<path class="edge" d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" fill="none" '
            f'stroke="{color}" stroke-opacity="0.75" stroke-width="{width:.1f}"{dash} '
            f'marker-end="url(#arrow)" data-info="{html.escape(info)}"><title>{html.escape(info)}</title></path>')
    for n, (x, y) in sorted(xy.items()):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="#2c3e50"/>'
                     f'<text x="{x:.1f}" y="{y - 11:.1f}" text-anchor="middle" font-size="12">'
                     f"{html.escape(names.get(n, n))}</text>")
    xs, ys = [p[0] for p in xy.values()], [p[1] for p in xy.values()]
    box = f"{min(xs) - 90:.0f} {min(ys) - 40:.0f} {max(xs) - min(xs) + 180:.0f} {max(ys) - min(ys) + 70:.0f}"
    return (f'<svg class="flows" viewBox="{box}" width="100%" role="img" '
            'aria-label="Interactive money-flow network"><defs><marker id="arrow" viewBox="0 0 10 10" refX="18" '
            'refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
            "</marker></defs>" + "".join(parts) + "</svg>")
