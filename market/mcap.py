"""Market capitalisation by an as-of join of share counts onto closes (pure, whole columns).

Conventions (docs/conventions.md, "Market capitalisation"):

* **Which count**: the latest ``as_of_date <= date`` of the ticker (the count in force that day),
  on the split-adjusted basis (``shares_split_adjusted``) because the ``close`` of the price store is
  split-adjusted; both carry the same splits, so count x close is the market value that day.
* **Which close**: ``close`` (split-adjusted, not dividend-adjusted: a dividend does not change what the
  equity was worth that day). For a dollar abnormal value, the close of the ticker's previous trading
  day before t0 (:func:`market_caps_before`), the value the abnormal return applies to.
* **Staleness**: a count older than :data:`MAX_STALE_DAYS` (120 days: quarterly counts are ~91 days
  apart and cover dates fall up to ~4 weeks after the quarter) gives no value, reason ``count_stale``;
  no count on or before the date, ``count_missing``. Nothing is carried further or interpolated.
* **Share classes**: a listing's count holds every class that makes up the equity (GOOGL A+B+C,
  META A+B, CRWV A+B+C). Where a class trades under another symbol (Alphabet's class C as GOOG) and the
  row's ``class_detail`` splits the classes, that class is valued at its own close and the rest at the
  listing's (class B is unlisted and converts 1:1 into A, so it takes the A price). A row without the
  split values every class at the listing's close (method ``total_at_listing``; for Alphabet's rows of
  that kind this understates the cap by 0.2-0.6 %, GOOG having closed 0.35-1.42 % above GOOGL then).
* **ADRs**: the count is of ordinary shares; ``ordinary_per_quote`` of them make one quoted ADS
  (TSM 5), so the cap is count / ratio x ADS close (the ADR-implied cap).
* **Currency**: the cap is in the listing's currency; without an FX series (none ships) a non-USD
  listing (9984.T, JPY) gets ``mcap_local`` but no ``mcap_usd``, reason ``fx_missing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

#: Longest a count stays in force (days after its as_of_date); see the module docstring.
MAX_STALE_DAYS = 120

#: Reason codes, in the order they are decided (the first that applies is reported).
REASONS = ("price_missing", "count_missing", "count_stale", "class_price_missing", "fx_missing")


@dataclass(frozen=True)
class Listing:
    """How a ticker's count turns into a market value."""

    currency: str = "USD"
    #: Ordinary shares per quoted unit (an ADR ratio; 1 for a share).
    ordinary_per_quote: float = 1.0
    #: Share class letter -> symbol whose close values that class (the rest take the listing's close).
    class_quotes: Mapping[str, str] = field(default_factory=dict)


#: Listings that differ from "USD, one share per quote, one price for every class".
LISTINGS: dict[str, Listing] = {
    "GOOGL": Listing(class_quotes={"C": "GOOG"}),
    "TSM": Listing(ordinary_per_quote=5.0),
    "9984.T": Listing(currency="JPY"),
}

MCAP_COLUMNS = ["as_of_date", "stale_days", "shares", "close", "mcap_local", "currency", "mcap_usd",
                "mcap_method", "mcap_reason", "next_count_change", "next_as_of_date", "count_known_date"]

#: Days after ``as_of_date`` by which a count without a ``filing_date`` (Yahoo's) is taken as public, for
#: the no-look-ahead variant (``known_before``): the 10-Q deadline of a large accelerated filer is 40 days
#: after the quarter end and a count's as-of (cover) date falls after the quarter end, so 45 days bounds
#: the filing that printed it (the shipped filings came 6-13 days after their cover date).
UNFILED_LAG_DAYS = 45


def _listing_frame(tickers: list[str], listings: Mapping[str, Listing],
                   currencies: Mapping[str, str] | None) -> pl.DataFrame:
    rows = []
    for t in tickers:
        lst = listings.get(t, Listing())
        cls, sym = next(iter(lst.class_quotes.items()), (None, None))
        if len(lst.class_quotes) > 1:
            raise ValueError(f"{t}: at most one separately quoted class is supported")
        cur = (currencies or {}).get(t, lst.currency)
        rows.append((t, cur, lst.ordinary_per_quote, cls, sym))
    return pl.DataFrame(rows, schema={"ticker": pl.Utf8, "currency": pl.Utf8, "ratio": pl.Float64,
                                      "class_letter": pl.Utf8, "class_symbol": pl.Utf8}, orient="row")


def _class_count(detail: pl.Expr, letter: pl.Expr, letters: list[str]) -> pl.Expr:
    """Count of the row's class ``letter`` from ``class_detail`` (``A=5843M;B=864M;C=5534M``), or null.

    ``str.extract`` takes a literal pattern, so one pattern per letter the listings name.
    """
    out: pl.Expr = pl.lit(None, pl.Int64)
    for c in letters:
        rx = rf"(?:^|;)\s*{c}=(\d+)(M?)\s*(?:;|$)"
        mult = pl.when(detail.str.extract(rx, 2) == "M").then(1_000_000).otherwise(1)
        out = pl.coalesce(out, pl.when(letter == c).then(detail.str.extract(rx, 1).cast(pl.Int64) * mult))
    return out


def market_caps(counts: pl.DataFrame, prices: pl.DataFrame, at: pl.DataFrame, *,
                max_stale_days: int = MAX_STALE_DAYS, listings: Mapping[str, Listing] = LISTINGS,
                currencies: Mapping[str, str] | None = None, known_before: str | None = None
                ) -> pl.DataFrame:
    """Market value of each (ticker, date) in ``at``, with a reason code wherever there is none.

    Args:
        counts: DataFrame[ticker, as_of_date, shares, shares_split_adjusted, class_detail]
            (``market.shares_store.share_counts`` or ``market.shares_sources.read_shares_csv``).
        prices: DataFrame[ticker, date, close] (``market.api.prices``), split-adjusted closes.
        at: DataFrame[ticker, date] (other columns are kept).
        max_stale_days: a count older than this gives ``count_stale``.
        listings: per-ticker currency, ADR ratio and separately quoted classes (default LISTINGS).
        currencies: ticker -> currency overriding ``listings`` (e.g. from ``ledger.api.companies``).
        known_before: name of a date column of ``at``; when given, only counts made public strictly
            before that date are used (``count_known_date`` = ``filing_date``, or ``as_of_date`` +
            :data:`UNFILED_LAG_DAYS` without one): the no-look-ahead variant. Default: the count in
            force on ``date`` whenever it was filed (the economically right count).

    Returns:
        ``at`` (columns named like an output replaced) plus as_of_date, stale_days, shares (split-adjusted basis, all classes), close,
        mcap_local (listing currency), currency, mcap_usd, mcap_method, mcap_reason (null when
        mcap_usd is set), next_count_change (relative change to the ticker's next count: a large one
        means the count moved inside the gap, e.g. INTC's 2025 issuance), next_as_of_date (that next
        count's date), count_known_date (when the count used was public), in ``at``'s order.
    """
    if max_stale_days < 0:
        raise ValueError("max_stale_days must be >= 0")
    for name, frame, cols in (("counts", counts, ["ticker", "as_of_date", "shares_split_adjusted"]),
                              ("prices", prices, ["ticker", "date", "close"]),
                              ("at", at, ["ticker", "date"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame lacks column(s): {', '.join(missing)}")
    # A duplicate key would make the as-of join pick one row arbitrarily, or the price join multiply rows.
    for name, frame, key in (("counts", counts, ["ticker", "as_of_date"]), ("prices", prices, ["ticker", "date"])):
        dup = frame.filter(pl.struct(key).is_duplicated())
        if dup.height:
            raise ValueError(f"{name} frame has {dup.height} rows sharing a ({', '.join(key)}), first "
                             f"{dup[key[0]][0]} {dup[key[1]][0]}")
    if known_before is not None and known_before not in at.columns:
        raise ValueError(f"at frame lacks the known_before column {known_before!r}")
    detail = pl.col("class_detail") if "class_detail" in counts.columns else pl.lit(None, pl.Utf8)
    filed = (pl.col("filing_date").cast(pl.Date) if "filing_date" in counts.columns
             else pl.lit(None, pl.Date))
    cnt = (
        counts.select(
            pl.col("ticker").cast(pl.Utf8), pl.col("as_of_date").cast(pl.Date),
            pl.col("shares_split_adjusted").cast(pl.Float64).alias("shares"),
            # The split factor from the row's own basis to the price basis, for per-class counts.
            (pl.col("shares_split_adjusted").cast(pl.Float64)
             / (pl.col("shares") if "shares" in counts.columns else pl.col("shares_split_adjusted"))
             .cast(pl.Float64)).alias("_factor"),
            detail.cast(pl.Utf8).alias("_detail"),
            pl.coalesce(filed, pl.col("as_of_date").cast(pl.Date) + pl.duration(days=UNFILED_LAG_DAYS))
            .alias("count_known_date"),
        )
        .sort("ticker", "as_of_date")
        .with_columns(
            (pl.col("shares").shift(-1).over("ticker") / pl.col("shares") - 1).alias("next_count_change"),
            pl.col("as_of_date").shift(-1).over("ticker").alias("next_as_of_date"))
    )
    px = prices.select(pl.col("ticker").cast(pl.Utf8), pl.col("date").cast(pl.Date),
                       pl.col("close").cast(pl.Float64))
    tickers = sorted(set(at["ticker"].cast(pl.Utf8).unique().drop_nulls().to_list()))
    lst = _listing_frame(tickers, listings, currencies)
    # Columns of ``at`` named like an output are replaced by the output (documented in Returns).
    base = at.drop([c for c in MCAP_COLUMNS if c in at.columns]).with_row_index("_row").with_columns(pl.col("ticker").cast(pl.Utf8),
                                                  pl.col("date").cast(pl.Date))
    undated = base.filter(pl.col("date").is_null())
    dated = base.filter(pl.col("date").is_not_null())
    if known_before is None:
        with_count = dated.sort("date").join_asof(
            cnt.sort("as_of_date"), left_on="date", right_on="as_of_date", by="ticker",
            strategy="backward", check_sortedness=False)
    else:
        # The latest as_of_date <= date among counts public before ``known_before``: filing dates are
        # not monotone in as_of_date (a restated old count filed late), so no as-of join on them.
        cutoff = pl.col(known_before).cast(pl.Date)
        eligible = (
            dated.select("_row", "ticker", "date", cutoff.alias("_cutoff"))
            .join(cnt, on="ticker", how="inner")
            .filter((pl.col("as_of_date") <= pl.col("date")) & (pl.col("count_known_date") < pl.col("_cutoff")))
            .sort("_row", "as_of_date").unique("_row", keep="last")
            .drop("ticker", "date", "_cutoff")
        )
        with_count = dated.join(eligible, on="_row", how="left")
    joined = (
        with_count
        .join(px, on=["ticker", "date"], how="left")
        .join(lst, on="ticker", how="left")
        .join(px.rename({"ticker": "class_symbol", "close": "_class_close"}),
              on=["class_symbol", "date"], how="left")
    )
    joined = pl.concat([joined, undated], how="diagonal_relaxed")
    letters = sorted({c for lst in listings.values() for c in lst.class_quotes})
    class_n = _class_count(pl.col("_detail"), pl.col("class_letter"), letters) * pl.col("_factor")
    split = pl.col("class_letter").is_not_null() & class_n.is_not_null()
    local = (
        pl.when(split)
        .then(((pl.col("shares") - class_n) * pl.col("close") + class_n * pl.col("_class_close"))
              / pl.col("ratio"))
        .otherwise(pl.col("shares") / pl.col("ratio") * pl.col("close"))
    )
    stale = (pl.col("date") - pl.col("as_of_date")).dt.total_days()
    reason = (
        pl.when(pl.col("date").is_null()).then(pl.lit("price_missing"))
        .when(pl.col("as_of_date").is_null()).then(pl.lit("count_missing"))
        .when(stale > max_stale_days).then(pl.lit("count_stale"))
        .when(pl.col("close").is_null()).then(pl.lit("price_missing"))
        .when(split & pl.col("_class_close").is_null()).then(pl.lit("class_price_missing"))
        .when(pl.col("currency") != "USD").then(pl.lit("fx_missing"))
    )
    method = (
        pl.when(pl.col("ratio").is_null()).then(pl.lit(None, pl.Utf8))
        .when(split).then(pl.lit("classes_at_own_close"))
        .when(pl.col("class_letter").is_not_null()).then(pl.lit("total_at_listing"))
        .when(pl.col("ratio") != 1.0).then(pl.lit("adr_ratio"))
        .otherwise(pl.lit("shares_x_close"))
    )
    out = joined.with_columns(stale.alias("stale_days"), reason.alias("mcap_reason"),
                              method.alias("mcap_method"))
    ok_local = pl.col("mcap_reason").is_null() | (pl.col("mcap_reason") == "fx_missing")
    out = out.with_columns(
        pl.when(ok_local).then(local).alias("mcap_local"),
    ).with_columns(
        pl.when(pl.col("mcap_reason").is_null()).then(pl.col("mcap_local")).alias("mcap_usd"),
    )
    keep = [c for c in at.columns if c not in MCAP_COLUMNS]
    return out.sort("_row").select(*keep, *MCAP_COLUMNS)


def previous_sessions(prices: pl.DataFrame, events: pl.DataFrame, *, offset: str | None = None
                      ) -> pl.DataFrame:
    """``events`` plus ``price_date``: the ticker's last trading day strictly before ``t0``.

    The ticker's own dates (its exchange's sessions), not a market grid: 9984.T's t0-1 is a Tokyo day.
    With ``offset`` (an integer column a of ``events``), the ticker's session ``a`` sessions after that
    one: the close before relative day a, for a window [a, b] (a = -1: the close of t0-2, because
    day -1's move belongs to the window). Null when the ticker has no such session (or t0 is null).
    """
    days = (prices.select(pl.col("ticker").cast(pl.Utf8), pl.col("date").cast(pl.Date)).unique()
            .sort("ticker", "date").with_columns(pl.int_range(pl.len()).over("ticker").alias("_pos")))
    base = events.with_row_index("_row").with_columns(pl.col("ticker").cast(pl.Utf8),
                                                      pl.col("t0").cast(pl.Date))
    shift = pl.col(offset).cast(pl.Int64) if offset is not None else pl.lit(0, pl.Int64)
    dated = (
        base.filter(pl.col("t0").is_not_null()).sort("t0")
        .join_asof(days.rename({"date": "_prev"}), left_on="t0", right_on="_prev", by="ticker",
                   strategy="backward", allow_exact_matches=False, check_sortedness=False)
        .with_columns((pl.col("_pos") + shift).alias("_pos"))
        .join(days.rename({"date": "price_date"}), on=["ticker", "_pos"], how="left")
        .drop("_prev", "_pos")
    )
    undated = base.filter(pl.col("t0").is_null()).with_columns(pl.lit(None, pl.Date).alias("price_date"))
    return pl.concat([dated, undated], how="diagonal_relaxed").sort("_row").drop("_row")


def market_caps_before(counts: pl.DataFrame, prices: pl.DataFrame, events: pl.DataFrame, *,
                       max_stale_days: int = MAX_STALE_DAYS, listings: Mapping[str, Listing] = LISTINGS,
                       currencies: Mapping[str, str] | None = None, offset: str | None = None,
                       known_at_t0: bool = False) -> pl.DataFrame:
    """Market value at t0-1 (the ticker's previous trading day) for each row of ``events[ticker, t0]``.

    With ``offset`` (a column a of ``events``), at the ticker's trading day before relative day a
    (:func:`previous_sessions`). ``known_at_t0`` uses only counts public before t0 (no look-ahead);
    by default the count in force on the valuation day, and ``count_known_after_t0`` says where that
    count was filed on or after t0.

    Returns ``events`` plus ``price_date`` and the columns of :func:`market_caps`, plus
    ``count_known_after_t0`` (reason ``price_missing`` when there is no such trading day or no t0).
    """
    prev = previous_sessions(prices, events, offset=offset)
    at = prev.with_columns(pl.col("price_date").alias("date"))
    out = market_caps(counts, prices, at, max_stale_days=max_stale_days, listings=listings,
                      currencies=currencies, known_before="t0" if known_at_t0 else None)
    after = pl.when(pl.col("as_of_date").is_not_null()).then(pl.col("count_known_date") >= pl.col("t0"))
    return out.drop("date").with_columns(after.alias("count_known_after_t0"))
