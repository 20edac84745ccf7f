"""The money-flow graph: round-trips, concentration and contagion.

Input is ``ledger.api.flows`` (one row per payer -> payee edge). Only rows with
``counts_toward_total`` contribute amounts, so a contract reported several times (the four Oracle-OpenAI
reports) is counted once. An edge whose counted rows are all undisclosed keeps ``amount_usd = None`` and
``undisclosed = True``: it is part of the web (and of cycles) but never adds 0 to a total silently. An edge
whose known amounts are all excluded by contracts.csv (``counted = False``) is not a committed flow and
stays out of the graph.

Measures:

* **cycles** (round-trips A pays B pays ... pays A): every simple directed cycle, with the volume that can
  circulate = the smallest disclosed edge on it (None, flagged, if an edge is undisclosed).
* **concentration**: each company's share of all committed disclosed flows (outflows, inflows) and the
  Herfindahl-Hirschman index of those shares (0..10,000 scale).
* **stress** ("what if X fails"): for each company X, the inflows of every other company that come from
  X directly (first order) and through one intermediate that depends on X (second order: Y's inflow from
  Z, where Z itself receives from X).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
import polars as pl


def edges(flows: pl.DataFrame) -> pl.DataFrame:
    """Aggregate flows to one edge per (payer, payee): counted disclosed sum, counts of rows."""
    f = flows.filter(pl.col("payer") != pl.col("payee"))
    return (
        f.group_by("payer", "payee")
        .agg(
            amount_usd=pl.when(pl.col("counts_toward_total") & pl.col("amount_usd").is_not_null())
            .then(pl.col("amount_usd"))
            .sum(),
            n_disclosed=(pl.col("counts_toward_total") & pl.col("amount_usd").is_not_null()).sum(),
            # A counted contract without an amount (e.g. Microsoft's 2023 OpenAI tranche) makes the
            # edge's sum a lower bound: flagged, never silently treated as complete.
            n_hidden=(pl.col("counts_toward_total") & pl.col("amount_usd").is_null()).sum(),
            n_counted=pl.col("counts_toward_total").sum(),
            n_unknown=pl.col("amount_usd").is_null().sum(),
            n_deals=pl.col("deal_id").n_unique(),
            deals=pl.col("deal_id").unique().sort(),
        )
        .with_columns(
            # An edge whose rows all have known amounts that data/events/contracts.csv excludes (the
            # SoftBank Nvidia-stake snapshot, its sale to open-market buyers) is not a committed flow:
            # kept in the table with counted = False, left out of the graph, never called
            # "undisclosed". Multi-party rows (Stargate) have no attributable amount: they stay in the
            # graph as undisclosed edges.
            counted=(pl.col("n_counted") > 0) | (pl.col("n_unknown") > 0),
        )
        .with_columns(
            undisclosed=pl.col("counted") & (pl.col("n_disclosed") == 0),
            partly_undisclosed=(pl.col("n_disclosed") > 0) & (pl.col("n_hidden") > 0),
            amount_usd=pl.when(pl.col("n_disclosed") > 0).then(pl.col("amount_usd")).otherwise(None),
        )
        .drop("n_disclosed", "n_hidden", "n_counted", "n_unknown")
        .sort("payer", "payee")
    )


def build_graph(edge_frame: pl.DataFrame) -> nx.DiGraph:
    g = nx.DiGraph()
    for r in edge_frame.filter("counted").iter_rows(named=True):
        g.add_edge(r["payer"], r["payee"], amount=r["amount_usd"], undisclosed=r["undisclosed"],
                   partial=r["partly_undisclosed"], deals=r["deals"])
    return g


def _canonical(cycle: list[str]) -> list[str]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]


def cycles(g: nx.DiGraph, max_length: int = 6) -> pl.DataFrame:
    rows = []
    for c in nx.simple_cycles(g, length_bound=max_length):
        c = _canonical(list(c))
        hops = list(zip(c, c[1:] + c[:1], strict=True))
        amounts = [g.edges[a, b]["amount"] for a, b in hops]
        disclosed = [a for a in amounts if a is not None]
        rows.append(
            {
                "cycle": " -> ".join([*c, c[0]]),
                "length": len(c),
                "nodes": c,
                "volume_usd": min(disclosed) if len(disclosed) == len(amounts) else None,
                "min_disclosed_usd": min(disclosed) if disclosed else None,
                "has_undisclosed": len(disclosed) < len(amounts),
                "volume_is_lower_bound": any(g.edges[a, b]["partial"] for a, b in hops),
            }
        )
    schema: dict[str, Any] = {"cycle": pl.String, "length": pl.Int64, "nodes": pl.List(pl.String), "volume_usd": pl.Float64,
              "min_disclosed_usd": pl.Float64, "has_undisclosed": pl.Boolean,
              "volume_is_lower_bound": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row").sort(
        ["length", "volume_usd", "cycle"], descending=[False, True, False], nulls_last=True
    )


def concentration(edge_frame: pl.DataFrame) -> tuple[pl.DataFrame, float, float]:
    """Shares of disclosed committed flows per company, and HHI of outflow and inflow shares."""
    e = edge_frame.drop_nulls("amount_usd")
    total = float(e["amount_usd"].sum())
    out = e.group_by(pl.col("payer").alias("company")).agg(out_usd=pl.col("amount_usd").sum())
    inn = e.group_by(pl.col("payee").alias("company")).agg(in_usd=pl.col("amount_usd").sum())
    shares = (
        out.join(inn, on="company", how="full", coalesce=True)
        .fill_null(0.0)
        .with_columns(out_share=pl.col("out_usd") / total, in_share=pl.col("in_usd") / total)
        .sort(["in_usd", "company"], descending=[True, False])
    )
    hhi_out = float((shares["out_share"] ** 2).sum() * 10_000)
    hhi_in = float((shares["in_share"] ** 2).sum() * 10_000)
    return shares, hhi_out, hhi_in


def stress(g: nx.DiGraph) -> pl.DataFrame:
    """Inflows at risk for every company if one payer fails (first and second order).

    An amount is flagged undisclosed when any part of it is: an edge with no amount at all, or a
    partly undisclosed edge (a disclosed sum plus undisclosed tranches), whose amount is a lower bound.
    """
    rows = []
    for x in sorted(g.nodes):
        first = {b: g.edges[x, b]["amount"] for b in g.successors(x)}
        first_partial = {b: bool(g.edges[x, b]["partial"]) for b in g.successors(x)}
        for y in sorted(g.nodes):
            if y == x:
                continue
            direct = first.get(y)
            via = [z for z in g.predecessors(y) if z in first and z not in (x, y)]
            second = [g.edges[z, y]["amount"] for z in via]
            if y not in first and not via:
                continue
            rows.append(
                {
                    "failed": x,
                    "company": y,
                    "first_order_usd": direct,
                    "first_order_undisclosed": y in first and (direct is None or first_partial[y]),
                    "second_order_usd": sum(known) if (known := [a for a in second if a is not None]) else None,
                    "second_order_via": sorted(via),
                    # z's payments to y are what is at risk: an undisclosed or partly undisclosed one
                    # leaves the second-order sum a lower bound
                    "second_order_undisclosed": any(
                        g.edges[z, y]["amount"] is None or g.edges[z, y]["partial"] for z in via
                    ),
                }
            )
    schema: dict[str, Any] = {"failed": pl.String, "company": pl.String, "first_order_usd": pl.Float64,
              "first_order_undisclosed": pl.Boolean, "second_order_usd": pl.Float64,
              "second_order_via": pl.List(pl.String), "second_order_undisclosed": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("failed", "company")


@dataclass(frozen=True)
class FlowAnalysis:
    """Results of :func:`analyse`, in the manner of a statsmodels results object."""

    edges: pl.DataFrame
    cycles: pl.DataFrame
    shares: pl.DataFrame
    hhi_out: float
    hhi_in: float
    stress: pl.DataFrame
    graph: Any

    @property
    def total_usd(self) -> float:
        return float(self.edges["amount_usd"].drop_nulls().sum())

    def to_frame(self) -> pl.DataFrame:
        return self.cycles

    def summary(self) -> str:
        lines = [
            f"Money-flow graph: {self.graph.number_of_nodes()} companies, {self.graph.number_of_edges()} "
            f"committed edges ({int(self.edges['undisclosed'].sum())} undisclosed; "
            f"{int((~self.edges['counted']).sum())} excluded ledger edges), committed disclosed total "
            f"${self.total_usd / 1e9:,.1f}bn",
            f"HHI of outflow shares {self.hhi_out:,.0f}, of inflow shares {self.hhi_in:,.0f} (0-10,000)",
            f"Round-trips: {self.cycles.height}",
        ]
        for r in self.cycles.iter_rows(named=True):
            vol = "undisclosed edge" if r["volume_usd"] is None else f"${r['volume_usd'] / 1e9:,.2f}bn"
            if r["volume_is_lower_bound"]:
                vol = f"at least {vol} (an edge has undisclosed tranches)"
            lines.append(f"  {r['cycle']}: {vol}")
        return "\n".join(lines)


def analyse(flows: pl.DataFrame, max_cycle_length: int = 6) -> FlowAnalysis:
    e = edges(flows)
    g = build_graph(e)
    shares, hhi_out, hhi_in = concentration(e)
    return FlowAnalysis(e, cycles(g, max_cycle_length), shares, hhi_out, hhi_in, stress(g), g)
