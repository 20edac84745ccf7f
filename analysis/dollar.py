"""Dollar abnormal value: how much market value an announcement created or destroyed (pure).

``dollar_car = mcap_usd x CAR`` and its standard error ``mcap_usd x se``, the market value taken at the
close before the window's first day (``mcap_date``: t0-1 for windows starting at 0, t0-2 for [-1,+1],
t0-6 for [-5,+5]; ``market.mcap.market_caps_before``): the abnormal return applies to the value the
equity had before the window's first move. The market value is treated as known (its error is the count's
rounding, under 0.2 %, far below a CAR's), so t and p of a firm-event's dollar CAR are the CAR's own.

Where the value cannot be computed the row keeps a null ``dollar_car`` and a ``dollar_reason`` (the
market-cap reasons ``price_missing``, ``count_missing``, ``count_stale``, ``class_price_missing``,
``fx_missing``; ``count_changed_in_gap`` when the count moved by more than
:data:`COUNT_CHANGE_LIMIT` before its next filing; ``mcap_missing`` when ``mcaps`` has no row for the firm-event; ``car_missing`` when the
engine has no CAR for the window); nothing is filled.

Aggregates (per deal, company, round-trip cycle) sum dollar CARs with ``se = sqrt(sum se_i^2)``, i.e.
they treat the firm-events' abnormal returns as independent, as the cross-sectional t and Patell tests
do; announcements on the same day are cross-correlated and this understates the error then (see
Kolari-Pynnonen in ``analysis.significance`` for the size of that effect on returns). An aggregate with
a member that has no dollar CAR is not summed silently: ``dollar_car`` is null, ``dollar_car_partial``
holds the sum of the members that have one, and ``missing`` lists the others with their reasons. The
firm-events the study did not estimate are members too (:func:`with_excluded`, ``excluded=``): their
move is in no CAR, so a total over them is incomplete, with the study's reason.
Their p-values are two-sided normal (sums over firms; the firm-level t's have ~200 degrees of freedom).

Entry point: :func:`dollar_abnormal_value` -> :class:`DollarResult` (``by_deal``, ``by_company``,
``by_cycle``, ``per_committed_dollar``, ``per_cycle_volume``); :func:`expand_to_deals` gives every deal of
a same-day announcement its firm-events before a per-deal or per-cycle total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri

from analysis.panel import ARPanel
from analysis.window import EventWindow
from core.errors import InputError
from market import mcap

_CAR_COLUMNS = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se")
_MCAP_KEEP = ["mcap_date", "price_date", "as_of_date", "stale_days", "shares", "close", "mcap_local",
              "currency", "mcap_usd", "mcap_method", "mcap_reason", "next_count_change", "next_as_of_date",
              "count_known_date", "count_known_after_t0"]

#: A count that moves by more than this before the next filing (|next_count_change|) while the valuation
#: day lies before that filing's as-of date is not used: the shares may have been issued (INTC +8.98 %
#: between its 2025-07-18 and 2025-10-31 counts) before the valuation day or inside the window, and
#: nothing says which. Quarterly buyback or vesting moves of the shipped large caps stay under 1 %.
COUNT_CHANGE_LIMIT = 0.02


def _require(frame: pl.DataFrame, name: str, cols: tuple[str, ...] | list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} frame lacks column(s): {', '.join(missing)}")


def dollar_car(car: pl.DataFrame, mcaps: pl.DataFrame) -> pl.DataFrame:
    """Per firm-event x window: the CAR frame plus mcap_usd, mcap_date, dollar_car, dollar_se, dollar_reason.

    Args:
        car: ``EventStudyResult.car`` (event_id, deal_id, ticker, t0, window, car, se, ...).
        mcaps: ``market.mcap.market_caps_before`` over the distinct (ticker, t0, window) of ``car``,
            valued at the close before each window's first day (a frame without ``window``: one value
            per (ticker, t0) for every window).
    """
    _require(car, "car", _CAR_COLUMNS)
    _require(mcaps, "mcaps", ["ticker", "t0", "mcap_usd", "mcap_reason"])
    key = ["ticker", "t0", "window"] if "window" in mcaps.columns else ["ticker", "t0"]
    if "mcap_date" not in mcaps.columns and "price_date" in mcaps.columns:
        mcaps = mcaps.with_columns(pl.col("price_date").alias("mcap_date"))
    keep = [c for c in _MCAP_KEEP if c in mcaps.columns]
    m = mcaps.select(pl.col("ticker").cast(pl.Utf8), pl.col("t0").cast(pl.Date),
                     *(["window"] if "window" in key else []), *keep).unique(key, keep="first",
                                                                              maintain_order=True)
    out = car.drop([c for c in keep if c in car.columns]).join(m, on=key, how="left")
    moved = pl.lit(False)
    if {"next_count_change", "next_as_of_date", "mcap_date"} <= set(out.columns):
        moved = ((pl.col("next_count_change").abs() > COUNT_CHANGE_LIMIT)
                 & (pl.col("next_as_of_date") > pl.col("mcap_date"))).fill_null(False)
    reason = (
        pl.when(pl.col("mcap_reason").is_not_null()).then(pl.col("mcap_reason"))
        .when(pl.col("mcap_usd").is_null()).then(pl.lit("mcap_missing"))
        .when(moved).then(pl.lit("count_changed_in_gap"))
        .when(pl.col("car").is_null() | pl.col("se").is_null()).then(pl.lit("car_missing"))
    )
    out = out.with_columns(reason.alias("dollar_reason"))
    ok = pl.col("dollar_reason").is_null()
    return out.with_columns(
        pl.when(ok).then(pl.col("mcap_usd") * pl.col("car")).alias("dollar_car"),
        pl.when(ok).then(pl.col("mcap_usd") * pl.col("se")).alias("dollar_se"),
    )


#: A firm-event without an announcement day (the study's ``no_t0``) in a member's name: "CRWV undated".
UNDATED = "undated"


def with_excluded(frame: pl.DataFrame, excluded: pl.DataFrame) -> pl.DataFrame:
    """``frame`` plus, for every window of it, one row per firm-event the study did not estimate.

    A total over a deal, cycle, company or the whole carousel must not read as complete when one of its
    firm-events was dropped by the study (``EventStudyResult.excluded``: ``overlaps_earlier_event``,
    ``insufficient_estimation_obs``, ``no_t0``, ...): such a firm-event has no CAR, so its move is in no
    sum. Its rows carry null CAR and dollar columns and the study's reason as ``dollar_reason``, so
    every aggregate counts it as a member without a value and names it (ORCL-AMD 2025-10-14, whose AMD
    and ORCL firm-events overlap earlier ones of the same tickers, makes the AMD -> OpenAI -> Oracle
    round-trip incomplete instead of a smaller complete sum). A firm-event already in ``frame`` is not
    added again.

    Args:
        frame: the dollar frame (``DollarResult.frame`` or ``analysis.dollar_columns.with_dollars``).
        excluded: ``EventStudyResult.excluded`` (event_id, deal_id, ticker, t0, reason).
    """
    _require(excluded, "excluded", ["event_id", "deal_id", "ticker", "t0", "reason"])
    windows = frame.select(pl.col("window").cast(pl.Utf8)).unique().sort("window")
    ex = (excluded.select(pl.col("event_id").cast(pl.Utf8), pl.col("deal_id").cast(pl.Utf8),
                          pl.col("ticker").cast(pl.Utf8), pl.col("t0").cast(pl.Date),
                          pl.col("reason").cast(pl.Utf8).fill_null("excluded").alias("dollar_reason"))
          .join(frame.select(pl.col("event_id").cast(pl.Utf8)).unique(), on="event_id", how="anti")
          .join(windows, how="cross"))
    if ex.height == 0:
        return frame
    schema = frame.schema
    # the frame's own dtypes, except an all-null column (dtype Null), which takes the added rows' dtype
    rows = ex.select(*((pl.col(c) if schema[c] == pl.Null else pl.col(c).cast(schema[c])) if c in ex.columns
                       else pl.lit(None, schema[c]).alias(c) for c in frame.columns))
    return pl.concat([frame, rows], how="vertical_relaxed")


def _member() -> pl.Expr:
    """``TICKER t0`` naming a firm-event in a ``missing`` list (``TICKER undated`` without a t0)."""
    return pl.col("ticker") + pl.lit(" ") + pl.col("t0").cast(pl.Utf8).fill_null(UNDATED)


def _dedupe(frame: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """One row per (group, ticker, t0, window): two deals announced the same day are one market move.

    Two undated firm-events (no t0) are not the same move: each keeps its row."""
    move = pl.col("t0").cast(pl.Utf8)
    if "event_id" in frame.columns:
        move = pl.coalesce(move, pl.col("event_id"))
    return (frame.with_columns(move.alias("_move")).sort("deal_id")
            .unique([*group, "ticker", "_move", "window"], keep="first", maintain_order=True).drop("_move"))


def _sum(frame: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """Sum of dollar CARs per group and window, null unless every member has one."""
    has = pl.col("dollar_car").is_not_null()
    agg = frame.group_by([*group, "window"], maintain_order=True).agg(
        pl.col("dollar_car").sum().alias("dollar_car_partial"),
        (pl.col("dollar_se") ** 2).sum().sqrt().alias("_se_partial"),
        pl.len().alias("n"),
        has.sum().alias("n_valued"),
        pl.when(~has).then(_member() + pl.lit(": ") + pl.col("dollar_reason").fill_null("car_missing"))
        .drop_nulls().sort().alias("missing"),
        pl.col("ticker").unique().sort().alias("tickers"),
    )
    complete = pl.col("n_valued") == pl.col("n")
    z = pl.col("dollar_car") / pl.col("dollar_se")
    out = agg.with_columns(
        pl.when(complete).then(pl.col("dollar_car_partial")).alias("dollar_car"),
        pl.when(complete).then(pl.col("_se_partial")).alias("dollar_se"),
        complete.alias("complete"),
        pl.when(pl.col("n_valued") > 0).then(pl.col("dollar_car_partial")).alias("dollar_car_partial"),
    ).with_columns(z.alias("t"))
    p = 2.0 * ndtr(-np.abs(out["t"].to_numpy().astype(float)))
    out = out.with_columns(pl.Series("p", p, dtype=pl.Float64).fill_nan(None))
    return out.drop("_se_partial").select(
        *group, "window", "dollar_car", "dollar_se", "t", "p", "n", "n_valued", "complete",
        "dollar_car_partial", "tickers", "missing").sort([*group, "window"])


def by_deal(frame: pl.DataFrame) -> pl.DataFrame:
    """Summed dollar CAR of each deal's listed parties, per window."""
    return _sum(frame, ["deal_id"])


def by_company(frame: pl.DataFrame, companies: pl.DataFrame) -> pl.DataFrame:
    """Summed dollar CAR per company over all its announcements, per window.

    ``companies``: ``ledger.api.companies`` (company_id, tickers). A ticker no company lists is kept under
    its own name as company_id. The same (ticker, t0) in two deals counts once.
    """
    _require(companies, "companies", ["company_id", "tickers"])
    tick = companies.select("company_id", pl.col("tickers").cast(pl.List(pl.Utf8))).explode(
        "tickers").drop_nulls("tickers").rename({"tickers": "ticker"}).unique("ticker", keep="first")
    f = frame.join(tick, on="ticker", how="left").with_columns(
        pl.coalesce("company_id", "ticker").alias("company_id"))
    return _sum(_dedupe(f, ["company_id"]), ["company_id"])


def by_cycle(frame: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """Summed dollar CAR of the deals of each round-trip (``members``: cycle, deal_id), per window.

    A cycle member deal without firm-events (no listed party) adds nothing; the same (ticker, t0) in two
    member deals counts once. A member whose firm-event the study excluded is missing only if ``frame``
    holds its row (:func:`with_excluded`).
    """
    _require(members, "members", ["cycle", "deal_id"])
    f = frame.join(members.select("cycle", "deal_id").unique(), on="deal_id", how="inner")
    return _sum(_dedupe(f, ["cycle"]), ["cycle"])


def expand_to_deals(frame: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """One row per deal a firm-event stands for: the study collapses deals announced together.

    The study keeps one firm-event per (ticker, t0) under the first deal id of the announcement
    (``analysis.events.collapse_same_day``: AMD's chips deal and its warrant are one move), so a
    member deal of a round-trip other than that first one would find no row by its own id. Joining on
    (ticker, t0) with the uncollapsed firm-events gives each deal its listed parties' moves.

    Args:
        frame: ``DollarResult.frame`` (deal_id, ticker, t0, window, dollar_car, ...).
        events: uncollapsed firm-events (``analysis.events.firm_events(deals)``: deal_id, ticker, t0).

    Returns:
        ``frame`` with ``deal_id`` replaced by each deal of the announcement and ``study_deal_id`` the
        id the study reported; a row whose (ticker, t0) no event has is kept as it is. A deal's totals
        then include a move it shares with the deals announced with it, so totals over several deals
        must deduplicate (ticker, t0), as :func:`by_cycle` and :func:`by_company` do.
    """
    _require(events, "events", ["deal_id", "ticker", "t0"])
    ev = events.select(pl.col("deal_id").cast(pl.Utf8).alias("_deal"), pl.col("ticker").cast(pl.Utf8),
                       pl.col("t0").cast(pl.Date)).drop_nulls().unique()
    out = frame.rename({"deal_id": "study_deal_id"}).join(ev, on=["ticker", "t0"], how="left")
    return out.with_columns(pl.coalesce("_deal", "study_deal_id").alias("deal_id")).drop("_deal").select(
        "deal_id", *[c for c in frame.columns if c != "deal_id"], "study_deal_id"
    ).sort("deal_id", "event_id", "window")


def per_cycle_volume(frame: pl.DataFrame, members: pl.DataFrame, cycles: pl.DataFrame) -> pl.DataFrame:
    """Value a round-trip moved per dollar that can circulate on it (its bottleneck volume).

    ``by_cycle`` joined with ``analysis.network.cycles`` (cycle, volume_usd, volume_is_firm,
    volume_is_lower_bound, volume_upper_bound_usd). ``ratio_reason``: ``volume_undisclosed`` (an edge
    of the cycle is undisclosed, so the bottleneck is unknown; never divided by a bound),
    ``parties_missing`` (a member's move has no dollar CAR), or null. A volume that is a lower bound
    makes the ratio an upper bound; one that is not firm (an 'up to' amount) makes it approximate:
    both flags are kept beside the ratio.
    """
    _require(cycles, "cycles", ["cycle", "volume_usd"])
    flags = [c for c in ("volume_upper_bound_usd", "volume_is_firm", "volume_is_lower_bound")
             if c in cycles.columns]
    out = by_cycle(frame, members).join(cycles.select("cycle", "volume_usd", *flags), on="cycle", how="left")
    reason = (
        pl.when(pl.col("volume_usd").is_null() | (pl.col("volume_usd") <= 0)).then(pl.lit("volume_undisclosed"))
        .when(~pl.col("complete")).then(pl.lit("parties_missing"))
    )
    out = out.with_columns(reason.alias("ratio_reason"))
    ok = pl.col("ratio_reason").is_null()
    return out.with_columns(
        pl.when(ok).then(pl.col("dollar_car") / pl.col("volume_usd")).alias("per_circulating_dollar"),
        pl.when(ok).then(pl.col("dollar_se") / pl.col("volume_usd")).alias("per_circulating_dollar_se"),
    )


def per_committed_dollar(frame: pl.DataFrame, deals: pl.DataFrame) -> pl.DataFrame:
    """Value moved per committed dollar: a deal's summed dollar CAR over its amount_usd.

    ``deals``: ``ledger.api.deals`` (deal_id, amount_usd, amount_kind). ``ratio_reason`` is
    ``amount_undisclosed`` (amount NULL, never taken as 0), ``parties_missing`` (a party without a
    dollar CAR) or null. ``amount_kind`` is kept: an 'up_to' amount makes the ratio a lower bound.
    """
    _require(deals, "deals", ["deal_id", "amount_usd"])
    kind = pl.col("amount_kind") if "amount_kind" in deals.columns else pl.lit(None, pl.Utf8)
    d = deals.select("deal_id", pl.col("amount_usd").cast(pl.Float64), kind.alias("amount_kind"))
    out = by_deal(frame).join(d, on="deal_id", how="left")
    reason = (
        pl.when(pl.col("amount_usd").is_null() | (pl.col("amount_usd") <= 0))
        .then(pl.lit("amount_undisclosed"))
        .when(~pl.col("complete")).then(pl.lit("parties_missing"))
    )
    out = out.with_columns(reason.alias("ratio_reason"))
    ok = pl.col("ratio_reason").is_null()
    return out.with_columns(
        pl.when(ok).then(pl.col("dollar_car") / pl.col("amount_usd")).alias("per_committed_dollar"),
        pl.when(ok).then(pl.col("dollar_se") / pl.col("amount_usd")).alias("per_committed_dollar_se"),
    )


@dataclass(frozen=True)
class DollarResult:
    """Dollar abnormal values per firm-event x window, with statsmodels-style accessors."""

    frame: pl.DataFrame

    @property
    def _key(self) -> pl.DataFrame:
        return self.frame.select("event_id", "window")

    @property
    def params(self) -> pl.DataFrame:
        """event_id, window, dollar_car (US$)."""
        return self.frame.select("event_id", "window", "dollar_car")

    @property
    def bse(self) -> pl.DataFrame:
        return self.frame.select("event_id", "window", pl.col("dollar_se").alias("bse"))

    @property
    def tvalues(self) -> pl.DataFrame:
        return self.frame.select("event_id", "window",
                                 (pl.col("dollar_car") / pl.col("dollar_se")).alias("t"))

    @property
    def pvalues(self) -> pl.DataFrame:
        """The CAR's own p (the engine's), where the dollar CAR exists: scaling does not change a test."""
        p = pl.col("p") if "p" in self.frame.columns else pl.lit(None, pl.Float64)
        return self.frame.select("event_id", "window",
                                 pl.when(pl.col("dollar_car").is_not_null()).then(p).alias("p"))

    def conf_int(self, alpha: float = 0.05) -> pl.DataFrame:
        """Normal interval dollar_car -/+ z(1 - alpha/2) x dollar_se."""
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        z = float(ndtri(1.0 - alpha / 2.0))
        return self.frame.select("event_id", "window",
                                 (pl.col("dollar_car") - z * pl.col("dollar_se")).alias("lower"),
                                 (pl.col("dollar_car") + z * pl.col("dollar_se")).alias("upper"))

    def to_frame(self) -> pl.DataFrame:
        return self.frame

    def by_deal(self) -> pl.DataFrame:
        return by_deal(self.frame)

    def by_company(self, companies: pl.DataFrame) -> pl.DataFrame:
        return by_company(self.frame, companies)

    def by_cycle(self, members: pl.DataFrame) -> pl.DataFrame:
        return by_cycle(self.frame, members)

    def per_committed_dollar(self, deals: pl.DataFrame) -> pl.DataFrame:
        return per_committed_dollar(self.frame, deals)

    def per_cycle_volume(self, members: pl.DataFrame, cycles: pl.DataFrame) -> pl.DataFrame:
        return per_cycle_volume(self.frame, members, cycles)

    def summary(self) -> str:
        lines = ["Dollar abnormal value (market value at t0-1 x CAR), US$ bn",
                 f"{'event_id':44} {'window':8} {'mcap':>9} {'CAR':>8} {'$CAR':>9} {'se':>8}  reason"]
        for r in self.frame.sort("event_id", "window").iter_rows(named=True):
            lines.append(
                f"{r['event_id'][:44]:44} {r['window']:8} {_bn(r['mcap_usd'], 9)} {_num(r['car'], 8, 4)} "
                f"{_bn(r['dollar_car'], 9)} {_bn(r['dollar_se'], 8)}  {r['dollar_reason'] or ''}")
        return "\n".join(lines)

    def to_latex(self) -> str:
        rows = [r"\begin{tabular}{llrrrr}", r"\toprule",
                r"Event & Window & Mkt cap (\$bn) & CAR & \$CAR (\$bn) & s.e. \\", r"\midrule"]
        for r in self.frame.sort("event_id", "window").iter_rows(named=True):
            if r["dollar_car"] is None:
                continue
            ev = str(r["event_id"]).replace("_", r"\_")
            rows.append(f"{ev} & {r['window']} & {r['mcap_usd'] / 1e9:.1f} & {r['car']:.4f} & "
                        f"{r['dollar_car'] / 1e9:.1f} & {r['dollar_se'] / 1e9:.1f} \\\\")
        rows += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(rows)


def _bn(v: float | None, width: int) -> str:
    return f"{v / 1e9:{width}.1f}" if v is not None else " " * (width - 1) + "-"


def _num(v: float | None, width: int, dec: int) -> str:
    return f"{v:{width}.{dec}f}" if v is not None else " " * (width - 1) + "-"


def dollar_abnormal_value(car: pl.DataFrame, counts: pl.DataFrame, prices: pl.DataFrame, *,
                          companies: pl.DataFrame | None = None, max_stale_days: int | None = None,
                          listings: Mapping[str, Any] | None = None, known_at_t0: bool = False,
                          excluded: pl.DataFrame | None = None) -> DollarResult:
    """Dollar CAR of every firm-event x window of ``car`` (the one entry point).

    Args:
        car: ``EventStudyResult.car``.
        counts: ``market.shares_store.share_counts(con)`` (or ``read_shares_csv()``).
        prices: ``market.api.prices(con)`` (ticker, date, close).
        companies: ``ledger.api.companies`` (tickers, currencies); when given, each ticker's currency
            comes from the ledger, so a new non-USD listing is excluded (``fx_missing``), not taken as USD.
        max_stale_days, listings: see ``market.mcap.market_caps`` (None: its defaults).
        known_at_t0: use only share counts public before t0 (filing date; without one, as-of date +
            ``market.mcap.UNFILED_LAG_DAYS``): the no-look-ahead variant. Default False: the count in
            force on the valuation day, flagged ``count_known_after_t0`` where it was filed on or after t0.
        excluded: ``EventStudyResult.excluded``: the firm-events the study did not estimate, added as
            rows without a value (:func:`with_excluded`) so that ``by_deal``, ``by_company`` and
            ``by_cycle`` mark a total with such a member incomplete and name it. None: ``car``'s rows only.

    Each window's value is taken at the ticker's close before the window's first day (t0+a-1 for
    [a, b]; t0-1 for windows starting at 0), with the count in force then (``mcap_date``): a window
    that starts before t0 has its first days' moves in its CAR, so they must not be in the base too.
    """
    _require(car, "car", _CAR_COLUMNS)
    labels = car["window"].cast(pl.Utf8).unique().drop_nulls().to_list()
    try:
        starts = {w: EventWindow.parse(w).start for w in labels}
    except ValueError as exc:
        raise InputError(f"car frame: {exc}", field="window") from None
    events = car.select(pl.col("ticker").cast(pl.Utf8), pl.col("t0").cast(pl.Date),
                        pl.col("window").cast(pl.Utf8)).unique().sort("ticker", "t0", "window").with_columns(
        pl.col("window").replace_strict(starts, return_dtype=pl.Int64, default=None).alias("_start"))
    mc = caps_before(counts, prices, events, companies=companies, max_stale_days=max_stale_days,
                     listings=listings, offset="_start", known_at_t0=known_at_t0)
    frame = dollar_car(car, mc.drop("_start"))
    return DollarResult(frame if excluded is None else with_excluded(frame, excluded))


def ledger_currencies(companies: pl.DataFrame | None) -> dict[str, str] | None:
    """ticker -> listing currency from ``ledger.api.companies`` (None without a companies frame)."""
    if companies is None or not {"tickers", "currencies"} <= set(companies.columns):
        return None
    pairs = companies.select(pl.col("tickers").cast(pl.List(pl.Utf8)),
                             pl.col("currencies").cast(pl.List(pl.Utf8))).explode(
        ["tickers", "currencies"]).drop_nulls()
    return dict(zip(pairs["tickers"].to_list(), pairs["currencies"].to_list(), strict=True))


def caps_before(counts: pl.DataFrame, prices: pl.DataFrame, events: pl.DataFrame, *,
                companies: pl.DataFrame | None = None, max_stale_days: int | None = None,
                listings: Mapping[str, Any] | None = None, offset: str | None = None,
                known_at_t0: bool = False) -> pl.DataFrame:
    """The market value every carousel number uses: ``market.mcap.market_caps_before`` with the ledger's
    currencies (one home: the dollar CARs and ``analysis.explain``'s amount-to-market-cap both call it).

    ``counts`` should come with the filings preferred (``analysis.dollar_columns.load_dollar_inputs``)
    and ``prices`` should hold every ticker a listing values a class at (GOOG for GOOGL's class C),
    or the cap is ``class_price_missing``. ``events``: ticker, t0 (and the ``offset`` column).
    """
    return mcap.market_caps_before(
        counts, prices, events,
        max_stale_days=mcap.MAX_STALE_DAYS if max_stale_days is None else max_stale_days,
        listings=mcap.LISTINGS if listings is None else listings, currencies=ledger_currencies(companies),
        offset=offset, known_at_t0=known_at_t0)

#: Reason codes of :func:`estimation_dollar_se` (null where the SE is computed).
ESTIMATION_REASONS = ("not_estimated", "t0_off_grid", "estimation_value_missing", "car_missing")


def estimation_dollar_se(car: pl.DataFrame, panel: ARPanel, grid: pl.Series | np.ndarray,
                         counts: pl.DataFrame, prices: pl.DataFrame, *, companies: pl.DataFrame | None = None,
                         max_stale_days: int | None = None, listings: Mapping[str, Any] | None = None
                         ) -> pl.DataFrame:
    """The dollar CAR's standard error from the estimation window's dollar abnormal returns (pure).

    The approach attributed to Saha and Ferrell (2011) (their published formula could not be obtained, so
    this is not checked against the paper; docs/conventions.md "Dollar abnormal returns"): the dispersion of a dollar abnormal return is taken
    from the estimation window's dollar abnormal returns D_s = V_{s-1} AR_s (V_{s-1} the market value at
    the close of the grid day before s, AR_s the estimation residual), not from V_{t0-1} sigma. When the
    value moved over the estimation window the two differ; with a constant V they are equal.

    For firm-event i with estimation residuals AR_s on its valid estimation days (the engine's):

    * sigma_usd_i = sqrt(sum_s D_s^2 / d_i), with d_i the divisor of the panel's sigma_i^2 = sum_s AR_s^2 / d_i
      (M_i - k in the textbook convention), computed as sigma_i sqrt(sum_s D_s^2 / sum_s AR_s^2). The null
      mean of D_s is zero (AR_s has mean zero and V_{s-1} is known the day before), so D_s is not demeaned.
    * per window: ``dollar_se_est = sigma_usd_i x se_i / sigma_i``, the CAR's own prediction-error
      factor sqrt(L + s'As) applied to the dollar dispersion, so estimation error enters as for the CAR.

    Every valid estimation day needs a value (count in force, close that day, US$): a firm-event with a
    day without one gets null and ``dollar_se_est_reason = 'estimation_value_missing'`` (never a partial
    sample). Other reasons: ``not_estimated`` (no panel row), ``t0_off_grid`` (the panel's t0_grid is not
    a day of ``grid``), ``car_missing``.

    Args:
        car: ``EventStudyResult.car`` (event_id, window, se, ...), any subset of rows.
        panel: the same result's ``panel`` (keys with event_id, ticker, t0_grid; residuals; sigma).
        grid: the engine's trading-day grid (``analysis.grid.returns_on_grid(...).grid``), sorted dates.
        counts, prices, companies, max_stale_days, listings: as for :func:`dollar_abnormal_value`.

    Returns:
        ``car`` (same rows and order) plus sigma, sigma_usd, n_est_valued (the estimation days used),
        dollar_se_est and dollar_se_est_reason.
    """
    _require(car, "car", ["event_id", "window", "se"])
    _require(panel.keys, "panel keys", ["event_id", "ticker", "t0_grid"])
    g = pl.Series("grid", grid).cast(pl.Date).to_numpy().astype("datetime64[D]")
    keys = panel.keys
    t0g = keys["t0_grid"].cast(pl.Date).to_numpy().astype("datetime64[D]")
    pos = np.searchsorted(g, t0g)
    on_grid = (pos < g.shape[0]) & (g[np.minimum(pos, g.shape[0] - 1)] == t0g)
    est_cols = np.flatnonzero(panel.is_est)
    rel = panel.rel_days[est_cols].astype(np.int64)
    # the grid day before each estimation day s: V_{s-1} is the value the return of day s applies to
    prev = pos[:, None] + rel[None, :] - 1
    inside = on_grid[:, None] & (prev >= 0) & (prev < g.shape[0])
    ar = panel.estimation_residuals()  # (N, len(est_cols)): the panel keeps ``ar`` on event days only
    valid = inside & np.isfinite(ar)
    rows, cols = np.nonzero(valid)
    a = ar[rows, cols]
    # One market value per distinct (ticker, grid day), found through integer keys (no string joins on
    # the N x M firm-days), then gathered back and summed per firm-event with bincounts.
    tick_names, tcode = np.unique(keys["ticker"].cast(pl.Utf8).fill_null("").to_numpy().astype(str),
                                  return_inverse=True)
    n_g = np.int64(g.shape[0])
    ukeys, inverse = np.unique(tcode[rows].astype(np.int64) * n_g + prev[rows, cols], return_inverse=True)
    at = pl.DataFrame({"ticker": tick_names[ukeys // n_g], "date": g[ukeys % n_g]}).with_columns(
        pl.col("date").cast(pl.Date))
    caps = mcap.market_caps(
        counts, prices, at,
        max_stale_days=mcap.MAX_STALE_DAYS if max_stale_days is None else max_stale_days,
        listings=mcap.LISTINGS if listings is None else listings,
        currencies=ledger_currencies(companies))
    v = caps["mcap_usd"].cast(pl.Float64).fill_null(np.nan).to_numpy()[inverse]
    n = keys.height
    has_v = np.isfinite(v)
    n_days = np.bincount(rows, minlength=n)
    n_valued = np.bincount(rows, weights=has_v, minlength=n).astype(np.int64)
    a2 = np.bincount(rows, weights=a**2, minlength=n)
    d2 = np.bincount(rows, weights=np.where(has_v, v * a, 0.0) ** 2, minlength=n)
    complete = on_grid & (n_valued == n_days) & (a2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_usd = np.where(complete, panel.sigma * np.sqrt(d2 / a2), np.nan)
    reason_i = np.where(~on_grid, "t0_off_grid", np.where(~complete, "estimation_value_missing", ""))
    full = pl.DataFrame({
        "event_id": keys["event_id"], "sigma": panel.sigma.astype(float), "sigma_usd": sigma_usd,
        "n_est_valued": n_valued, "_reason": reason_i,
    }).with_columns(pl.col("sigma_usd").fill_nan(None), pl.col("_reason").replace("", None))
    base = car.drop([c for c in ("sigma", "sigma_usd", "n_est_valued", "dollar_se_est", "dollar_se_est_reason")
                     if c in car.columns])
    out = base.with_row_index("_est_row").join(full, on="event_id", how="left")
    reason = (pl.when(pl.col("sigma").is_null()).then(pl.lit("not_estimated"))
              .when(pl.col("_reason").is_not_null()).then(pl.col("_reason"))
              .when(pl.col("se").is_null()).then(pl.lit("car_missing")))
    return (out.with_columns(reason.alias("dollar_se_est_reason"))
            .with_columns(pl.when(pl.col("dollar_se_est_reason").is_null())
                          .then(pl.col("sigma_usd") * pl.col("se") / pl.col("sigma")).alias("dollar_se_est"))
            .sort("_est_row").drop("_est_row", "_reason"))
