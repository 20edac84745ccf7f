"""Graph characteristics of each firm-event as they were known when the deal was announced.

Why as known then: a second-stage regression that asks "do markets reward circularity?" must describe
each announcement with what the market could know on that day. The flow graph of today contains deals
announced later (Nvidia's $100bn letter to OpenAI came twelve days after Oracle's $300bn contract), so
measuring Oracle's 2025-09-10 announcement on today's graph would credit it with a round-trip nobody
could see yet: look-ahead bias.

"Known on day D" is bitemporal, read from the ledger's two clocks:

* valid time: the deals in effect on D (``ledger.api.deals(con, in_effect_on=D)``: deals announced on
  or before D, with the amendments effective by D). Deals announced on D itself are known on D: the
  rows of one announcement (OpenAI->AMD chips and AMD->OpenAI warrant) arrive together, as
  :func:`analysis.events.collapse_same_day` treats them. The event's own deals are always in the state
  it is described on: on the first-report date basis the event is known before its deal's official date
  (from which the ledger holds the deal), so its own deals are added, as of their official date, to the
  ledger of its day, and nothing else later (see :func:`_event_states`).
* transaction time: ``recorded_by`` (``as_known_at``), the instant up to which the ledger's own
  records are read. ``None`` reads every record (the ledger as it stands, which for the shipped ledger,
  compiled after the fact in one import, is the only choice that sees anything); a ledger kept in real
  time can pass each announcement's instant for the strict real-time view.

A contract reported several times counts once in flow totals (``counts_toward_total``), through the
report data/events/contracts.csv designates, usually the latest. Before that report is known, the
latest known report of the contract stands in for it (Oracle's 2025-07-22 report before the $300bn
figure of 2025-09-10); a contract none of whose reports counts (open-market share purchases) stays out.

Characteristics per firm-event (one row per row of the firm-events frame):

* ``role``: payer, payee or bystander (a listed counterparty that is neither: Nvidia at Stargate) in the
  announcement's lead contract (its largest disclosed amount; ties or none: the first deal id).
* ``on_round_trip``: an edge of the deal (or of a deal announced with it, the same ``deal_ids`` group)
  lies on a simple cycle (length <= ``max_cycle_length``) of the committed flow graph known that day;
  ``closes_round_trip``: one of those cycles did not exist the day before; ``n_round_trips`` counts
  the cycles through the deal's edges, ``round_trips`` names them ('a -> b -> a').
* ``openai_flows_usd``/``openai_share``: the firm's disclosed committed flows to or from OpenAI and
  their share of all disclosed committed flows to or from OpenAI (null when none is known); both null
  for a firm linked to OpenAI only by undisclosed amounts (AMD: unknown exposure, not the 0 of a firm
  with no OpenAI link).
* ``degree``/``in_degree``/``out_degree`` (distinct counterparties in the committed graph) and
  ``betweenness`` (networkx's normalised betweenness centrality of the directed graph).
* ``amount_usd``, ``log_amount`` (natural log of US$; null when undisclosed): the announcement's
  contracts summed, each once (the dollar section's rule, :func:`_announcement_attributes`);
  ``amount_partial`` (some contract undisclosed: a lower bound), ``amount_kind`` (the loosest summed:
  up_to, else estimate, else firm = exact amounts; undisclosed), ``deal_type`` (the lead contract's).
* ``amount_to_mcap``: the deal amount over the firm's market capitalisation (the frame the caller
  passes, e.g. at t0-1), null with a reason code in ``amount_to_mcap_reason`` otherwise
  (``no_market_cap_frame``, ``undisclosed_amount``, ``no_market_cap`` or the frame's own reason).
* ``deal_kind``: ``deal_type`` grouped into equity, compute, chips, venture, other (:data:`DEAL_KINDS`).

The I/O is one function, :func:`ledger_as_known`; the rest are pure functions of its frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import networkx as nx
import polars as pl

from analysis import network
from core.errors import InputError
from ledger import api as ledger_api

OPENAI = "openai"

FEATURE_SCHEMA: dict[str, Any] = {
    "event_id": pl.String,
    "deal_id": pl.String,
    "ticker": pl.String,
    "t0": pl.Date,
    "known_on": pl.Date,
    "company": pl.String,
    "role": pl.String,
    "deal_type": pl.String,
    "deal_kind": pl.String,
    "amount_kind": pl.String,
    "amount_usd": pl.Float64,
    "log_amount": pl.Float64,
    "on_round_trip": pl.Boolean,
    "closes_round_trip": pl.Boolean,
    "n_round_trips": pl.Int64,
    "round_trips": pl.List(pl.String),
    "openai_flows_usd": pl.Float64,
    "openai_share": pl.Float64,
    "degree": pl.Int64,
    "in_degree": pl.Int64,
    "out_degree": pl.Int64,
    "betweenness": pl.Float64,
    "amount_to_mcap": pl.Float64,
    "amount_to_mcap_reason": pl.String,
    "amount_partial": pl.Boolean,
}

#: Coarse deal kinds for regressions: with 44 deals most ``deal_type`` values occur once, and a category
#: with one firm-event has leverage 1 (its CAR is fitted exactly), which leaves HC2/HC3 undefined.
DEAL_KINDS: dict[str, str] = {
    "equity_investment": "equity",
    "equity_investment_loi": "equity",
    "equity_warrant": "equity",
    "equity_for_contract": "equity",
    "open_market_stake": "equity",
    "stake_divestment": "equity",
    "amendment_report": "equity",
    "cloud_compute_purchase": "compute",
    "compute_purchase_commitment": "compute",
    "capacity_backstop": "compute",
    "capacity_expansion": "compute",
    "chip_purchase": "chips",
    "custom_chip_supply": "chips",
    "joint_venture_commitment": "venture",
}

@dataclass(frozen=True)
class KnownLedger:
    """The ledger as known on several days, stacked: each frame has a ``known_on`` column.

    ``current_deals`` is the ledger as recorded by ``recorded_by`` with every amendment (used only to
    tell which contracts have a counting report at all).
    """

    deals: pl.DataFrame
    flows: pl.DataFrame
    current_deals: pl.DataFrame
    days: tuple[dt.date, ...]


def ledger_as_known(
    con: duckdb.DuckDBPyConnection,
    days: Iterable[dt.date],
    *,
    recorded_by: dt.datetime | None = None,
    vectorised: bool = True,
) -> KnownLedger:
    """Deals and flows in effect on each of ``days`` as recorded by ``recorded_by`` (None: all records).

    One bitemporal pass over the ledger (``ledger.api.deals_in_effect_many``: each deal's versions
    along valid time folded once in SQL, then an interval join with the days), so each day's frames
    are exactly ``ledger.api.deals`` / ``flows(as_known_at=recorded_by, in_effect_on=day)`` (tested).
    ``vectorised=False`` replays the log once per day in Python (``ledger.project``), the reference.
    """
    from ledger import log, project

    _check_recorded_by(recorded_by)
    wanted = tuple(sorted(set(days)))
    current = ledger_api.deals(con, as_known_at=recorded_by)
    if vectorised:
        deals = ledger_api.deals_in_effect_many(con, wanted, as_known_at=recorded_by)
        return KnownLedger(deals, ledger_api.edges_by_day(deals), current, wanted)
    deal_parts, flow_parts = [], []
    events = log.read(con, as_known_at=recorded_by) if wanted else []
    for day in wanted:
        lit = pl.lit(day, dtype=pl.Date).alias("known_on")
        state = project.fold(events, in_effect_on=day)
        rows = project.deal_rows(state)
        deal_parts.append(project.deals_frame(state, rows).with_columns(lit))
        flow_parts.append(project.flows_frame(state, rows=rows).with_columns(lit))
    if not deal_parts:
        return KnownLedger(
            current.clear().with_columns(pl.lit(None, dtype=pl.Date).alias("known_on")),
            ledger_api.flows(con).clear().with_columns(pl.lit(None, dtype=pl.Date).alias("known_on")),
            current,
            wanted,
        )
    return KnownLedger(pl.concat(deal_parts), pl.concat(flow_parts), current, wanted)


def _check_recorded_by(recorded_by: dt.datetime | None) -> None:
    if recorded_by is not None and recorded_by.tzinfo is None:
        raise InputError("recorded_by must be timezone-aware", field="recorded_by")


def with_stand_in_reports(flows: pl.DataFrame, current_deals: pl.DataFrame, *, state: str = "known_on"
                          ) -> pl.DataFrame:
    """Re-decide ``counts_toward_total`` per ledger state (column ``state``, default ``known_on``): the
    latest known report of a contract counts until the designated one is known (see the module doc).
    Multi-party edges are left as they are."""
    counting = current_deals.group_by("contract_id").agg(
        pl.col("counts_toward_total").any().alias("_contract_counts")
    )
    multi = pl.len().over(state, "deal_id") > 1
    f = flows.join(counting, on="contract_id", how="left").with_columns(_multi=multi)
    single = ~pl.col("_multi")
    key = [state, "contract_id"]
    designated_known = (pl.col("counts_toward_total") & single).any().over(key)
    # ISO dates sort as text, so date|deal_id orders by announcement, then id
    order = pl.col("announced_date").cast(pl.String).fill_null("") + pl.lit("|") + pl.col("deal_id")
    latest = pl.when(single).then(order).max().over(key)
    stand_in = (
        pl.col("_contract_counts").fill_null(False)
        & ~designated_known
        & single
        & (order == latest)
    )
    counts = pl.col("counts_toward_total") | stand_in
    return f.with_columns(
        counts.alias("counts_toward_total"),
        pl.when(single).then(~counts).otherwise(pl.col("duplicate_report")).alias("duplicate_report"),
    ).drop("_contract_counts", "_multi")


def graph_measures(
    flows: pl.DataFrame, max_cycle_length: int = 6, node_days: set[Any] | None = None, *, state: str = "known_on"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per ledger state (column ``state``, default ``known_on``): (cycle hops, node measures).

    Cycle hops: state, payer, payee, cycle (one row per hop of every simple cycle).
    Node measures: state, company, degree, in_degree, out_degree, betweenness, openai_flows_usd,
    openai_share, for the states in ``node_days`` (default every state). One graph per distinct state (a
    loop over states, not rows).
    """
    dtype = flows.schema[state]
    edge_parts: list[pl.DataFrame] = []
    node_parts: list[pl.DataFrame] = []
    for (day,), part in flows.partition_by(state, as_dict=True, maintain_order=True).items():
        e = network.edges(part.drop(state))
        lit = pl.lit(day, dtype=dtype).alias(state)
        edge_parts.append(e.filter("counted").select(lit, "payer", "payee"))
        if node_days is None or day in node_days:
            node_parts.append(_node_measures(network.build_graph(e), e).with_columns(lit))
    hop_schema: dict[str, Any] = {"payer": pl.String, "payee": pl.String, "cycle": pl.String, state: dtype}
    hop_frame = (cycle_hops(pl.concat(edge_parts), max_cycle_length, state=state).select(*hop_schema)
                 if edge_parts else pl.DataFrame(schema=hop_schema))
    node_frame = pl.concat(node_parts) if node_parts else pl.DataFrame(schema={**_NODE_SCHEMA, state: dtype})
    return hop_frame, node_frame


def cycle_hops(edges: pl.DataFrame, max_length: int = 6, *, state: str = "known_on") -> pl.DataFrame:
    """Every hop of every simple cycle (up to ``max_length`` nodes) of each day's graph, all days at once.

    ``edges``: known_on (or the column ``state``), payer, payee (the committed edges of each day or
    ledger state). Returns known_on (``state``), payer, payee,
    cycle, the cycle named as :func:`analysis.network.cycles` names it ('a -> b -> a', starting at its
    smallest node). The same cycles as networkx's ``simple_cycles(g, length_bound=max_length)`` per day
    (tested), found by whole-column joins instead of one search per graph: each cycle is grown, once,
    from its smallest node s as a path through nodes larger than s, one edge per join; a path closes
    into a cycle where an edge leads back to s.
    """
    if state != "known_on":
        return cycle_hops(edges.rename({state: "known_on"}), max_length).rename({"known_on": state})
    names = pl.concat([edges["payer"], edges["payee"]]).unique().sort()
    code = dict(zip(names.to_list(), range(names.len()), strict=True))
    e = edges.select(
        "known_on",
        pl.col("payer").replace_strict(code, return_dtype=pl.Int32).alias("a"),
        pl.col("payee").replace_strict(code, return_dtype=pl.Int32).alias("b"),
    ).unique()
    found = [e.filter(pl.col("a") == pl.col("b")).select("known_on", pl.col("a").alias("n0"))]  # self-loops
    step = e.filter(pl.col("a") != pl.col("b"))
    paths = step.filter(pl.col("b") > pl.col("a")).select("known_on", pl.col("a").alias("n0"), pl.col("b").alias("n1"))
    for k in range(1, max_length):
        last = f"n{k}"
        nxt = paths.join(step, left_on=["known_on", last], right_on=["known_on", "a"], how="inner")
        found.append(nxt.filter(pl.col("b") == pl.col("n0")).drop("b"))
        if k + 1 < max_length:
            fresh = pl.all_horizontal([pl.col("b") != pl.col(f"n{i}") for i in range(1, k + 1)])
            paths = nxt.filter((pl.col("b") > pl.col("n0")) & fresh).rename({"b": f"n{k + 1}"})
    label = names.to_list()
    hop_parts = []
    for cyc in found:
        if cyc.height == 0:
            continue
        nodes = [c for c in cyc.columns if c != "known_on"]
        named = cyc.with_columns(pl.col(c).replace_strict(range(len(label)), label, return_dtype=pl.String)
                                 for c in nodes)
        name = pl.concat_str([*(pl.col(c) for c in nodes), pl.col("n0")], separator=" -> ").alias("cycle")
        named = named.with_columns(name)
        for i, c in enumerate(nodes):
            after = nodes[(i + 1) % len(nodes)]
            hop_parts.append(named.select("known_on", pl.col(c).alias("payer"), pl.col(after).alias("payee"), "cycle"))
    schema: dict[str, Any] = {"known_on": edges.schema["known_on"], "payer": pl.String, "payee": pl.String,
                              "cycle": pl.String}
    return pl.concat(hop_parts) if hop_parts else pl.DataFrame(schema=schema)


_NODE_SCHEMA: dict[str, Any] = {
    "company": pl.String,
    "degree": pl.Int64,
    "in_degree": pl.Int64,
    "out_degree": pl.Int64,
    "betweenness": pl.Float64,
    "openai_flows_usd": pl.Float64,
    "openai_share": pl.Float64,
}


def _node_measures(g: nx.DiGraph, e: pl.DataFrame) -> pl.DataFrame:
    nodes = sorted(g.nodes)
    between = nx.betweenness_centrality(g, normalized=True) if nodes else {}
    # degree = distinct counterparties (an A<->B pair is one counterparty, two directed edges)
    neighbours = {n: set(g.successors(n)) | set(g.predecessors(n)) for n in nodes}
    other = pl.when(pl.col("payer") == OPENAI).then(pl.col("payee")).otherwise(pl.col("payer"))
    counted_openai = e.filter(pl.col("counted") & ((pl.col("payer") == OPENAI) | (pl.col("payee") == OPENAI)))
    with_openai = counted_openai.filter(pl.col("amount_usd").is_not_null())
    total = float(with_openai["amount_usd"].sum())
    per = dict(
        with_openai.group_by(other.alias("company")).agg(pl.col("amount_usd").sum()).iter_rows()
    )
    # A firm linked to OpenAI only by undisclosed amounts has an unknown share, not a share of 0 (the
    # value of a firm with no OpenAI link at all): null, so a regression drops and names it.
    linked = set(counted_openai.select(other.alias("company"))["company"].to_list())

    def share(n: str) -> float | None:
        if total <= 0:
            return None
        if n == OPENAI:
            return 1.0
        if n in linked and n not in per:
            return None
        return float(per.get(n, 0.0)) / total

    rows = [
        {
            "company": n,
            "degree": len(neighbours[n] - {n}),
            "in_degree": int(g.in_degree(n)),
            "out_degree": int(g.out_degree(n)),
            "betweenness": float(between[n]),
            "openai_flows_usd": total if n == OPENAI else (
                None if n in linked and n not in per else float(per.get(n, 0.0))),
            "openai_share": share(n),
        }
        for n in nodes
    ]
    return pl.DataFrame(rows, schema=_NODE_SCHEMA, orient="row")


def ticker_companies(companies: pl.DataFrame) -> pl.DataFrame:
    """ticker -> company_id from ``ledger.api.companies`` (every listed class: GOOGL and GOOG)."""
    return (
        companies.select("company_id", "tickers")
        .explode("tickers")
        .drop_nulls("tickers")
        .select(pl.col("tickers").alias("ticker"), pl.col("company_id").alias("company"))
        .unique("ticker", keep="first")
    )


def _own_deals(ev: pl.DataFrame, current_deals: pl.DataFrame) -> pl.DataFrame:
    """event_id, known_on, deal_id, own_day: each dated event's own deals (its ``deal_ids``) and the day
    each is read on: ``known_on``, or the deal's official announcement date when that is later (a deal
    is in effect from its official date, so on the first-report basis the event's own deal is not yet
    in the ledger on its ``known_on``)."""
    official = current_deals.select("deal_id", pl.col("announced_date").alias("_official")).unique("deal_id")
    return (
        ev.filter(pl.col("known_on").is_not_null())
        .select("event_id", "known_on", pl.col("deal_ids").alias("deal_id"))
        .explode("deal_id")
        .join(official, on="deal_id", how="left")
        .with_columns(
            pl.when(pl.col("_official") > pl.col("known_on")).then(pl.col("_official"))
            .otherwise(pl.col("known_on")).alias("own_day")
        )
        .drop("_official")
    )


def _event_states(ev: pl.DataFrame, own: pl.DataFrame, flows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(event_id -> state, flows per state): the ledger state each event is described on.

    The state is the ledger in effect on ``known_on`` plus the event's own deals not yet in effect that
    day, read as they stand on their own official date (no other later deal enters: no look-ahead). An
    event whose own deals are all in effect on ``known_on`` (every event on the official basis) has the
    plain state of that day, named by its ISO date; the others a state named by the day and the added
    deal ids. ``flows``: the known ledger's flows (known_on, deal_id, ...), stand-in rule not applied.
    """
    day_name = pl.col("known_on").cast(pl.String)
    extra = own.filter(pl.col("own_day") > pl.col("known_on"))
    ext = (
        extra.sort("deal_id").group_by("event_id", maintain_order=True)
        .agg(pl.col("known_on").first(), pl.col("deal_id").alias("_added"))
        .with_columns(pl.concat_str([day_name, pl.col("_added").list.join("+")], separator="+").alias("state"))
    )
    states = ev.select("event_id", "known_on").join(ext.select("event_id", "state"), on="event_id", how="left").select(
        "event_id", pl.coalesce(pl.col("state"), day_name).alias("state"))
    plain = flows.with_columns(day_name.alias("state"))
    base = ext.select("state", "known_on").unique().join(flows, on="known_on", how="inner")
    added = (
        extra.join(ext.select("event_id", "state"), on="event_id")
        .select("state", "deal_id", "own_day").unique()
        .join(flows.rename({"known_on": "own_day"}), on=["own_day", "deal_id"], how="inner")
        .drop("own_day")
    )
    ext_flows = pl.concat([base.drop("known_on"), added], how="diagonal_relaxed")
    cols = [c for c in plain.columns if c != "known_on"]
    return states, pl.concat([plain.select(cols), ext_flows.select(cols)], how="vertical_relaxed")


def _announcement_attributes(own: pl.DataFrame, deals: pl.DataFrame) -> pl.DataFrame:
    """Per event: the attributes of its announcement, from every own deal as read on its own day.

    The money is summed over the announcement's contracts, each once at its largest report, by the rule
    the dollar section uses (:func:`analysis.dollar_outputs.announcement_amounts`; one home): the
    regression's amount and the dollar section's agree (AMZN 2026-02-27: $50bn up-to equity plus $100bn
    exact compute = $150bn). The lead deal, the one with the largest disclosed amount (ties and
    undisclosed amounts: the first deal id, the collapsed event's representative), gives the deal_type,
    deal_kind and the firm's role. ``amount_kind`` is the loosest kind summed (up_to, else estimate,
    else firm), undisclosed when nothing is disclosed; ``amount_partial``: some contract is undisclosed,
    the sum a lower bound.
    """
    from analysis.dollar_outputs import announcement_amounts

    rows = own.join(
        deals.select("known_on", "deal_id", "contract_id", "payers", "payees", "deal_type", "amount_kind",
                     pl.col("amount_usd").cast(pl.Float64)),
        left_on=["own_day", "deal_id"], right_on=["known_on", "deal_id"], how="inner",
    )
    lead = (
        rows.sort(["event_id", "amount_usd", "deal_id"], descending=[False, True, False], nulls_last=True)
        .group_by("event_id", maintain_order=True).first()
        .select("event_id", "payers", "payees", "deal_type")
    )
    # announcement_amounts groups by (ticker, t0): one group per event here (its id and known_on), and
    # each deal row keyed by event so that the same deal read on two events' days is not mixed up.
    key = pl.concat_str(["event_id", "deal_id"], separator="|").alias("deal_id")
    amounts = announcement_amounts(
        rows.select(key, "contract_id", "amount_usd", "amount_kind"),
        rows.select(key, pl.col("event_id").alias("ticker"), pl.col("known_on").alias("t0")),
    )
    kinds = pl.col("amount_kinds")
    summed_kind = (
        pl.when(pl.col("amount_usd").is_null()).then(pl.lit("undisclosed"))
        .when(kinds.list.contains("up_to")).then(pl.lit("up_to"))
        .when(kinds.list.contains("estimate")).then(pl.lit("estimate"))
        .otherwise(pl.lit("firm"))
    )
    return lead.join(
        amounts.select(pl.col("ticker").alias("event_id"), "amount_usd", summed_kind.alias("amount_kind"),
                       "amount_partial"),
        on="event_id", how="left",
    )


def graph_features(
    events: pl.DataFrame,
    known: KnownLedger,
    companies: pl.DataFrame,
    market_caps: pl.DataFrame | None = None,
    *,
    max_cycle_length: int = 6,
) -> pl.DataFrame:
    """Characteristics of each firm-event as known on its deal's announcement date (pure).

    ``events``: firm-events (:func:`analysis.events.firm_events`, optionally collapsed) with event_id,
    deal_id, ticker, t0, announced_date and optionally deal_ids. ``known`` must hold each announcement
    date, the day before it and the official date of any own deal announced after it
    (:func:`known_days`). ``market_caps``: ticker, t0, mcap_usd and optionally mcap_reason (the caller's
    market cap for that firm-event, e.g. at t0-1).
    """
    need = {"event_id", "deal_id", "ticker", "t0", "announced_date"}
    missing = sorted(need - set(events.columns))
    if missing:
        raise InputError(f"firm-events frame lacks column(s): {', '.join(missing)}", field=missing[0])
    ev = events.with_columns(
        (pl.col("deal_ids") if "deal_ids" in events.columns else pl.concat_list("deal_id")).alias("deal_ids"),
        pl.col("announced_date").alias("known_on"),
    )
    own = _own_deals(ev, known.current_deals)
    wanted = set(known_days(events, known.current_deals))
    have = set(known.days)
    if not wanted <= have:
        lack = sorted(wanted - have)
        raise InputError(f"the known ledger lacks day(s) {', '.join(map(str, lack[:5]))}; use known_days()")
    states, state_flows = _event_states(ev, own, known.flows)
    flows = with_stand_in_reports(state_flows, known.current_deals, state="state")
    hops, nodes = graph_measures(flows, max_cycle_length, node_days=set(states["state"].to_list()), state="state")

    # the event's own deals' edges (its same-day group's), in its state
    group_edges = (
        own.join(states, on="event_id")
        .select("event_id", "state", "deal_id")
        .join(flows.select("state", "deal_id", "payer", "payee"), on=["state", "deal_id"], how="inner")
        .filter(pl.col("payer") != pl.col("payee"))
        .select("event_id", "state", "payer", "payee")
        .unique()
    )
    through = group_edges.join(hops, on=["state", "payer", "payee"], how="inner")
    # the cycles of the ledger the day before known_on (a plain state: no own deal is in it)
    before = hops.select(
        pl.col("state").alias("_before"), "cycle", pl.lit(True).alias("_old")
    ).unique()
    prev = ev.select("event_id", (pl.col("known_on") - pl.duration(days=1)).cast(pl.Date).cast(pl.String).alias("_before"))
    cyc = (
        through.select("event_id", "cycle")
        .unique()
        .join(prev, on="event_id", how="left")
        .join(before, on=["_before", "cycle"], how="left")
        .group_by("event_id")
        .agg(
            pl.len().cast(pl.Int64).alias("n_round_trips"),
            pl.col("_old").is_null().any().alias("closes_round_trip"),
            pl.col("cycle").sort().alias("round_trips"),
        )
    )

    attrs = _announcement_attributes(own, known.deals).with_columns(
        pl.col("deal_type").replace_strict(DEAL_KINDS, default="other", return_dtype=pl.String).alias("deal_kind"),
    )
    tc = ticker_companies(companies)
    in_graph = nodes.with_columns(pl.lit(True).alias("_in_graph"))
    out = (
        ev.join(attrs, on="event_id", how="left")
        .join(tc, on="ticker", how="left")
        .with_columns(
            pl.when(pl.col("payers").list.contains(pl.col("company")))
            .then(pl.lit("payer"))
            .when(pl.col("payees").list.contains(pl.col("company")))
            .then(pl.lit("payee"))
            .otherwise(pl.lit("bystander"))
            .alias("role"),
            pl.when(pl.col("amount_usd") > 0).then(pl.col("amount_usd").log()).alias("log_amount"),
        )
        .join(cyc, on="event_id", how="left")
        .with_columns(
            pl.col("n_round_trips").fill_null(0),
            (pl.col("n_round_trips").fill_null(0) > 0).alias("on_round_trip"),
            pl.col("closes_round_trip").fill_null(False),
            pl.col("round_trips").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .join(states, on="event_id", how="left")
        .join(in_graph, on=["state", "company"], how="left")
        .with_columns(
            pl.col("degree", "in_degree", "out_degree").fill_null(0),
            pl.col("betweenness").fill_null(0.0),
            # a firm outside the committed graph has no OpenAI flows; one inside it keeps its null
            # (linked to OpenAI by undisclosed amounts only)
            pl.when(pl.col("_in_graph").is_null()).then(pl.lit(0.0)).otherwise(pl.col("openai_flows_usd"))
            .alias("openai_flows_usd"),
        )
    )
    # a firm outside the committed graph has no OpenAI flows: its share is 0 when OpenAI has any
    openai_total = nodes.filter(pl.col("company") == OPENAI).select("state", pl.col("openai_flows_usd").alias("_tot"))
    out = out.join(openai_total, on="state", how="left").with_columns(
        pl.when(pl.col("_tot") > 0)
        .then(pl.when(pl.col("_in_graph").is_null()).then(pl.lit(0.0)).otherwise(pl.col("openai_share")))
        .otherwise(None)
        .alias("openai_share")
    )
    out = _amount_to_mcap(out, market_caps)
    # rows of undated events keep nulls (they have no "known on" day)
    return out.select([pl.col(c).cast(t) for c, t in FEATURE_SCHEMA.items()]).sort("event_id")


def _amount_to_mcap(frame: pl.DataFrame, market_caps: pl.DataFrame | None) -> pl.DataFrame:
    if market_caps is None:
        return frame.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("amount_to_mcap"),
            pl.lit("no_market_cap_frame").alias("amount_to_mcap_reason"),
        )
    need = {"ticker", "t0", "mcap_usd"}
    missing = sorted(need - set(market_caps.columns))
    if missing:
        raise InputError(f"market-cap frame lacks column(s): {', '.join(missing)}", field=missing[0])
    caps = market_caps.select(
        "ticker",
        pl.col("t0").cast(pl.Date),
        pl.col("mcap_usd").cast(pl.Float64),
        (pl.col("mcap_reason").cast(pl.String) if "mcap_reason" in market_caps.columns else pl.lit(None, dtype=pl.String)).alias("_reason"),
    ).unique(["ticker", "t0"], keep="first")
    valid_cap = pl.col("mcap_usd").is_not_null() & pl.col("mcap_usd").is_finite() & (pl.col("mcap_usd") > 0)
    f = frame.join(caps, on=["ticker", "t0"], how="left")
    return f.with_columns(
        pl.when(pl.col("amount_usd").is_not_null() & valid_cap)
        .then(pl.col("amount_usd") / pl.col("mcap_usd"))
        .alias("amount_to_mcap"),
        pl.when(pl.col("amount_usd").is_null())
        .then(pl.lit("undisclosed_amount"))
        .when(valid_cap)
        .then(pl.lit("ok"))
        .otherwise(pl.coalesce(pl.col("_reason"), pl.lit("no_market_cap")))
        .alias("amount_to_mcap_reason"),
    ).drop("mcap_usd", "_reason")


def known_days(events: pl.DataFrame, deals: pl.DataFrame | None = None) -> list[dt.date]:
    """The days :func:`graph_features` needs: each announcement date, the day before it and, given the
    ledger's ``deals`` (official dates), the official date of every own deal of an event (``deal_ids``)
    announced after the event's date (the first-report basis moves an event before its deal)."""
    days = [d for d in events["announced_date"].drop_nulls().unique().to_list()]
    out = set(days) | {d - dt.timedelta(days=1) for d in days}
    if deals is not None:
        ev = events.with_columns(
            (pl.col("deal_ids") if "deal_ids" in events.columns else pl.concat_list("deal_id")).alias("deal_ids"),
            pl.col("announced_date").alias("known_on"),
        )
        out |= set(_own_deals(ev, deals)["own_day"].to_list())
    return sorted(out)


def firm_event_features(
    con: duckdb.DuckDBPyConnection,
    events: pl.DataFrame,
    *,
    market_caps: pl.DataFrame | None = None,
    recorded_by: dt.datetime | None = None,
    max_cycle_length: int = 6,
) -> pl.DataFrame:
    """:func:`graph_features` of ``events`` read from the ledger in ``con`` (the shell's entry point)."""
    _check_recorded_by(recorded_by)
    deals = ledger_api.deals(con, as_known_at=recorded_by)
    known = ledger_as_known(con, known_days(events, deals), recorded_by=recorded_by)
    return graph_features(
        events, known, ledger_api.companies(con), market_caps, max_cycle_length=max_cycle_length
    )


__all__ = [
    "DEAL_KINDS",
    "FEATURE_SCHEMA",
    "KnownLedger",
    "firm_event_features",
    "graph_features",
    "graph_measures",
    "known_days",
    "ledger_as_known",
    "cycle_hops",
    "ticker_companies",
    "with_stand_in_reports",
]
