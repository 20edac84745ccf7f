"""The report's and paper's dollar section: who created and destroyed market value, per deal and cycle.

Why a module: the HTML report, the paper tables and a notebook show the same dollar numbers, so the
frames are built once here, from the study's CAR frame with its dollar columns
(``analysis.dollar_columns``), the ledger's deals and flows. Builders are pure (frames in, frames and
matplotlib figures out); :func:`write_dollar_section` is the one function that writes files.

What is in it (window ``[-1,+1]`` unless told; every money column in US$ bn):

* ``movers``: the largest creators and destroyers of value (firm-events), with the CAR's p-value and
  the dollars moved per dollar committed in the announcement (all its contracts, each once).
* ``by_deal``: summed dollar CAR of each deal's listed parties, per committed dollar of the deal
  (``analysis.dollar.per_committed_dollar``; deals announced together share their parties' moves).
* ``by_cycle``: summed dollar CAR of each round-trip's member deals (``analysis.network.cycle_members``),
  every (ticker, t0) once, per dollar that can circulate on it (its bottleneck volume).
* ``tests``: the total and the mean dollar CAR per window with their p-values
  (``analysis.dollar_test``: z on the total, t(n-1) on the mean; firm-events taken as independent),
  and, when the frame has ``dollar_se_est``, the total with estimation-window dollar SEs (z);
  null for a window with a firm-event without a value, whose partial statistics and missing members
  are kept beside it.
* ``cumulative``: the running total of dollar CARs across the carousel by announcement day, with
  ``sqrt(sum se^2)`` for its standard error; null from the first day with a missing member on, the
  partial running total beside it.

Missing values stay missing with a reason (``dollar_reason``, ``ratio_reason``); a total over firm-events
with a missing member is reported as incomplete (``complete`` false), never as a smaller sum. A member
is missing when it has no market value or when the study did not estimate it (``excluded=``, the
study's ``EventStudyResult.excluded``: e.g. ``overlaps_earlier_event``); a deal all of whose firm-events
were excluded is still listed in ``by_deal``, without a value and with the reasons. A window with fewer
than :data:`MIN_TESTED` valued firm-events keeps its rows in ``tests`` with blank statistics and a
``reason``; the other frames do not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from analysis import plots
from analysis.dollar import (
    UNDATED,
    expand_to_deals,
    per_committed_dollar,
    per_cycle_volume,
    with_excluded,
)
from analysis.dollar_test import dollar_test
from analysis.network import build_graph, cycle_members, cycles, edges
from analysis.summary import Column, Summary, Table, fixed, integer, pvalue
from analysis.window import EventWindow, label_order
from core.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BN = 1e9
WINDOW = EventWindow(-1, 1).label
#: The event day alone: the movers are also ranked on it, since a multi-day window can hold other news.
DAY0 = EventWindow(0, 0).label
#: Fewer valued firm-events than this in a window: its tests are blank (the mean's t needs n - 1 > 0).
MIN_TESTED = 2
_NEEDED = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "p", "mcap_usd", "dollar_car",
           "dollar_se", "dollar_reason")
_INDEPENDENCE = ("Standard errors treat firm-events as independent (sqrt of the summed squared errors); "
                 "announcements on the same day are cross-correlated, so they understate the error then.")


def _check(dollars: pl.DataFrame) -> None:
    missing = [c for c in _NEEDED if c not in dollars.columns]
    if missing:
        raise InputError(f"dollars frame lacks column(s): {', '.join(missing)} "
                         "(pass analysis.dollar_columns.with_dollars(res.car, ...))", field=missing[0])


def announcement_amounts(deals: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Per (ticker, t0): the money committed in the announcement(s) that firm-event stands for.

    Every deal row announced with it (``events``: deal_id, ticker, t0), each contract once at its largest
    report; ``amount_usd`` null when none is disclosed, ``amount_partial`` true when some row is
    undisclosed (the sum is then a lower bound), ``amount_kinds`` the kinds summed.
    """
    contract = pl.col("contract_id") if "contract_id" in deals.columns else pl.col("deal_id")
    kind = pl.col("amount_kind") if "amount_kind" in deals.columns else pl.lit(None, pl.Utf8)
    d = deals.select("deal_id", pl.coalesce(contract, pl.col("deal_id")).alias("_contract"),
                     pl.col("amount_usd").cast(pl.Float64), kind.alias("amount_kind"))
    ev = events.select(pl.col("deal_id").cast(pl.Utf8), pl.col("ticker").cast(pl.Utf8),
                       pl.col("t0").cast(pl.Date)).drop_nulls().unique()
    per_contract = (
        ev.join(d, on="deal_id", how="left")
        .group_by("ticker", "t0", "_contract")
        .agg(pl.col("amount_usd").max(), pl.col("amount_kind").drop_nulls().first())
    )
    return (
        per_contract.group_by("ticker", "t0")
        .agg(
            pl.col("amount_usd").sum().alias("amount_usd"),
            pl.col("amount_usd").count().alias("_n_known"),
            pl.len().alias("_n"),
            pl.when(pl.col("amount_usd").is_not_null()).then(pl.col("amount_kind")).drop_nulls().unique()
            .sort().alias("amount_kinds"),
        )
        .with_columns(
            pl.when(pl.col("_n_known") > 0).then(pl.col("amount_usd")).alias("amount_usd"),
            ((pl.col("_n_known") > 0) & (pl.col("_n_known") < pl.col("_n"))).alias("amount_partial"),
        )
        .drop("_n_known", "_n")
        .sort("ticker", "t0")
    )


def movers(dollars: pl.DataFrame, amounts: pl.DataFrame, *, window: str = WINDOW, top: int = 10,
           beside: str = DAY0) -> pl.DataFrame:
    """The ``top`` largest creators (dollar CAR > 0) and destroyers (< 0) of value in ``window``.

    ``per_committed_dollar``: the firm's dollar CAR over the announcement's committed amount
    (:func:`announcement_amounts`), null when undisclosed; a lower-bound amount makes it an upper bound.
    ``beside_bn``/``beside_se_bn``/``beside_p``: the same firm-event's dollar CAR in window ``beside``
    (default the event day, [0,0]) and its window label ``beside_window``: a multi-day window can hold
    other news (AMZN 2025-11-03's [-1,+1] holds the reaction to its earnings of 10-30 after the close,
    data/events/NOTES.md), so the reader sees how much of the move falls on the announcement day.
    """
    w = dollars.filter((pl.col("window") == window) & pl.col("dollar_car").is_not_null())
    other = dollars.filter(pl.col("window") == beside).select(
        "event_id", (pl.col("dollar_car") / BN).alias("beside_bn"), (pl.col("dollar_se") / BN).alias("beside_se_bn"),
        pl.when(pl.col("dollar_car").is_not_null()).then(pl.col("p")).alias("beside_p"))
    w = w.join(amounts, on=["ticker", "t0"], how="left").join(other, on="event_id", how="left")
    key = ["dollar_car", "event_id"]
    creators = w.filter(pl.col("dollar_car") > 0).sort(key, descending=[True, False]).head(top)
    destroyers = w.filter(pl.col("dollar_car") < 0).sort(key, descending=[False, False]).head(top)
    both = pl.concat([creators.with_columns(pl.lit("creator").alias("side")),
                      destroyers.with_columns(pl.lit("destroyer").alias("side"))])
    amount_ok = pl.col("amount_usd").is_not_null() & (pl.col("amount_usd") > 0)
    return both.select(
        "side", "deal_id", "ticker", "t0", "window",
        (pl.col("dollar_car") / BN).alias("dollar_bn"),
        (pl.col("dollar_se") / BN).alias("se_bn"),
        "p", "car", (pl.col("mcap_usd") / BN).alias("mcap_bn"),
        (pl.col("amount_usd") / BN).alias("amount_bn"),
        pl.col("amount_partial").fill_null(False),
        pl.when(amount_ok).then(pl.col("dollar_car") / pl.col("amount_usd")).alias("per_committed_dollar"),
        pl.lit(beside).alias("beside_window"), "beside_bn", "beside_se_bn", "beside_p",
        "event_id",
    )


def deal_totals(dollars: pl.DataFrame, deals: pl.DataFrame, events: pl.DataFrame, *,
                window: str = WINDOW) -> pl.DataFrame:
    """Per deal with a firm-event: summed dollar CAR of its listed parties and per committed dollar.

    A deal whose firm-events the study excluded (rows of :func:`analysis.dollar.with_excluded` in
    ``dollars``) is listed without a value, its parties and the study's reasons in ``missing``."""
    expanded = expand_to_deals(dollars, events)
    out = per_committed_dollar(expanded, deals).filter(pl.col("window") == window)
    return out.select(
        "deal_id", "window",
        (pl.col("dollar_car") / BN).alias("dollar_bn"), (pl.col("dollar_se") / BN).alias("se_bn"), "p",
        "n", "complete", (pl.col("dollar_car_partial") / BN).alias("partial_bn"),
        (pl.col("amount_usd") / BN).alias("amount_bn"), "amount_kind", "per_committed_dollar",
        "per_committed_dollar_se", "ratio_reason", pl.col("tickers").list.join(" "),
        pl.col("missing").list.join("; "),
    ).sort(["dollar_bn", "deal_id"], descending=[True, False], nulls_last=True)


def cycle_totals(dollars: pl.DataFrame, flows: pl.DataFrame, events: pl.DataFrame, *,
                 window: str = WINDOW, cycle_frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per round-trip: summed dollar CAR of its member deals' listed parties, per circulating dollar.

    Every cycle of ``analysis.network.cycles`` is listed; one whose member deals have no firm-event
    (no listed party) has ``n = 0`` and reason ``no_firm_event``. A member firm-event the study excluded
    (rows of :func:`analysis.dollar.with_excluded` in ``dollars``) makes the total incomplete and is
    named in ``missing`` with the study's reason.
    """
    cyc = cycle_frame if cycle_frame is not None else cycles(build_graph(edges(flows)))
    members = cycle_members(flows, cyc)
    expanded = expand_to_deals(dollars, events)
    per = per_cycle_volume(expanded, members, cyc).filter(pl.col("window") == window)
    deal_lists = members.group_by("cycle").agg(pl.col("deal_id").sort().str.join(" ").alias("deals"))
    out = (
        cyc.select("cycle", "length", "volume_usd", "volume_is_firm", "volume_is_lower_bound")
        .join(per.drop("volume_usd", "volume_is_firm", "volume_is_lower_bound", strict=False),
              on="cycle", how="left")
        .join(deal_lists, on="cycle", how="left")
        .with_columns(
            pl.col("window").fill_null(window), pl.col("n").fill_null(0),
            pl.col("complete").fill_null(False),
            pl.when(pl.col("n").is_null() | (pl.col("n") == 0)).then(pl.lit("no_firm_event"))
            .otherwise(pl.col("ratio_reason")).alias("ratio_reason"),
        )
    )
    return out.select(
        "cycle", "window", (pl.col("dollar_car") / BN).alias("dollar_bn"),
        (pl.col("dollar_se") / BN).alias("se_bn"), "p", "n", "complete",
        (pl.col("dollar_car_partial") / BN).alias("partial_bn"),
        (pl.col("volume_usd") / BN).alias("volume_bn"), "volume_is_firm", "volume_is_lower_bound",
        "per_circulating_dollar", "per_circulating_dollar_se", "ratio_reason",
        pl.col("tickers").list.join(" "), pl.col("missing").list.join("; "), "deals",
    ).sort(["dollar_bn", "cycle"], descending=[True, False], nulls_last=True)


def _missing_members(frame: pl.DataFrame) -> pl.Expr:
    """'TICKER t0: reason' of the rows without a dollar CAR, sorted and joined (the excluded members)."""
    return (pl.when(pl.col("dollar_car").is_null())
            .then(pl.col("ticker") + pl.lit(" ") + pl.col("t0").cast(pl.Utf8).fill_null(UNDATED) + pl.lit(": ")
                  + pl.col("dollar_reason").fill_null("car_missing"))
            .drop_nulls().sort().str.join("; "))


def _missing_est(w: pl.DataFrame, est: str) -> str | None:
    """The firm-events left out of the estimation-window test: no dollar CAR, or no estimation SE."""
    reason = pl.coalesce(pl.col("dollar_reason"), pl.col("dollar_se_est_reason"), pl.lit("car_missing"))
    out = w.filter(pl.col("dollar_car").is_null() | pl.col(est).is_null()).select(
        (pl.col("ticker") + pl.lit(" ") + pl.col("t0").cast(pl.Utf8) + pl.lit(": ") + reason).sort().str.join("; "))
    text = out.item() if out.height else ""
    return text or None


def window_tests(dollars: pl.DataFrame) -> pl.DataFrame:
    """Per window: the total (z) and mean (t(n-1)) dollar CAR tests of ``analysis.dollar_test``.

    A window where a firm-event has no dollar CAR is incomplete: the total over the others is not the
    carousel's total, so ``coef_bn``/``se_bn``/``stat``/``p`` are null (``complete`` false) and the
    statistics over the valued firm-events alone are kept in ``partial_bn``, ``partial_se_bn``,
    ``partial_stat``, ``partial_p``, with the excluded members named in ``missing``. Firm-events without
    a t0 (the study's ``no_t0``) have no announcement day and are in no window's total.

    A window with fewer than :data:`MIN_TESTED` valued firm-events (a small ledger, tickers without
    share counts) keeps its rows with every statistic blank and ``reason`` saying why, instead of
    failing the section: the mean's t needs n >= 2.
    """
    est = "dollar_se_est" if "dollar_se_est" in dollars.columns else None
    dated = dollars.filter(pl.col("t0").is_not_null())
    rows = []
    for window in label_order(dated["window"].unique().to_list()):
        w = dated.filter(pl.col("window") == window)
        missing = w.select(_missing_members(w).alias("missing"))["missing"][0]
        n_valued = w.filter(pl.col("dollar_car").is_not_null() & pl.col("dollar_car").is_finite()
                            & pl.col("dollar_se").is_not_null() & pl.col("dollar_se").is_finite()
                            & pl.col("mcap_usd").is_not_null()).height
        if n_valued < MIN_TESTED:
            rows.append(_untested(window, w, n_valued, missing, est))
            continue
        res = dollar_test(w, market_value="mcap_usd", estimation_se=est)
        n = res.term_nobs()
        frame = res.to_frame().with_columns(
            pl.lit(window).alias("window"),
            pl.col("term").replace_strict(n, return_dtype=pl.Int64).alias("n"),
            (w.height - pl.col("term").replace_strict(n, return_dtype=pl.Int64)).alias("n_without_value"),
            pl.lit(res.value_weighted_car, pl.Float64).alias("value_weighted_car"),
            pl.when(pl.col("term") == "total_dollar_car_est")
            .then(pl.lit(_missing_est(w, est) if est else None, pl.Utf8))
            .otherwise(pl.lit(missing or None, pl.Utf8)).alias("missing"),
            pl.lit(None, pl.Utf8).alias("reason"))
        rows.append(frame.select(_TEST_COLUMNS))
    complete = pl.col("n_without_value") == 0
    return pl.concat(rows).select(
        "window", "term",
        pl.when(complete).then(pl.col("coef") / BN).alias("coef_bn"),
        pl.when(complete).then(pl.col("se") / BN).alias("se_bn"),
        pl.when(complete).then(pl.col("t")).alias("stat"), pl.when(complete).then(pl.col("p")).alias("p"),
        "dist", "n", "n_without_value", complete.alias("complete"),
        (pl.col("coef") / BN).alias("partial_bn"), (pl.col("se") / BN).alias("partial_se_bn"),
        pl.col("t").alias("partial_stat"), pl.col("p").alias("partial_p"),
        pl.when(complete).then(pl.col("value_weighted_car")).alias("value_weighted_car"), "missing", "reason")


_TEST_COLUMNS = ("term", "coef", "se", "t", "p", "dist", "window", "n", "n_without_value", "value_weighted_car",
                 "missing", "reason")


def _untested(window: str, w: pl.DataFrame, n_valued: int, missing: str | None, est: str | None) -> pl.DataFrame:
    """The test rows of a window with too few valued firm-events: statistics blank, the reason given."""
    terms = ["total_dollar_car", "mean_dollar_car", *(["total_dollar_car_est"] if est else [])]
    n_est = (w.filter(pl.col("dollar_car").is_not_null() & pl.col(est).is_not_null()).height if est else 0)
    ns = [n_valued, n_valued, *([n_est] if est else [])]
    reason = (f"{n_valued} firm-event(s) with a dollar CAR and SE in {window}: the tests need at least "
              f"{MIN_TESTED}")
    return pl.DataFrame({
        "term": terms, "coef": [None] * len(terms), "se": [None] * len(terms), "t": [None] * len(terms),
        "p": [None] * len(terms), "dist": [None] * len(terms), "window": [window] * len(terms), "n": ns,
        "n_without_value": [w.height - k for k in ns], "value_weighted_car": [None] * len(terms),
        "missing": [_missing_est(w, est) if t == "total_dollar_car_est" and est else (missing or None)
                    for t in terms],
        "reason": [reason] * len(terms),
    }, schema={"term": pl.Utf8, "coef": pl.Float64, "se": pl.Float64, "t": pl.Float64, "p": pl.Float64,
               "dist": pl.Utf8, "window": pl.Utf8, "n": pl.Int64, "n_without_value": pl.Int64,
               "value_weighted_car": pl.Float64, "missing": pl.Utf8, "reason": pl.Utf8})


def cumulative(dollars: pl.DataFrame, *, window: str = WINDOW) -> pl.DataFrame:
    """Running total of dollar CARs across the carousel by t0.

    A day with a firm-event without a dollar CAR is incomplete (``day_bn`` null, ``missing`` names
    it), and so is every running total from that day on (``cumulative_bn`` null, ``complete`` false):
    the sums over the valued firm-events alone are ``day_partial_bn`` and ``cumulative_partial_bn``
    (with ``cumulative_se_bn``, their sqrt(sum se^2)), never shown as the total. A firm-event the study
    excluded on a t0 is such a member (:func:`analysis.dollar.with_excluded`); one without a t0 has no
    day and is left out of the running total.
    """
    w = dollars.filter((pl.col("window") == window) & pl.col("t0").is_not_null())
    daily = w.group_by("t0").agg(
        pl.col("dollar_car").sum().alias("day_usd"), (pl.col("dollar_se") ** 2).sum().alias("_var"),
        pl.col("dollar_car").count().alias("n_valued"), pl.col("dollar_car").null_count().alias("n_missing"),
        _missing_members(w).alias("missing"),
    ).sort("t0")
    complete = (pl.col("n_missing").cum_sum() == 0)
    return daily.select(
        "t0", pl.lit(window).alias("window"),
        pl.when(pl.col("n_missing") == 0).then(pl.col("day_usd") / BN).alias("day_bn"),
        pl.when(pl.col("n_valued") > 0).then(pl.col("day_usd") / BN).alias("day_partial_bn"),
        pl.when(complete).then(pl.col("day_usd").cum_sum() / BN).alias("cumulative_bn"),
        (pl.col("day_usd").cum_sum() / BN).alias("cumulative_partial_bn"),
        (pl.col("_var").cum_sum().sqrt() / BN).alias("cumulative_se_bn"), "n_valued", "n_missing",
        complete.alias("complete"), pl.when(pl.col("missing") != "").then(pl.col("missing")).alias("missing"))


def movers_figure(m: pl.DataFrame, window: str = WINDOW) -> Figure:
    """Horizontal bars: the largest creators (top) and destroyers (bottom), US$ bn, 95% intervals."""
    from analysis.figure_files import plt, style

    d = pl.concat([m.filter(side="destroyer").sort("dollar_bn", descending=True),
                   m.filter(side="creator").sort("dollar_bn")])
    labels = [f"{r['ticker']} {r['t0']}" for r in d.iter_rows(named=True)]
    y = np.arange(d.height)
    with style():
        fig, ax = plt.subplots(figsize=(5.5, 0.22 * max(d.height, 4) + 1.0))
        colors = ["#2e7d32" if v > 0 else "#c62828" for v in d["dollar_bn"].to_list()]
        ax.barh(y, d["dollar_bn"].to_numpy(), xerr=plots.Z95 * d["se_bn"].to_numpy(), color=colors,
                error_kw={"elinewidth": 0.6, "capsize": 1.5})
        ax.set_yticks(y, labels)
        ax.axvline(0, color="black", lw=0.6)
        # two lines: one ran off the 5.5-inch figure
        ax.set_xlabel(f"market value moved, CAR{window} x value before the window\n(US$ bn; bars: 95% interval)")
        ax.set_title("Largest creators and destroyers of market value")
        fig.tight_layout()
    return fig


def cumulative_figure(c: pl.DataFrame, window: str = WINDOW) -> Figure:
    """The running dollar CAR across the carousel, with a 95% band (independent firm-events)."""
    from analysis.figure_files import plt, style

    # From the first announcement with a value: earlier ones (MSFT 2019, 2023: no count) add nothing.
    valued = c.filter(pl.col("n_valued").cum_sum() > 0)
    c = valued if valued.height else c
    with style():
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        t = c["t0"].to_list()
        # The valued firm-events only (the complete total is null from the first gap on); hollow
        # markers on the days that lack a member, and the count left out in the title.
        v, s = c["cumulative_partial_bn"].to_numpy(), c["cumulative_se_bn"].to_numpy()
        ax.fill_between(t, v - plots.Z95 * s, v + plots.Z95 * s, step="post", color="#90a4ae", alpha=0.35,
                        lw=0)
        ax.step(t, v, where="post", color="#263238")
        gap = (c["n_missing"] > 0).to_numpy()
        ax.plot([d for d, g in zip(t, gap, strict=True) if not g], v[~gap], "o", color="#263238", ms=2.0)
        ax.plot([d for d, g in zip(t, gap, strict=True) if g], v[gap], "o", mfc="white", mec="#c62828",
                ms=3.0, label="day with a firm-event without a value")
        ax.axhline(0, color="black", lw=0.6)
        missing = int(c["n_missing"].sum())
        # Two short lines each: the one-line versions ran off the 6-inch figure.
        ax.set_ylabel(f"cumulative dollar CAR{window}\nvalued firm-events (US$ bn)")
        ax.set_title(f"Market value moved across the carousel\npartial: {missing} firm-events without a "
                     "value left out" if missing else "Market value moved across the carousel")
        if gap.any():
            ax.legend(loc="best", fontsize="small", frameon=False)
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig


def dollar_section(dollars: pl.DataFrame, deals: pl.DataFrame, flows: pl.DataFrame, *,
                   events: pl.DataFrame | None = None, window: str = WINDOW, top: int = 10,
                   cycle_frame: pl.DataFrame | None = None, excluded: pl.DataFrame | None = None
                   ) -> tuple[dict[str, pl.DataFrame], dict[str, Figure]]:
    """Every frame and figure of the dollar section (the one call the report and paper need).

    Args:
        dollars: the study's CAR frame with the dollar columns (``analysis.dollar_columns``), all windows.
        deals: ``ledger.api.deals``; flows: ``ledger.api.flows``.
        events: the study's uncollapsed firm-events (deal_id, ticker, t0); default
            ``analysis.events.firm_events(deals)`` (the study's default t0 rule).
        window: the window of the tables and figures (the tests cover every window).
        top: creators and destroyers each.
        cycle_frame: ``FlowAnalysis.cycles`` when already computed.
        excluded: the study's ``EventStudyResult.excluded`` (event_id, deal_id, ticker, t0, reason): its
            firm-events are members without a value of every total (by deal, cycle, window, day), named
            with the study's reason. None: the totals cover ``dollars``' firm-events only, and a deal
            whose firm-events were all excluded is not listed.

    Returns:
        (frames: movers, movers_day0 (ranked on [0,0]; absent when ``window`` is [0,0] or the frame has
        no [0,0]), by_deal, by_cycle, tests, cumulative; figures: dollar_movers, dollar_cumulative).
    """
    frames = dollar_frames(dollars, deals, flows, events=events, window=window, top=top,
                           cycle_frame=cycle_frame, excluded=excluded)
    return frames, {name: build(frames[frame], window) for name, (build, frame) in FIGURES.items()}


def dollar_frames(dollars: pl.DataFrame, deals: pl.DataFrame, flows: pl.DataFrame, *,
                  events: pl.DataFrame | None = None, window: str = WINDOW, top: int = 10,
                  cycle_frame: pl.DataFrame | None = None, excluded: pl.DataFrame | None = None
                  ) -> dict[str, pl.DataFrame]:
    """The frames of :func:`dollar_section` without drawing its figures: each figure is
    ``build(frames[frame], window)`` for ``(build, frame)`` in :data:`FIGURES`, which the main job hands
    to a figure worker (carousel.figure_pool)."""
    _check(dollars)
    windows = set(dollars["window"].to_list())
    if window not in windows:
        raise InputError(f"window {window!r} is not in the dollars frame", field="window")
    if excluded is not None:
        need = [c for c in ("event_id", "deal_id", "ticker", "t0", "reason") if c not in excluded.columns]
        if need:
            raise InputError(f"excluded frame lacks column(s): {', '.join(need)} (pass the study's "
                             "EventStudyResult.excluded)", field=need[0])
        dollars = with_excluded(dollars, excluded)
    if events is None:
        from analysis.events import firm_events

        events = firm_events(deals)
    amounts = announcement_amounts(deals, events)
    day0 = ({"movers_day0": movers(dollars, amounts, window=DAY0, top=top, beside=window)}
            if window != DAY0 and DAY0 in windows else {})
    return {
        "movers": movers(dollars, amounts, window=window, top=top),
        **day0,
        "by_deal": deal_totals(dollars, deals, events, window=window),
        "by_cycle": cycle_totals(dollars, flows, events, window=window, cycle_frame=cycle_frame),
        "tests": window_tests(dollars),
        "cumulative": cumulative(dollars, window=window),
    }


#: The section's figures: file name -> (builder, the frame of :func:`dollar_frames` it draws).
FIGURES: dict[str, tuple[Callable[[pl.DataFrame, str], Figure], str]] = {
    "dollar_movers": (movers_figure, "movers"),
    "dollar_cumulative": (cumulative_figure, "cumulative"),
}


_BN1, _RATIO = fixed(1, thousands=True), fixed(3)


def summaries(frames: dict[str, pl.DataFrame]) -> dict[str, Summary]:
    """The section's tables as :class:`analysis.summary.Summary` (text, Markdown, LaTeX, HTML, CSV)."""
    m, d, c, t = frames["movers"], frames["by_deal"], frames["by_cycle"], frames["tests"]
    window = m["window"][0] if m.height else WINDOW
    ratio_note = ("Per committed dollar: dollar CAR over the announced amount (headline, each contract "
                  "once); an 'up to' amount makes it a lower bound, an estimate an estimate.")
    movers_tables: dict[str, Summary] = {name: _movers_summary(frames[name], ratio_note)
                     for name in ("movers", "movers_day0") if name in frames}
    excluded = ("A deal whose firm-events the study excluded (e.g. overlaps_earlier_event: its window "
                "overlaps an earlier announcement of the same firm) is listed without a value; its "
                "members and the reasons are under 'Without a value'.")
    return {
        **movers_tables,
        "by_deal": Summary.of(Table(d, (
            Column("deal_id", "Deal"), Column("tickers", "Listed parties"),
            Column("dollar_bn", "US$ bn moved", _BN1, stars="p"), Column("se_bn", "SE", _BN1),
            Column("amount_bn", "Committed US$ bn", _BN1), Column("per_committed_dollar", "Per committed $", _RATIO),
            Column("ratio_reason", "Note"), Column("missing", "Without a value"))),
            title=f"Market value moved per deal, CAR{window}", notes=[ratio_note, _INDEPENDENCE, excluded]),
        "by_cycle": Summary.of(Table(c, (
            Column("cycle", "Round-trip"), Column("dollar_bn", "US$ bn moved", _BN1, stars="p"),
            Column("se_bn", "SE", _BN1), Column("n", "Firm-events", integer()),
            Column("volume_bn", "Circulating US$ bn", _BN1),
            Column("per_circulating_dollar", "Per circulating $", _RATIO), Column("ratio_reason", "Note"),
            Column("missing", "Without a value"))),
            title=f"Market value moved per round-trip, CAR{window}",
            notes=["Circulating: the bottleneck volume of the cycle (its smallest edge).", _INDEPENDENCE]),
        "tests": Summary.of(Table(t, (
            # The statistic first: a LaTeX row starting with "[" after "\\" would read as its argument.
            Column("term", "Statistic"), Column("window", "Window"), Column("coef_bn", "US$ bn (all)", _BN1),
            Column("partial_bn", "US$ bn (valued)", _BN1), Column("partial_se_bn", "SE", _BN1),
            Column("partial_stat", "z / t", fixed(2)), Column("partial_p", "p", pvalue(4)),
            Column("dist", "Reference"), Column("n", "N valued", integer()),
            Column("n_without_value", "Without a value", integer()))),
            title="Total (z) and mean (t) dollar CAR per window"
            + ("" if t["complete"].all() else ": incomplete, over the valued firm-events only"),
            notes=[_INDEPENDENCE, *_untested_notes(t), *_excluded_notes(t), *estimation_notes(t)]),
    }


def _untested_notes(tests: pl.DataFrame) -> list[str]:
    """One note per window whose statistics are blank for too few valued firm-events."""
    per = tests.filter(pl.col("reason").is_not_null()).unique("window", maintain_order=True)
    return [f"{r['window']}: statistics blank, {r['reason']}." for r in per.iter_rows(named=True)]


def _movers_summary(m: pl.DataFrame, ratio_note: str) -> Summary:
    """The creators-and-destroyers table of :func:`movers`, ranked on its window, the other beside."""
    window = m["window"][0] if m.height else WINDOW
    beside = m["beside_window"][0] if m.height else DAY0
    news = ("A multi-day window can hold other news: AMZN 2025-11-03's [-1,+1] holds the reaction to its "
            "earnings of 10-30 after the close (day -1), which the [0,0] column leaves out; the event day "
            "itself can hold earnings released the evening before (ORCL 2025-09-10, AVGO 2025-09-05). "
            "data/events/NOTES.md lists the known confounders per announcement; no column flags them.")
    return Summary.of(Table(m, (
        Column("side", "Side"), Column("deal_id", "Deal"), Column("ticker", "Firm"), Column("t0", "t0"),
        Column("dollar_bn", f"US$ bn {window}", _BN1, stars="p"), Column("se_bn", "SE", _BN1),
        Column("beside_bn", f"US$ bn {beside}", _BN1, stars="beside_p"),
        Column("per_committed_dollar", "Per committed $", _RATIO))),
        title=f"Largest creators and destroyers of market value, CAR{window} x value before the window",
        notes=[ratio_note, f"Ranked on {window}; {beside}: the same firm-event's dollar CAR in {beside}.", news,
               "* p<0.10, ** p<0.05, *** p<0.01 (the CAR's own test)."])


def _excluded_notes(tests: pl.DataFrame) -> list[str]:
    """The firm-events left out of the incomplete windows (the total over all is blank): one note per
    distinct list, naming its windows (the same firm-events usually lack a value in every window, and four
    copies of a long list would not fit a page)."""
    per = tests.filter(~pl.col("complete") & (pl.col("term") == "total_dollar_car"))
    seen: dict[tuple[int, str], list[str]] = {}
    for r in per.iter_rows(named=True):
        seen.setdefault((r["n_without_value"], r["missing"] or ""), []).append(r["window"])
    return [f"{', '.join(windows)}: the total over all firm-events is unknown (blank); {n} left out (no "
            f"market value, or not estimated by the study): {missing}." for (n, missing), windows in seen.items()]


def estimation_notes(tests: pl.DataFrame) -> list[str]:
    """What ``total_dollar_car_est`` is, and the firm-events it also leaves out (one note per distinct list)."""
    est = tests.filter(pl.col("term") == "total_dollar_car_est")
    if est.height == 0:
        return []
    notes = ["total_dollar_car_est: the same total with each SE from the estimation window's dollar abnormal "
             "returns V(s-1) x AR(s) (the approach attributed to Saha and Ferrell 2011; not checked against "
             "their paper, whose formula could not be obtained), z against N(0,1); a firm-event needs a "
             "market value on every estimation day."]
    main = dict(tests.filter(pl.col("term") == "total_dollar_car").select("window", "missing").iter_rows())
    seen: dict[str, list[str]] = {}
    for r in est.iter_rows(named=True):
        base = set((main.get(r["window"]) or "").split("; ")) - {""}
        left = "; ".join(m for m in (r["missing"] or "").split("; ") if m and m not in base)
        seen.setdefault(left, []).append(r["window"])
    for left, windows in seen.items():
        if left:
            notes.append(f"{', '.join(windows)}: total_dollar_car_est also leaves out {left}.")
    return notes


def write_dollar_section(frames: dict[str, pl.DataFrame], figures: dict[str, Figure], tables: Path,
                         figure_dir: Path) -> list[Path]:
    """Write each table as ``dollar_<name>.{csv,md,tex}`` and each figure as PDF/SVG/PNG; the paths."""
    tables.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for name, s in summaries(frames).items():
        base = tables / f"dollar_{name}"
        for ext, text in (("csv", s.to_csv(float_precision=6)), ("md", s.to_markdown()),
                          ("tex", s.to_latex(label=f"tab:dollar_{name}"))):
            path = base.with_suffix(f".{ext}")
            path.write_text(text, encoding="utf-8")
            out.append(path)
    cum = tables / "dollar_cumulative.csv"
    frames["cumulative"].write_csv(cum, float_precision=6)
    out.append(cum)
    for name, fig in figures.items():
        out += plots.save(fig, figure_dir, name)
    return out
