"""Paper figures, in one style, saved as PDF, SVG and PNG that are byte-identical when re-run.

Determinism: the Agg/PDF/SVG backends embed creation dates and random ids unless told otherwise, so every
save strips the date metadata, SVG ids use a fixed hash salt, and layouts are fixed (no random seeds are
needed: the network layout is a circle in sorted node order). The maths behind each figure (CAR paths,
confidence bands) are pure functions over the study's panel, tested separately from the drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import polars as pl

# The maths behind the figures live matplotlib-free (analysis.figure_data), so the main job computes
# them without importing matplotlib; re-exported here for callers.
from analysis.figure_data import caar_path, car_path  # noqa: F401
from analysis.network import FlowAnalysis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Z95 = 1.959963984540054


def save(fig: Figure, folder: Path, name: str, formats: tuple[str, ...] | None = None) -> list[Path]:
    """:func:`analysis.figure_files.save` (every format by default): byte-identical when re-run."""
    from analysis import figure_files

    return figure_files.save(fig, folder, name, figure_files.FORMATS if formats is None else formats)


def _layout(g: nx.DiGraph) -> dict[str, np.ndarray]:
    """Deterministic positions that pull the circle apart: Kamada-Kawai (spring distances from the
    graph's shortest paths) started from the sorted circle, so re-runs give the same picture."""
    nodes = sorted(g.nodes)
    start = nx.circular_layout(nodes)
    if len(nodes) < 3:
        return {n: np.asarray(p) for n, p in start.items()}
    pos = nx.kamada_kawai_layout(g.to_undirected(), pos=start)
    return {n: np.round(np.asarray(pos[n]), 6) for n in nodes}


def _bn(v: float) -> str:
    return f"${v / 1e9:,.0f}bn" if v >= 1e9 else f"${v / 1e9:,.2f}bn"


def _draw_network(ax: Any, g: nx.DiGraph, on_cycle: set[tuple[str, str]], names: dict[str, str],
                  top: float, label_top: int, font: float, node_scale: float,
                  pos: dict[str, np.ndarray] | None = None) -> None:
    pos = pos if pos is not None else _layout(g)
    nodes = sorted(g.nodes)
    for e in sorted(g.edges):
        amt = g.edges[e]["amount"]
        width = 0.6 if amt is None else 0.6 + 4.0 * (amt / top) ** 0.5
        nx.draw_networkx_edges(
            g, pos, edgelist=[e], ax=ax, width=width, arrows=True, arrowsize=8,
            edge_color="#c0392b" if e in on_cycle else "#7f8c8d",
            style="dashed" if amt is None else "solid",
            connectionstyle="arc3,rad=0.12", node_size=500 * node_scale,
        )
    largest = sorted((e for e in g.edges if g.edges[e]["amount"] is not None),
                     key=lambda e: (-g.edges[e]["amount"], e))[:label_top]
    for a, b in largest:
        # The amount sits at the middle of the (slightly bent) edge, offset to its left side.
        pa, pb = pos[a], pos[b]
        mid, d = (pa + pb) / 2, pb - pa
        normal = np.array([-d[1], d[0]]) / (np.hypot(*d) or 1.0)
        at = mid + 0.035 * normal
        ax.text(at[0], at[1], _bn(g.edges[(a, b)]["amount"]), fontsize=font * 0.85, ha="center", va="center",
                color="#2c3e50", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    nx.draw_networkx_nodes(g, pos, nodelist=nodes, node_size=[120 * node_scale] * len(nodes),
                           node_color="#2c3e50", ax=ax)
    centre = np.mean(np.array([pos[n] for n in nodes]), axis=0)
    for n in nodes:
        # Each label outside its node, away from the centre of the picture (where the edges run).
        out = pos[n] - centre
        out = out / (np.hypot(*out) or 1.0)
        at = pos[n] + 0.075 * out
        ax.text(at[0], at[1], names.get(n, n), fontsize=font, ha="left" if out[0] > 0.3 else
                "right" if out[0] < -0.3 else "center", va="bottom" if out[1] > 0 else "top",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_axis_off()
    ax.margins(0.18)


def _on_cycle(fa: FlowAnalysis) -> set[tuple[str, str]]:
    return {(a, b) for c in fa.cycles["nodes"].to_list() for a, b in zip(c, c[1:] + c[:1], strict=True)}


def network_figure(fa: FlowAnalysis, names: dict[str, str] | None = None,
                   pos: dict[str, np.ndarray] | None = None) -> Figure:
    """The money-flow graph: width ~ sqrt(amount), red on a round-trip, dashed when undisclosed; the
    largest amounts are written on their edges; keys for width, colour and dash. ``pos``: the layout
    (:func:`_layout` of ``fa.graph``) when already computed, e.g. for the report's SVG."""
    from matplotlib.lines import Line2D

    from analysis.figure_files import plt, style

    g = fa.graph
    amounts = [g.edges[e]["amount"] for e in g.edges]
    top = max((a for a in amounts if a is not None), default=1.0)
    with style():
        fig, ax = plt.subplots(figsize=(7.0, 6.2))
        _draw_network(ax, g, _on_cycle(fa), names or {}, top, label_top=6, font=6.5, node_scale=1.0, pos=pos)
        keys = [Line2D([], [], color="#c0392b", lw=2, label="on a round-trip"),
                Line2D([], [], color="#7f8c8d", lw=2, label="not on a round-trip"),
                Line2D([], [], color="#7f8c8d", lw=0.6, ls="--", label="amount undisclosed")]
        for v in (1e9, 10e9, 100e9):
            if v <= top:
                keys.append(Line2D([], [], color="#7f8c8d", lw=0.6 + 4.0 * (v / top) ** 0.5,
                                   label=f"{_bn(v)} committed"))
        ax.legend(handles=keys, frameon=False, loc="lower left", fontsize=6, ncol=2,
                  title="edge colour, dash and width (width ~ sqrt of the amount)", title_fontsize=6)
        ax.set_title("Committed money flows between companies")
        fig.tight_layout()
    return fig


def network_history_figure(graphs: list[tuple[str, FlowAnalysis]], names: dict[str, str] | None = None) -> Figure:
    """Small multiples: the flow graph as the ledger had it on each date (same scale in every panel)."""
    from analysis.figure_files import plt, style

    tops = [a for _, fa in graphs for e in fa.graph.edges if (a := fa.graph.edges[e]["amount"]) is not None]
    top = max(tops, default=1.0)
    # One layout for every panel (the last, fullest graph's), so a company stays in its place.
    union = nx.DiGraph()
    for _, fa in graphs:
        union.add_edges_from(fa.graph.edges)
    pos = _layout(union)
    with style():
        fig, axes = plt.subplots(2, 2, figsize=(7.0, 6.4))
        for ax, (label, fa) in zip(axes.ravel(), graphs, strict=False):
            if fa.graph.number_of_edges():
                _draw_network(ax, fa.graph, _on_cycle(fa), names or {}, top, label_top=2, font=5,
                              node_scale=0.5, pos=pos)
            else:
                ax.set_axis_off()
            n_cyc = fa.cycles.height
            ax.set_title(f"{label}: {fa.graph.number_of_edges()} flows, {n_cyc} round-trip"
                         f"{'' if n_cyc == 1 else 's'}", fontsize=7)
        fig.suptitle("The carousel as the ledger had it (deals in effect on each date; red: round-trips)",
                     fontsize=8)
        fig.tight_layout()
    return fig


def flow_history_figure(history: Sequence[tuple[str, pl.DataFrame]], names: dict[str, str] | None = None) -> Figure:
    """:func:`network_history_figure` of the flows in effect on each date (``ledger.api.flows`` frames):
    the graphs are analysed where the figure is drawn (a figure worker of the main job)."""
    from analysis import network

    return network_history_figure([(d, network.analyse(f)) for d, f in history], names)


def car_path_figure(path: pl.DataFrame, title: str) -> Figure:
    from analysis.figure_files import plt, style

    with style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        d = path["rel_day"].to_numpy()
        car = 100 * path["car"].to_numpy()
        se = 100 * path["se"].to_numpy()
        ax.fill_between(d, car - Z95 * se, car + Z95 * se, color="#3498db", alpha=0.25, lw=0, label="95% CI")
        ax.plot(d, car, color="#2c3e50", marker="o", ms=2.5, label="CAR")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        _integer_days(ax)
        ax.set_xlabel("trading days relative to the announcement")
        ax.set_ylabel("cumulative abnormal return (%)")
        ax.set_title(title)
        ax.legend(frameon=False, loc="upper left")
        fig.tight_layout()
    return fig


def _integer_days(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def caar_figure(path: pl.DataFrame) -> Figure:
    """CAAR path (:func:`caar_path`) with its 95% band (t(n-1)); integer day ticks."""
    from scipy import special

    from analysis.figure_files import plt, style

    with style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        a = path.drop_nulls("caar")
        d = a["rel_day"].to_numpy()
        m = 100 * a["caar"].to_numpy()
        n = a["n"].to_numpy()
        half = 100 * a["se"].fill_null(np.nan).to_numpy() * special.stdtrit(np.maximum(n - 1, 1), 0.975)
        ax.fill_between(d, m - half, m + half, color="#3498db", alpha=0.25, lw=0, label="95% CI")
        ax.plot(d, m, color="#2c3e50", marker="o", ms=2.5, label="CAAR")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        _integer_days(ax)
        ax.set_xlabel("trading days relative to the announcement")
        ax.set_ylabel("CAAR (%)")
        ax.set_title(f"Cumulative average abnormal return (N = {int(n.min(initial=0))}-{int(n.max(initial=0))} "
                     "firm-events)")
        ax.legend(frameon=False, loc="upper left")
        fig.tight_layout()
    return fig


def forest_figure(car0: pl.DataFrame) -> Figure:
    """Event-day AR per firm-event with 95% intervals (``car0``: the [0,0] rows of the CAR table)."""
    from analysis.figure_files import plt, style

    d = car0.drop_nulls("car").sort(["t0", "event_id"], descending=[True, True])
    with style():
        fig, ax = plt.subplots(figsize=(5.5, 0.16 * d.height + 1.0))
        y = np.arange(d.height)
        car = 100 * d["car"].to_numpy()
        se = 100 * d["se"].to_numpy()
        sig = d["p"].to_numpy() < 0.05
        ax.errorbar(car, y, xerr=Z95 * se, fmt="none", ecolor="#95a5a6", elinewidth=0.8)
        ax.scatter(car[~sig], y[~sig], s=10, color="#7f8c8d", zorder=3, label="p >= 0.05")
        ax.scatter(car[sig], y[sig], s=12, color="#c0392b", zorder=3, label="p < 0.05")
        ax.axvline(0, color="black", lw=0.6)
        ax.set_yticks(y, [f"{e}" for e in d["event_id"].to_list()], fontsize=5)
        ax.set_xlabel("abnormal return on the event day (%), 95% CI")
        ax.set_title("Event-day abnormal returns per deal and ticker")
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
    return fig


def timeline_figure(car_w: pl.DataFrame, window: str) -> Figure:
    """Announcements over time against the running sum of their CARs, per ticker. The axis starts in
    the year of the fifth announcement, so a few early ones do not push the rest into a corner; the
    early ones still count in the running sums, and the figure says how many there are."""
    import datetime as dt

    from analysis.figure_files import plt, style

    d = car_w.drop_nulls("car").sort(["t0", "event_id"])
    dates = d["t0"].to_list()
    first = dt.date(dates[min(4, len(dates) - 1)].year, 1, 1) if dates else None
    with style():
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        tickers = (
            d.group_by("ticker").len().sort(["len", "ticker"], descending=[True, False]).head(6)["ticker"].to_list()
        )
        for t in sorted(tickers):
            s = d.filter(ticker=t)
            ax.step(s["t0"].to_list(), 100 * np.cumsum(s["car"].to_numpy()), where="post", marker="o", ms=2.5, label=t)
        ax.axhline(0, color="black", lw=0.6)
        if first is not None and dates[0] < first:
            ax.set_xlim(first, max(dates) + dt.timedelta(days=20))  # type: ignore[arg-type]
            early = sum(1 for x in dates if x < first)
            ax.text(0.01, 0.02, f"{early} earlier announcement{'s' if early != 1 else ''} (before {first.year}) "
                    "included in the running sums", transform=ax.transAxes, fontsize=6, color="#555")
        ax.set_ylabel(f"cumulative CAR{window} (%)")
        ax.set_title("Announcements and the abnormal return they brought, by ticker (six most frequent)")
        ax.legend(frameon=False, ncol=3, loc="upper left")
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig


def _place_labels(x: np.ndarray, y: np.ndarray, labels: list[str], ax: Any, font: float) -> None:
    """Label every point without overlaps: each label tries eight positions around its point and
    takes the first whose box (in display units, estimated from the font size) collides with no
    earlier label and no other point. Deterministic; points are taken from the most extreme y."""
    fig = ax.figure
    fig.draw_without_rendering()  # final limits and transforms, without rasterizing the figure
    tr = ax.transData
    pts = tr.transform(np.column_stack([x, y]))
    h = font * fig.dpi / 72 * 1.2
    placed: list[tuple[float, float, float, float]] = []
    offsets = [(4, 2), (4, -h - 2), (-4, 2), (-4, -h - 2), (4, h / 2), (-4, h / 2), (0, h + 2), (0, -2 * h - 2)]
    for i in np.argsort(-np.abs(y), kind="stable"):
        w = len(labels[i]) * font * 0.6 * fig.dpi / 72
        for dx, dy in offsets:
            x0 = pts[i, 0] + (dx if dx >= 0 else dx - w)
            y0 = pts[i, 1] + dy
            box = (x0, y0, x0 + w, y0 + h)
            inside = ax.bbox.x0 <= box[0] and box[2] <= ax.bbox.x1 and ax.bbox.y0 <= box[1] and box[3] <= ax.bbox.y1
            hit = not inside or any(not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3])
                                    for b in placed)
            hit = hit or any(box[0] - 2 < px < box[2] + 2 and box[1] - 2 < py < box[3] + 2
                             for j, (px, py) in enumerate(pts) if j != i)
            if not hit:
                placed.append(box)
                ax.annotate(labels[i], (x[i], y[i]), xytext=(x0 - pts[i, 0], y0 - pts[i, 1]),
                            textcoords="offset pixels", fontsize=font, va="bottom", ha="left", color="#2c3e50")
                break


def size_figure(d: pl.DataFrame, window: str, n_total: int | None = None) -> Figure:
    """Deal size ($bn, log scale) against CAR for firm-events with a disclosed amount; every point
    labelled (ticker and month) without overlaps; the title says how many firm-events lack an amount."""
    from analysis.figure_files import plt, style

    d = d.drop_nulls(["amount_bn", "car"]).filter(pl.col("amount_bn") > 0).sort("event_id")
    total = n_total if n_total is not None else d.height
    with style():
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        x, y = d["amount_bn"].to_numpy(), 100 * d["car"].to_numpy()
        sig = d["p"].to_numpy() < 0.05 if "p" in d.columns else np.zeros(d.height, dtype=bool)
        ax.scatter(x[~sig], y[~sig], s=12, color="#7f8c8d", label="p >= 0.05", zorder=3)
        ax.scatter(x[sig], y[sig], s=14, color="#c0392b", label="p < 0.05", zorder=3)
        ax.set_xscale("log")
        ax.axhline(0, color="black", lw=0.6)
        labels = [f"{r['ticker']} {r['t0']:%b %y}" for r in d.iter_rows(named=True)]
        ax.set_xlabel("announced amount (US$ bn, log scale; all deal rows of the announcement)")
        ax.set_ylabel(f"CAR{window} (%)")
        ax.set_title(f"Deal size and abnormal return: N = {d.height} of {total} firm-events\n"
                     f"({total - d.height} have no disclosed amount or no complete window)")
        ax.legend(frameon=False, loc="lower right")
        fig.tight_layout()
        # After the layout: label positions are checked in the final display coordinates.
        _place_labels(x, y, labels, ax, 4.5)
    return fig
