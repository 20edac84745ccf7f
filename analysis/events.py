"""Firm-events from the deal ledger: one row per (deal, listed counterparty ticker), each with its own t0.

Why per ticker: one announcement moves several listed firms (AMD and, through its stake, SoftBank...),
and each trades on its own exchange calendar, so t0 is aligned per ticker on the calendar of the exchange
the ledger records for it (``9984.T`` on XTKS, ``2330.TW`` on XTAI, US tickers on XNYS) by :func:`market.calendars.align_t0` (before the close on a session day -> that day;
after the close or on a non-session day -> the next session).

Rules:
- retracted deals are dropped (they never happened as announced);
- deals without an announcement date are kept with a null ``t0`` and ``t0_rule='no_t0'``; the engine
  reports them as excluded with reason ``no_t0``;
- a firm may have several events (one per deal), and a deal several firms; ``peers`` adds chosen
  non-counterparty tickers (role ``peer``) to every deal or to named deals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import polars as pl

Aligner = Callable[..., pl.DataFrame]

_REQUIRED = ("deal_id", "status", "announced_date", "announced_time_et", "session", "tickers")

EVENT_SCHEMA = {
    "event_id": pl.Utf8,
    "deal_id": pl.Utf8,
    "ticker": pl.Utf8,
    "role": pl.Utf8,
    "calendar": pl.Utf8,
    "announced_date": pl.Date,
    "announced_time_et": pl.Utf8,
    "session": pl.Utf8,
    "t0": pl.Date,
    "t0_rule": pl.Utf8,
    "time_source": pl.Utf8,
}


def event_id(deal_id: str, ticker: str) -> str:
    """Stable firm-event id: ``'<deal_id>:<ticker>'``."""
    return f"{deal_id}:{ticker}"


def firm_events(
    deals: pl.DataFrame,
    peers: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    *,
    calendar_for: Callable[[str], str] | None = None,
    align_t0: Aligner | None = None,
    unknown_policy: str = "same_day",
    spillovers: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Firm-events of ``deals`` (a :func:`ledger.api.deals` frame).

    Args:
        deals: DataFrame with deal_id, status, announced_date, announced_time_et, session, tickers.
        peers: extra tickers per deal (mapping deal_id -> tickers) or for every deal (a sequence).
        calendar_for: ticker -> exchange calendar (default :func:`market.calendars.calendar_for` with the
            MICs of the frame's ``exchanges`` column, :func:`with_exchanges`; else the symbol's suffix).
        align_t0: the t0 aligner (default :func:`market.calendars.align_t0`), called once per calendar.
        unknown_policy: passed to the aligner for session 'unknown' ('same_day' or 'next_session').
        spillovers: non-party firms per deal (deal_id, ticker, role; :func:`analysis.spillovers.spillover_pairs`),
            off by default. A spillover row whose ticker has a party or peer event on the same t0 is
            dropped: that day the firm is a party.

    Returns:
        DataFrame[event_id, deal_id, ticker, role, calendar, announced_date, announced_time_et, session,
        t0, t0_rule, time_source] sorted by event_id; ``t0`` null (rule 'no_t0') for deals without a date;
        ``time_source`` says where the time of day came from (:mod:`analysis.date_basis`).
    """
    missing = [c for c in _REQUIRED if c not in deals.columns]
    if missing:
        raise ValueError(f"deals frame lacks column(s): {', '.join(missing)}")
    if "time_source" not in deals.columns:
        # Not yet on a date basis: the official one, whose time of day the timing evidence fills where
        # the deal row has none (analysis.date_basis), so every caller maps an announcement to one t0.
        from analysis.date_basis import apply_date_basis

        deals = apply_date_basis(deals, "official")
    if calendar_for is None or align_t0 is None:
        # Imported at call time: exchange_calendars is slow to import and most callers pass both.
        from market import calendars

        if calendar_for is None:
            mics = ticker_exchanges(deals)
            calendar_for = lambda t: calendars.calendar_for(t, mics)  # noqa: E731
        align_t0 = align_t0 or cast(Aligner, calendars.align_t0)

    live = deals.filter(pl.col("status") != "retracted").select(
        pl.col("deal_id").cast(pl.Utf8),
        pl.col("announced_date").cast(pl.Date),
        pl.col("announced_time_et").cast(pl.Utf8),
        pl.col("session").cast(pl.Utf8),
        pl.col("tickers").cast(pl.List(pl.Utf8)),
        pl.col("time_source").cast(pl.Utf8),
    )
    rows = (
        live.explode("tickers").rename({"tickers": "ticker"}).filter(pl.col("ticker").is_not_null())
    )
    rows = rows.with_columns(pl.lit("counterparty").alias("role"))
    if peers:
        if isinstance(peers, Mapping):
            extra = pl.DataFrame(
                [(d, t) for d, ts in peers.items() for t in ts],
                schema=["deal_id", "ticker"],
                orient="row",
            )
        else:
            extra = live.select("deal_id").join(pl.DataFrame({"ticker": list(peers)}), how="cross")
        extra = live.drop("tickers").join(extra, on="deal_id", how="inner")
        extra = extra.with_columns(pl.lit("peer").alias("role")).select(rows.columns)
        # A ticker that is already a counterparty of the deal stays a counterparty.
        extra = extra.join(rows.select("deal_id", "ticker"), on=["deal_id", "ticker"], how="anti")
        rows = pl.concat([rows, extra])
    if spillovers is not None and spillovers.height:
        extra = live.drop("tickers").join(spillovers.select("deal_id", "ticker", "role"), on="deal_id", how="inner")
        extra = extra.select(rows.columns).join(rows.select("deal_id", "ticker"), on=["deal_id", "ticker"], how="anti")
        rows = pl.concat([rows, extra])
    rows = rows.unique(["deal_id", "ticker"], keep="first", maintain_order=True)
    tickers = rows["ticker"].unique().sort().to_list()
    cal = {t: calendar_for(t) for t in tickers}
    rows = rows.with_columns(
        pl.col("ticker").replace_strict(cal, return_dtype=pl.Utf8).alias("calendar")
    )
    rows = rows.with_row_index("_row")

    aligned = [
        rows.filter(pl.col("announced_date").is_null()).with_columns(
            pl.lit(None, dtype=pl.Date).alias("t0"), pl.lit("no_t0").alias("t0_rule")
        )
    ]
    dated = rows.filter(pl.col("announced_date").is_not_null())
    for calendar in sorted(dated["calendar"].unique().to_list()):
        part = dated.filter(pl.col("calendar") == calendar)
        out = align_t0(part, calendar, unknown_policy=unknown_policy)
        if out.height != part.height:
            raise ValueError(f"align_t0 returned {out.height} rows for {part.height} ({calendar})")
        if "_row" in out.columns:
            out = part.join(out.select("_row", "t0", "t0_rule"), on="_row", how="left")
        else:  # the aligner keeps row order (contract) but not our extra columns
            out = part.with_columns(out["t0"].cast(pl.Date), out["t0_rule"].cast(pl.Utf8))
        aligned.append(
            out.with_columns(pl.col("t0").cast(pl.Date), pl.col("t0_rule").cast(pl.Utf8))
        )
    result = pl.concat(aligned, how="vertical_relaxed")
    result = result.with_columns(
        (pl.col("deal_id") + pl.lit(":") + pl.col("ticker")).alias("event_id")
    )
    if spillovers is not None and spillovers.height:
        spill = pl.col("role").str.starts_with("spillover")
        party_days = result.filter(~spill & pl.col("t0").is_not_null()).select("ticker", "t0").unique()
        result = pl.concat([
            result.filter(~spill),
            result.filter(spill).join(party_days, on=["ticker", "t0"], how="anti"),
        ])
    return result.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()]).sort("event_id")


def with_exchanges(deals: pl.DataFrame, companies: pl.DataFrame) -> pl.DataFrame:
    """``deals`` plus ``exchanges``: per deal, the MIC the ledger's companies record for each of its
    ``tickers`` (same order; null where none), so :func:`firm_events` aligns t0 on each listing's own
    exchange calendar (2330.TW on Taipei's) rather than guessing it from the symbol. Pure.

    ``companies``: :func:`ledger.api.companies` (``tickers`` and ``exchanges``, aligned lists)."""
    pairs = (companies.select("tickers", "exchanges").explode("tickers", "exchanges")
             .drop_nulls("tickers").drop_nulls("exchanges").unique("tickers", keep="first", maintain_order=True))
    mics = dict(zip(pairs["tickers"].to_list(), pairs["exchanges"].to_list(), strict=True))
    return deals.with_columns(pl.col("tickers").list.eval(
        pl.element().replace_strict(mics, default=None, return_dtype=pl.Utf8)).alias("exchanges"))


def ticker_exchanges(deals: pl.DataFrame) -> dict[str, str]:
    """Ticker -> MIC from a deals frame's aligned ``tickers`` / ``exchanges`` lists ({} without them)."""
    if "exchanges" not in deals.columns:
        return {}
    pairs = (deals.select(pl.col("tickers").cast(pl.List(pl.Utf8)), pl.col("exchanges").cast(pl.List(pl.Utf8)))
             .explode("tickers", "exchanges").drop_nulls())
    return dict(pairs.unique("tickers", keep="first", maintain_order=True).iter_rows())


def collapse_same_day(events: pl.DataFrame) -> pl.DataFrame:
    """One firm-event per (ticker, t0): several deal rows announced together are one market event.

    deals.csv splits two-way deals into two rows (OpenAI->AMD chips and AMD->OpenAI warrant) and one
    three-way announcement into three; each row lists the same tickers, so a study per row would count
    the same abnormal return two or three times in the AAR, the CAAR and every cross-sectional test.
    The first deal id (sorted) represents the group; ``deal_ids`` lists all of them. Undated events are
    kept as they are (they are excluded later with reason ``no_t0``).
    """
    dated = events.filter(pl.col("t0").is_not_null()).sort("deal_id", "ticker")
    grouped = dated.group_by("ticker", "t0", maintain_order=True).agg(
        pl.all().first(), pl.col("deal_id").alias("deal_ids")
    )
    undated = events.filter(pl.col("t0").is_null()).with_columns(
        pl.concat_list(pl.col("deal_id")).alias("deal_ids")
    )
    out = pl.concat([grouped.select(undated.columns), undated], how="vertical_relaxed")
    return out.sort("event_id")
