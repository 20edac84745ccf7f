"""Spillovers: firms that are not parties to a deal but sit near it in the deal web.

"Who gains when OpenAI signs with AMD?" Nvidia is no party to the AMD deal, yet it is one hop from
OpenAI in the flow graph. This module chooses, for every dated deal, the listed firms within ``hops``
steps of the deal's parties in the web of deals known on its announcement date (valid time: deals
announced on or before it, so the choice has no look-ahead), and names each by its distance:
``spillover_k1``, ``spillover_k2``... They become firm-events of their own (``run_study(...,
spillovers=spillover_pairs(deals, companies, k))`` or :func:`spillover_study`), measured exactly like
the parties'.

The relation graph is undirected and uses every live deal (a duplicate report still says who deals with
whom). ledger companies carry no competitor or supplier lists, so proximity in the graph is the only
rule. Spillover firm-events do not mask the estimation windows of other events (only the parties'
events do, as without the option), so the parties' numbers are the same with the option on or off.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import polars as pl

from core.errors import InputError

SPILLOVER_PREFIX = "spillover_k"


def spillover_pairs(deals: pl.DataFrame, companies: pl.DataFrame, hops: int = 1) -> pl.DataFrame:
    """deal_id, ticker, role: the listed firms within ``hops`` of each dated live deal's parties.

    ``deals``: :func:`ledger.api.deals`; ``companies``: :func:`ledger.api.companies` (one line per
    firm: its first ticker). A firm already among the deal's listed counterparties is left out.
    """
    if hops < 1:
        raise InputError(f"spillover hops must be at least 1, got {hops}", field="spillover_hops")
    listed = (
        companies.filter(pl.col("listed") & (pl.col("tickers").list.len() > 0))
        .select("company_id", pl.col("tickers").list.first().alias("ticker"))
    )
    ticker_of = dict(listed.iter_rows())
    live = deals.filter((pl.col("status") != "retracted") & pl.col("announced_date").is_not_null()).sort(
        "announced_date", "deal_id"
    )
    rows: list[dict[str, Any]] = []
    g = nx.Graph()
    # one graph grown day by day (a loop over days and deals, not firm-event rows)
    for (day,), part in live.partition_by("announced_date", as_dict=True, maintain_order=True).items():
        for payers, payees in part.select("payers", "payees").iter_rows():
            for a in payers:
                for b in payees:
                    if a != b:
                        g.add_edge(a, b)
        for deal_id, payers, payees, tickers in part.select("deal_id", "payers", "payees", "tickers").iter_rows():
            parties = set(payers) | set(payees)
            dist = nx.multi_source_dijkstra_path_length(g, parties & set(g.nodes), cutoff=hops) if parties & set(g.nodes) else {}
            for node, d in sorted(dist.items()):
                t = ticker_of.get(node)
                if d == 0 or t is None or t in set(tickers):
                    continue
                rows.append({"deal_id": deal_id, "ticker": t, "role": f"{SPILLOVER_PREFIX}{int(d)}", "hops": int(d)})
        del day
    schema = {"deal_id": pl.String, "ticker": pl.String, "role": pl.String, "hops": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("deal_id", "ticker")


def is_spillover(role: pl.Expr) -> pl.Expr:
    return role.str.starts_with(SPILLOVER_PREFIX)


def with_roles(car: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The study's CAR frame with each firm-event's ``role`` (counterparty, peer, spillover_kN)."""
    return car.join(events.select("event_id", "role").unique("event_id"), on="event_id", how="left")


def spillover_study(
    deals: pl.DataFrame,
    returns: pl.DataFrame,
    companies: pl.DataFrame,
    hops: int = 1,
    **study: Any,
) -> pl.DataFrame:
    """The study's CAR frame with spillover firm-events and a ``role`` column (pure).

    >>> car = spillover_study(deals, returns, companies, hops=1)  # doctest: +SKIP
    >>> car.filter(deal_id="amd-openai-2025-10-06", window="[0,0]").sort("car")  # who gained  # doctest: +SKIP
    """
    from analysis.events import collapse_same_day, firm_events
    from analysis.study import run_study

    pairs = spillover_pairs(deals, companies, hops)
    res = run_study(deals, returns, spillovers=pairs, **study)
    events = firm_events(
        deals,
        peers=study.get("peers") or None,
        unknown_policy=study.get("unknown_policy", "same_day"),
        spillovers=pairs,
    )
    if study.get("collapse_same_day", True):
        events = collapse_same_day(events)
    return with_roles(res.car, events)


__all__ = ["SPILLOVER_PREFIX", "is_spillover", "spillover_pairs", "spillover_study", "with_roles"]
