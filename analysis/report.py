"""The content of ``out/report.html``: sections built from the study, the flow analysis and provenance.

Why here and not in the shell: what the report says (which tables, which notes, which parameters) is
research output like a table or a figure; the shell only gathers inputs from the database and writes
the file. Pure: every input is passed in (figures as PNG files already written).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis import htmlreport, papertables
from analysis.network import FlowAnalysis
from analysis.results import EventStudyResult
from analysis.spec import StudySpec

TITLE = "carousel: the AI deal carousel, measured"
INTRO = ("Deal announcements among Nvidia, OpenAI, Oracle, AMD, Microsoft, SoftBank, Meta, Google, CoreWeave "
         "and Broadcom, their money flows and the abnormal returns they caused.")


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from, as read from the database by the shell."""

    active_deals: int
    ledger_events: int
    ledger_head: int
    ledger_hash: str
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


def groups_note(spec: StudySpec, tickers: list[str]) -> str:
    """Which listings the study estimated with another model, in one sentence ('' when none)."""
    others = spec.groups(tickers)[1:]
    if not others:
        return ""
    parts = [f"{', '.join(g.tickers)}: {g.label}" for g in others]
    return ("Listings estimated with their own benchmarks (exchanges that close before New York opens price "
            "US news on their next session): " + "; ".join(parts) + ".")


def parameters_table(spec: StudySpec, res: EventStudyResult) -> str:
    rows = [*spec.parameters(), ("Returns", "simple, from adjusted close (close where none)"),
            ("Firm-events estimated / excluded", f"{res.nobs} / {res.excluded.height}")]
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
) -> str:
    """The whole HTML page (deterministic: no timestamp)."""
    sec = htmlreport.Section

    def fig(name: str, cap: str) -> str:
        return htmlreport.figure_html(figures / f"{name}.png", cap)

    note = groups_note(spec, res.panel.keys["ticker"].unique().to_list())
    sections = [
        sec("Money flows and round-trips", html.escape(fa.summary()).replace("\n", "<br>")
            + fig("flow_network", "Committed flows between companies; red edges lie on a round-trip.")
            + (fig("flow_network_history", "The carousel on four dates: the deals in effect on each "
                   "(announced by then and not retracted), drawn in one layout.")
               if (figures / "flow_network_history.png").exists() else "")
            + htmlreport.table_html(fa.cycles.select(
                "cycle", "length", (pl.col("volume_usd") / 1e9).alias("volume_bn"),
                (pl.col("volume_upper_bound_usd") / 1e9).alias("at_most_bn"), pl.col("bottleneck").list.join("; "),
                "has_undisclosed", "volume_is_lower_bound", "volume_is_firm"))
            + htmlreport.table_html(fa.shares)
            + missing_circle_note(fa)),
        sec("Event study", fig("car_path", f"CAR path with 95% band: {focus}")
            + fig("caar", "Cumulative average abnormal return across firm-events")
            + fig("forest_event_day", "Event-day abnormal returns with 95% intervals")
            + fig("timeline", f"Announcements against the running sum of CAR{main_window}")
            + fig("size_vs_car", f"Deal size against CAR{main_window}")
            + htmlreport.table_html(car_table.filter(pl.col("window") == main_window))
            + f"<p class=\"note\">{html.escape(papertables.STAR_NOTE)}</p>"
            + (f"<p class=\"note\">{html.escape(note)}</p>" if note else "")
            + htmlreport.table_html(battery)),
        sec("Parameters and provenance", parameters_table(spec, res) + provenance.to_html()
            + f"<p>{res.nobs} firm-events estimated, {res.excluded.height} excluded:</p>"
            + htmlreport.table_html(res.excluded.select("event_id", "reason"))),
    ]
    return htmlreport.render(TITLE, INTRO, sections)
