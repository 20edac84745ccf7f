"""The money-flow graph: round-trips, concentration and contagion.

Input is ``ledger.api.flows`` (one row per payer -> payee edge). Only rows with
``counts_toward_total`` contribute amounts, so a contract reported several times (the four Oracle-OpenAI
reports) is counted once. An edge whose counted rows are all undisclosed keeps ``amount_usd = None`` and
``undisclosed = True``: it is part of the web (and of cycles) but never adds 0 to a total silently. An edge
whose known amounts are all excluded by contracts.csv (``counted = False``) is not a committed flow and
stays out of the graph.

Measures:

* **cycles** (round-trips A pays B pays ... pays A): every simple directed cycle, with the volume that can
  circulate = the smallest edge on it (None, flagged, if an edge is undisclosed; then the smallest
  disclosed edge is an upper bound), flagged where the bottleneck is partly undisclosed (a lower bound)
  or not an exact amount ('up to', estimate).
* **concentration**: each company's share (a fraction) of all committed disclosed flows (outflows,
  inflows), with counts of its undisclosed edges, and the Herfindahl-Hirschman index of those shares
  (sum of squared fractions x 10,000; 0 when nothing is disclosed).
* **stress** ("what if X fails"): for each company X, the inflows of every other company that come from
  X directly (first order) and through one intermediate that depends on X (second order: Y's inflow from
  Z, where Z itself receives from X).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
import polars as pl


def _marked(flows: pl.DataFrame) -> pl.DataFrame:
    """Flows without self-payments, with ``_multi`` (multi-party edge) and ``_dup`` (excluded report)."""
    # A multi-party deal's edges (Stargate) have no attributable amount and stay out of totals, yet they
    # are committed flows; an excluded duplicate report is not. The ledger marks duplicate reports
    # (duplicate_report); a frame without the mark (an older database read-only, a hand-made frame) falls
    # back to "a deal with several edges is multi-party, any other uncounted row a duplicate", counted
    # before self-payments are dropped, which do not make a deal single-party.
    several = pl.len().over("deal_id") > 1
    unmarked = ~pl.col("counts_toward_total")
    flows = flows.with_columns(  # an absent column, or an all-None one (dtype Null), reads as unmarked
        pl.col("duplicate_report").cast(pl.Boolean) if "duplicate_report" in flows.columns
        else pl.lit(None, dtype=pl.Boolean).alias("duplicate_report")
    )
    return flows.with_columns(
        _multi=pl.coalesce(unmarked & ~pl.col("duplicate_report"), several),
        _dup=pl.coalesce(pl.col("duplicate_report"), unmarked & ~several),
    ).filter(pl.col("payer") != pl.col("payee"))


def edges(flows: pl.DataFrame) -> pl.DataFrame:
    """Aggregate flows to one edge per (payer, payee): counted disclosed sum, flags and amount kinds."""
    f = _marked(flows)
    disclosed = pl.col("counts_toward_total") & pl.col("amount_usd").is_not_null()
    # Excluded by data/events/contracts.csv: another report of the same contract counts instead.
    excluded = pl.col("_dup")
    return (
        f.group_by("payer", "payee")
        .agg(
            amount_usd=pl.when(disclosed).then(pl.col("amount_usd")).sum(),
            n_disclosed=disclosed.sum(),
            # A committed contract without an amount (Microsoft's 2023 OpenAI tranche, a multi-party
            # commitment) makes the edge's sum a lower bound: flagged, never silently treated as complete.
            n_hidden=((pl.col("counts_toward_total") | pl.col("_multi")) & pl.col("amount_usd").is_null()).sum(),
            n_committed=(~excluded).sum(),
            # What the disclosed sum is made of: 'exact', 'up_to', 'estimate' (ledger amount_kind).
            amount_kinds=pl.when(disclosed).then(pl.col("amount_kind")).drop_nulls().unique().sort(),
            excluded_usd=pl.when(excluded).then(pl.col("amount_usd")).sum(),
            n_excluded_known=(excluded & pl.col("amount_usd").is_not_null()).sum(),
            n_deals=pl.col("deal_id").n_unique(),
            deals=pl.col("deal_id").unique().sort(),
        )
        .with_columns(
            # An edge made only of excluded reports (the SoftBank Nvidia-stake snapshot, its sale to
            # open-market buyers) is not a committed flow: kept in the table with counted = False and its
            # known amount in excluded_usd, left out of the graph, never called "undisclosed".
            counted=pl.col("n_committed") > 0,
        )
        .with_columns(
            undisclosed=pl.col("counted") & (pl.col("n_disclosed") == 0),
            partly_undisclosed=(pl.col("n_disclosed") > 0) & (pl.col("n_hidden") > 0),
            amount_usd=pl.when(pl.col("n_disclosed") > 0).then(pl.col("amount_usd")).otherwise(None),
            # Only exact amounts make a firm sum; 'up to' and estimates are ceilings or guesses.
            amount_firm=(pl.col("n_disclosed") > 0)
            & (pl.col("amount_kinds").list.set_difference(["exact"]).list.len() == 0),
            excluded_usd=pl.when(pl.col("n_excluded_known") > 0).then(pl.col("excluded_usd")).otherwise(None),
        )
        .drop("n_disclosed", "n_hidden", "n_committed", "n_excluded_known")
        .sort("payer", "payee")
    )


def build_graph(edge_frame: pl.DataFrame) -> nx.DiGraph:
    g = nx.DiGraph()
    for r in edge_frame.filter("counted").iter_rows(named=True):
        g.add_edge(r["payer"], r["payee"], amount=r["amount_usd"], undisclosed=r["undisclosed"],
                   partial=r["partly_undisclosed"], firm=r["amount_firm"], kinds=r["amount_kinds"],
                   deals=r["deals"])
    return g


def _canonical(cycle: list[str]) -> list[str]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]


def cycles(g: nx.DiGraph, max_length: int = 6) -> pl.DataFrame:
    """Every simple cycle up to ``max_length`` with the volume that can circulate around it.

    ``volume_usd`` is the smallest edge when every edge is disclosed; ``bottleneck`` names the edge(s)
    holding that minimum. How far the minimum of the stated amounts is the true one:

    * ``volume_is_firm``: the bottleneck is an exact amount with no undisclosed tranche, and no edge on the
      cycle is an 'up to' amount (which may really be anything below it, so below the bottleneck too).
      Estimates off the bottleneck are taken at face value.
    * ``volume_is_lower_bound``: the same, except that the bottleneck has undisclosed tranches beside its
      exact disclosed sum, so the volume is at least the stated one.
    * neither: an approximation (an 'up to' amount or an estimate decides it).

    Where an edge is undisclosed the volume is unknown; ``volume_upper_bound_usd`` is then the smallest
    edge whose stated amount is not a partial sum (more may flow on a partly undisclosed edge), which the
    unknown edge can only lower; None if there is no such edge.
    """
    rows = []
    for c in nx.simple_cycles(g, length_bound=max_length):
        c = _canonical(list(c))
        hops = list(zip(c, c[1:] + c[:1], strict=True))
        attrs = [g.edges[h] for h in hops]
        amounts = [a["amount"] for a in attrs]
        complete = all(a is not None for a in amounts)
        any_up_to = any("up_to" in a["kinds"] for a in attrs)
        if complete:
            low = min(amounts)
            neck = [(h, a) for h, a in zip(hops, attrs, strict=True) if a["amount"] == low]
            neck_exact = all(a["firm"] for _h, a in neck)  # disclosed, and exact amounts only
            neck_partial = any(a["partial"] for _h, a in neck)
            firm = neck_exact and not neck_partial and not any_up_to
            lower = neck_exact and neck_partial and not any_up_to
            upper = None
        else:
            bounding = [a["amount"] for a in attrs if a["amount"] is not None and not a["partial"]]
            low, neck, firm, lower = None, [], False, False
            upper = min(bounding) if bounding else None
        rows.append(
            {
                "cycle": " -> ".join([*c, c[0]]),
                "length": len(c),
                "nodes": c,
                "volume_usd": low,
                "volume_upper_bound_usd": upper,
                "has_undisclosed": not complete,
                "bottleneck": [f"{a} -> {b}" for (a, b), _attr in neck],
                "volume_is_lower_bound": lower,
                "volume_is_firm": firm,
            }
        )
    schema: dict[str, Any] = {"cycle": pl.String, "length": pl.Int64, "nodes": pl.List(pl.String), "volume_usd": pl.Float64,
              "volume_upper_bound_usd": pl.Float64, "has_undisclosed": pl.Boolean,
              "bottleneck": pl.List(pl.String), "volume_is_lower_bound": pl.Boolean, "volume_is_firm": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row").sort(
        ["length", "volume_usd", "cycle"], descending=[False, True, False], nulls_last=True
    )


def cycle_members(flows: pl.DataFrame, cycle_frame: pl.DataFrame) -> pl.DataFrame:
    """The deals that make each round-trip: for every edge of a cycle, the committed deals on it.

    Why: the value a round-trip moved (``analysis.dollar.by_cycle``) sums the market moves of the
    announcements of its contracts, so a cycle must name them. A contract reported several times (the
    four Oracle-OpenAI reports) enters once, as the report that counts toward totals; excluded reports
    (``duplicate_report``, or uncounted single-edge rows in a frame without that mark) never do, as in
    :func:`edges`. A multi-party deal on a cycle edge (none on the shipped data) enters as itself. A
    deal making several edges of one cycle is listed once, with all of them in ``edges``.

    Args:
        flows: ``ledger.api.flows`` (deal_id, payer, payee, counts_toward_total; contract_id and
            duplicate_report when present).
        cycle_frame: :func:`cycles` (cycle, nodes).

    Returns:
        DataFrame[cycle, contract_id, deal_id, edges: list[str] ('payer -> payee'), counts_toward_total],
        sorted by cycle and deal_id.
    """
    nodes = pl.col("nodes")
    hops = cycle_frame.select(
        "cycle",
        nodes.alias("payer"),
        pl.concat_list(nodes.list.slice(1), nodes.list.first()).alias("payee"),
    ).explode("payer", "payee")
    contract = pl.col("contract_id") if "contract_id" in flows.columns else pl.lit(None, pl.Utf8)
    committed = (
        _marked(flows)
        .filter(~pl.col("_dup"))
        .select("deal_id", pl.coalesce(contract.cast(pl.Utf8), pl.col("deal_id")).alias("contract_id"),
                "payer", "payee", pl.col("counts_toward_total").cast(pl.Boolean))
    )
    rows = hops.join(committed, on=["payer", "payee"], how="inner").with_columns(
        (pl.col("payer") + pl.lit(" -> ") + pl.col("payee")).alias("edge"))
    per_deal = rows.group_by("cycle", "contract_id", "deal_id").agg(
        pl.col("edge").unique().sort().alias("edges"), pl.col("counts_toward_total").any())
    # One report per contract: the counted one (a second uncounted, non-duplicate report of a contract
    # cannot arise from the ledger; if a hand-made frame has one, the first deal id decides).
    return (
        per_deal.sort(["cycle", "contract_id", "counts_toward_total", "deal_id"],
                      descending=[False, False, True, False])
        .unique(["cycle", "contract_id"], keep="first", maintain_order=True)
        .select("cycle", "contract_id", "deal_id", "edges", "counts_toward_total")
        .sort("cycle", "deal_id")
    )


def concentration(edge_frame: pl.DataFrame) -> tuple[pl.DataFrame, float, float]:
    """Shares (fractions) of disclosed committed flows per company, and HHI of outflow and inflow shares.

    Every company on a committed edge is listed, also one whose flows are all undisclosed (AMD's chips
    for a warrant): its shares are 0 of the *disclosed* total, and ``n_undisclosed_out``/``_in`` count
    its undisclosed or partly undisclosed edges, so a reader sees what the shares leave out.
    """
    committed = edge_frame.filter("counted")
    e = committed.drop_nulls("amount_usd")
    # Nothing disclosed: every share is 0 (and so the HHI), not 0/0.
    total = float(e["amount_usd"].sum()) or float("inf")
    hidden = pl.col("undisclosed") | pl.col("partly_undisclosed")
    out = committed.group_by(pl.col("payer").alias("company")).agg(
        out_usd=pl.col("amount_usd").sum(), n_undisclosed_out=hidden.sum().cast(pl.Int64)
    )
    inn = committed.group_by(pl.col("payee").alias("company")).agg(
        in_usd=pl.col("amount_usd").sum(), n_undisclosed_in=hidden.sum().cast(pl.Int64)
    )
    shares = (
        out.join(inn, on="company", how="full", coalesce=True)
        .with_columns(pl.col("out_usd", "in_usd").fill_null(0.0), pl.col("n_undisclosed_out", "n_undisclosed_in").fill_null(0))
        .with_columns(out_share=pl.col("out_usd") / total, in_share=pl.col("in_usd") / total)
        .select("company", "out_usd", "in_usd", "out_share", "in_share", "n_undisclosed_out", "n_undisclosed_in")
        .sort(["in_usd", "out_usd", "company"], descending=[True, True, False])
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
            if r["volume_usd"] is None and r["volume_upper_bound_usd"] is not None:
                vol = f"undisclosed edge, at most ${r['volume_upper_bound_usd'] / 1e9:,.2f}bn"
            if r["volume_is_lower_bound"]:
                vol = f"at least {vol} (the bottleneck edge has undisclosed tranches)"
            elif r["volume_usd"] is not None and not r["volume_is_firm"]:
                vol += " (approximate: an 'up to' amount or an estimate decides it)"
            lines.append(f"  {r['cycle']}: {vol}")
        return "\n".join(lines)


def analyse(flows: pl.DataFrame, max_cycle_length: int = 6) -> FlowAnalysis:
    e = edges(flows)
    g = build_graph(e)
    shares, hhi_out, hhi_in = concentration(e)
    return FlowAnalysis(e, cycles(g, max_cycle_length), shares, hhi_out, hhi_in, stress(g), g)
