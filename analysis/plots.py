"""Paper figures, in one style, saved as PDF, SVG and PNG that are byte-identical when re-run.

Determinism: the Agg/PDF/SVG backends embed creation dates and random ids unless told otherwise, so every
save strips the date metadata, SVG ids use a fixed hash salt, and layouts are fixed (no random seeds are
needed: the network layout is a circle in sorted node order). The maths behind each figure (CAR paths,
confidence bands) are pure functions over the study's panel, tested separately from the drawing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.network import FlowAnalysis  # noqa: E402
from analysis.panel import ARPanel  # noqa: E402
from analysis.prediction_error import car_variance_factor  # noqa: E402

STYLE: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["DejaVu Serif"],
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.0,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "standard",
    "svg.hashsalt": "carousel",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "path.simplify": False,
}
FORMATS = ("pdf", "svg", "png")
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "carousel"},
    "svg": {"Date": None, "Creator": "carousel"},
    "png": {"Software": None},
}
Z95 = 1.959963984540054


def save(fig: Figure, folder: Path, name: str) -> list[Path]:
    """Write ``name.{pdf,svg,png}`` without timestamps; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    # The style (svg.hashsalt in particular) must be active when saving, not only when drawing.
    with _style():
        for fmt in FORMATS:
            path = folder / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, metadata=_METADATA[fmt])
            out.append(path)
    plt.close(fig)
    return out


def car_path(panel: ARPanel, row: int, start: int, end: int) -> pl.DataFrame:
    """CAR from ``start`` to each day up to ``end`` for one firm-event, with the exact prediction-error
    standard error (including the cross-day covariance term): Var = sigma^2 (L + s'(X'X)^-1 s)."""
    ev_days = panel.rel_days[~panel.is_est]
    sel = (ev_days >= start) & (ev_days <= end)
    days = ev_days[sel]
    cols = np.flatnonzero(~panel.is_est)[sel]
    ar = panel.ar[row, cols]
    car = np.cumsum(ar)
    x = panel.x_event[row][sel]  # (L, k)
    s = np.cumsum(x, axis=0)  # s_t = sum of regressor rows up to t
    planes = [s[None, :, j] for j in range(s.shape[1])]
    factor = car_variance_factor(panel.xtx_inv[row][None], planes, np.arange(1, len(days) + 1))[0]
    se = panel.sigma[row] * np.sqrt(factor)
    return pl.DataFrame({"rel_day": days.astype(np.int64), "car": car, "se": se})


def _style() -> Any:
    return plt.rc_context(STYLE)  # type: ignore[arg-type]


def network_figure(fa: FlowAnalysis, names: dict[str, str] | None = None) -> Figure:
    g = fa.graph
    names = names or {}
    with _style():
        fig, ax = plt.subplots(figsize=(6.5, 6.0))
        nodes = sorted(g.nodes)
        pos = nx.circular_layout(nodes)
        on_cycle = {
            (a, b)
            for c in fa.cycles["nodes"].to_list()
            for a, b in zip(c, c[1:] + c[:1], strict=True)
        }
        amounts = [g.edges[e]["amount"] for e in g.edges]
        top = max((a for a in amounts if a is not None), default=1.0)
        for e in sorted(g.edges):
            amt = g.edges[e]["amount"]
            width = 0.6 if amt is None else 0.6 + 4.0 * (amt / top) ** 0.5
            nx.draw_networkx_edges(
                g, pos, edgelist=[e], ax=ax, width=width, arrows=True, arrowsize=8,
                edge_color="#c0392b" if e in on_cycle else "#7f8c8d",
                style="dashed" if amt is None else "solid",
                connectionstyle="arc3,rad=0.12", node_size=900,
            )
        inflow = {r["company"]: r["in_usd"] for r in fa.shares.iter_rows(named=True)}
        sizes = [300 + 1500 * (inflow.get(n, 0.0) / max(inflow.values() or [1.0])) ** 0.5 for n in nodes]
        nx.draw_networkx_nodes(g, pos, nodelist=nodes, node_size=sizes, node_color="#ecf0f1",
                               edgecolors="#2c3e50", linewidths=0.8, ax=ax)
        nx.draw_networkx_labels(g, pos, labels={n: names.get(n, n) for n in nodes}, font_size=6,
                                font_family="serif", ax=ax)
        ax.set_title("Committed money flows (red: on a round-trip; dashed: amount undisclosed)")
        ax.set_axis_off()
        fig.tight_layout()
    return fig


def car_path_figure(path: pl.DataFrame, title: str) -> Figure:
    with _style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        d = path["rel_day"].to_numpy()
        car = 100 * path["car"].to_numpy()
        se = 100 * path["se"].to_numpy()
        ax.fill_between(d, car - Z95 * se, car + Z95 * se, color="#3498db", alpha=0.25, lw=0, label="95% CI")
        ax.plot(d, car, color="#2c3e50", marker="o", ms=2.5, label="CAR")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("trading days relative to the announcement")
        ax.set_ylabel("cumulative abnormal return (%)")
        ax.set_title(title)
        ax.legend(frameon=False, loc="upper left")
        fig.tight_layout()
    return fig


def caar_figure(aar: pl.DataFrame) -> Figure:
    """CAAR over the non-estimation days: cumulative sum of the AAR."""
    with _style():
        fig, ax = plt.subplots(figsize=(4.5, 3.0))
        a = aar.sort("rel_day").drop_nulls("aar")
        ax.plot(a["rel_day"].to_numpy(), 100 * np.cumsum(a["aar"].to_numpy()), color="#2c3e50", marker="o", ms=2.5)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("trading days relative to the announcement")
        ax.set_ylabel("CAAR (%)")
        ax.set_title(f"Cumulative average abnormal return (N = {int(a['n'].to_numpy().max(initial=0))} firm-events)")
        fig.tight_layout()
    return fig


def forest_figure(car0: pl.DataFrame) -> Figure:
    """Event-day AR per firm-event with 95% intervals (``car0``: the [0,0] rows of the CAR table)."""
    d = car0.drop_nulls("car").sort(["t0", "event_id"], descending=[True, True])
    with _style():
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
    """Announcements over time against the running sum of their CARs, per ticker."""
    d = car_w.drop_nulls("car").sort(["t0", "event_id"])
    with _style():
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        tickers = (
            d.group_by("ticker").len().sort(["len", "ticker"], descending=[True, False]).head(6)["ticker"].to_list()
        )
        for t in sorted(tickers):
            s = d.filter(ticker=t)
            ax.step(s["t0"].to_list(), 100 * np.cumsum(s["car"].to_numpy()), where="post", marker="o", ms=2.5, label=t)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel(f"cumulative CAR{window} over announcements (%)")
        ax.set_title("Announcements and the abnormal return they brought, by ticker")
        ax.legend(frameon=False, ncol=3)
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig


def size_figure(d: pl.DataFrame, window: str) -> Figure:
    """Deal size ($bn, log scale) against CAR for deals with a disclosed amount."""
    d = d.drop_nulls(["amount_bn", "car"]).filter(pl.col("amount_bn") > 0).sort("event_id")
    with _style():
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.scatter(d["amount_bn"].to_numpy(), 100 * d["car"].to_numpy(), s=12, color="#2c3e50")
        for r in d.iter_rows(named=True):
            if abs(r["car"]) > 0.05:
                ax.annotate(r["ticker"], (r["amount_bn"], 100 * r["car"]), fontsize=5, xytext=(3, 2),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("announced amount (US$ bn, log scale; all deal rows of the announcement)")
        ax.set_ylabel(f"CAR{window} (%)")
        ax.set_title(f"Deal size and abnormal return (N = {d.height})")
        fig.tight_layout()
    return fig
