"""The event study of the ledger's deals on the stored prices: inputs from the database, firm-events,
the same-day merge and the engine, as one function every command and the Python API share.

Why here and not in the CLI: ``carousel study``, ``carousel run`` and ``carousel report`` (and a
notebook) must give the same numbers for the same specification, so the steps between the database and
:class:`~analysis.engine.EventStudy` live once, below the shell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import duckdb
import polars as pl

from analysis.conventions import BY_NAME
from analysis.date_basis import apply_date_basis
from analysis.engine import DEFAULT_MASK_SPAN, EventStudy, Method
from analysis.models import model_spec
from analysis.pooled import pool_results
from analysis.results import EventStudyResult
from analysis.spec import DEFAULT_SPEC, StudySpec
from analysis.window import DEFAULT_WINDOWS
from core.errors import InputError
from ledger import api as ledger_api
from market import api as market_api
from market.returns import compute_returns


def _deals_with_exchanges(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """ledger.api.deals plus each ticker's exchange (MIC) from the ledger's companies, which decides the
    calendar its t0 is aligned on (analysis.events.with_exchanges), and the date each deal's timing
    evidence was recorded for (``timing_for_date``: evidence for a since-corrected date fills no time of
    day, analysis.date_basis)."""
    from analysis.events import with_exchanges

    return with_exchanges(ledger_api.deals_with_timing_dates(con), ledger_api.companies(con))


def load_inputs(
    con: duckdb.DuckDBPyConnection, extra_tickers: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deals, returns) from the database: ledger.api.deals, and market returns of the deals'
    tickers, ``extra_tickers`` (benchmarks, peers) and SPY (the default trading-day grid)."""
    deals = _deals_with_exchanges(con)
    deal_tickers = deals.select(pl.col("tickers").explode()).drop_nulls().to_series().to_list()
    tickers = sorted(set(deal_tickers) | set(extra_tickers) | {"SPY"})
    prices = market_api.prices(con, tickers)
    return deals, compute_returns(prices)


def load_prices(
    con: duckdb.DuckDBPyConnection, extra_tickers: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deals, prices) from the database: like :func:`load_inputs` but the stored prices themselves
    (with ``volume``), for the abnormal-volume study."""
    deals = _deals_with_exchanges(con)
    deal_tickers = deals.select(pl.col("tickers").explode()).drop_nulls().to_series().to_list()
    tickers = sorted(set(deal_tickers) | set(extra_tickers))
    return deals, market_api.prices(con, tickers)


#: Firm-event columns the engine carries to its keys and excluded frames when present: where t0's time of
#: day came from and the exchange calendar t0 was aligned on (the per-event outputs and notes show them).
EVENT_DETAIL = ("time_source", "calendar")


def engine_events(events: pl.DataFrame) -> pl.DataFrame:
    """The columns of ``events`` the engine reads, plus :data:`EVENT_DETAIL` where present."""
    return events.select("event_id", "deal_id", "ticker", "t0", *(c for c in EVENT_DETAIL if c in events.columns))


def study_events(
    deals: pl.DataFrame,
    *,
    deal_filter: list[str] | None = None,
    ticker_filter: list[str] | None = None,
    peers: list[str] | None = None,
    firm_events_fn: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    collapse_same_day: bool = True,
    unknown_policy: str = "same_day",
    spillovers: pl.DataFrame | None = None,
    date_basis: str = "official",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(reported firm-events, the events that mask estimation windows) of ``deals``: the filters
    choose the first; the second is every firm-event but the spillover ones. Shared by the return,
    volume, GARCH and run-up studies."""
    from analysis.events import firm_events

    if unknown_policy not in ("same_day", "next_session"):
        raise InputError(
            f"unknown policy {unknown_policy!r}; choose same_day or next_session", field="--unknown-policy"
        )
    deals = apply_date_basis(deals, date_basis)
    spill = spillovers if spillovers is not None and spillovers.height else None
    if firm_events_fn is not None:
        events = firm_events_fn(deals)
    elif spill is not None:
        events = firm_events(deals, peers=peers or None, unknown_policy=unknown_policy, spillovers=spill)
    else:
        events = firm_events(deals, peers=peers or None, unknown_policy=unknown_policy)
    if deal_filter:
        unknown = sorted(set(deal_filter) - set(events["deal_id"].to_list()))
        if unknown:
            raise InputError(f"unknown deal id(s): {', '.join(unknown)}", field="--deal")
    if ticker_filter:
        unknown = sorted(set(ticker_filter) - set(events["ticker"].to_list()))
        if unknown:
            raise InputError(
                f"no firm-event for ticker(s) {', '.join(unknown)}: not a listed counterparty "
                "of any live deal (add peers with --peer)",
                field="--ticker",
            )
    if collapse_same_day:
        from analysis.events import collapse_same_day as collapse

        events = collapse(events)
    # Filters choose which firm-events are reported, never how each is estimated: every event still
    # masks its span in the others' estimation windows, and a deal filter matches any deal of a
    # collapsed same-day group, so a filtered firm-event has the same id and numbers as in the full run.
    all_events = events
    if deal_filter:
        ids = pl.col("deal_ids") if "deal_ids" in events.columns else pl.concat_list("deal_id")
        events = events.filter(ids.list.eval(pl.element().is_in(deal_filter)).list.any())
    if ticker_filter:
        events = events.filter(pl.col("ticker").is_in(ticker_filter))
    if spill is not None:
        # spillover firm-events do not mask other events' estimation windows, so every party's
        # numbers are those of the run without them
        all_events = all_events.filter(~pl.col("role").str.starts_with("spillover"))
    return events, all_events


def run_study(
    deals: pl.DataFrame,
    returns: pl.DataFrame,
    *,
    model: str = "market",
    benchmarks: tuple[str, ...] = ("SPY",),
    estimation: tuple[int, int] = (-250, -11),
    windows: tuple[tuple[int, int], ...] = DEFAULT_WINDOWS,
    min_obs: int = 120,
    deal_filter: list[str] | None = None,
    ticker_filter: list[str] | None = None,
    conventions: str = "textbook",
    method: str = "batch",
    mask_other_events: bool = True,
    peers: list[str] | None = None,
    firm_events_fn: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    collapse_same_day: bool = True,
    unknown_policy: str = "same_day",
    spillovers: pl.DataFrame | None = None,
    date_basis: str = "official",
    mask_span: tuple[int, int] = DEFAULT_MASK_SPAN,
) -> EventStudyResult:
    """Pure: firm-events of ``deals`` (optionally filtered) estimated on ``returns``.

    ``mask_span`` is the fixed event period masked around every other event of a ticker (default
    [-5, +10]; :class:`~analysis.engine.EventStudy`), so the windows requested do not change estimates.

    ``date_basis`` chooses the moment taken as the news (:mod:`analysis.date_basis`): the official
    announcement (default), its evidenced time of day, or the first credible report.

    ``spillovers`` (deal_id, ticker, role; :func:`analysis.spillovers.spillover_pairs`) adds firm-events
    for non-party firms near each deal; they do not mask other events' estimation windows, so every
    party's numbers are those of the run without them.
    """
    if conventions not in BY_NAME:
        raise InputError(
            f"unknown conventions {conventions!r}; choose {', '.join(BY_NAME)}",
            field="--conventions",
        )
    try:
        spec = model_spec(model, tuple(benchmarks))
    except ValueError as exc:
        raise InputError(str(exc), field="--model") from None
    if not getattr(spec, "batch_engine", True):
        # GARCH: estimated per firm-event outside the batch engine (analysis.models.garch says why).
        if method != "batch" or not mask_other_events or firm_events_fn is not None:
            raise InputError(
                f"model {spec.name!r} takes no --method, --flag-other-events or custom firm-events",
                field="--model",
            )
        return run_garch_study(
            deals,
            returns,
            benchmarks=benchmarks,
            estimation=estimation,
            windows=windows,
            min_obs=min_obs,
            deal_filter=deal_filter,
            ticker_filter=ticker_filter,
            conventions=conventions,
            peers=peers,
            collapse_same_day=collapse_same_day,
            unknown_policy=unknown_policy,
            spillovers=spillovers,
            date_basis=date_basis,
        )
    events, all_events = study_events(
        deals,
        deal_filter=deal_filter,
        ticker_filter=ticker_filter,
        peers=peers,
        firm_events_fn=firm_events_fn,
        collapse_same_day=collapse_same_day,
        unknown_policy=unknown_policy,
        spillovers=spillovers,
        date_basis=date_basis,
    )
    # Every event's tickers must be priced; the study would only exclude them, but the benchmark
    # itself is an input error.
    try:
        study = EventStudy(
            returns.select("ticker", "date", "ret"),
            engine_events(events),
            model=model,
            benchmarks=benchmarks,
            estimation=estimation,
            windows=windows,
            min_obs=min_obs,
            conventions=BY_NAME[conventions],
            mask_other_events=mask_other_events,
            other_events=all_events.select("ticker", "t0"),
            mask_span=mask_span,
        )
        return study.fit(cast(Method, method))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run_garch_study(
    deals: pl.DataFrame,
    returns: pl.DataFrame,
    *,
    benchmarks: tuple[str, ...] = ("SPY",),
    estimation: tuple[int, int] = (-250, -11),
    windows: tuple[tuple[int, int], ...] = DEFAULT_WINDOWS,
    min_obs: int = 120,
    deal_filter: list[str] | None = None,
    ticker_filter: list[str] | None = None,
    conventions: str = "textbook",
    peers: list[str] | None = None,
    collapse_same_day: bool = True,
    unknown_policy: str = "same_day",
    spillovers: pl.DataFrame | None = None,
    date_basis: str = "official",
) -> EventStudyResult:
    """Pure: the GARCH(1,1) market model (:func:`analysis.volatility.garch_study`) on the same
    firm-events, filters and windows as :func:`run_study` (``carousel study --model garch``)."""
    from analysis.volatility import garch_study

    if conventions not in BY_NAME:
        raise InputError(
            f"unknown conventions {conventions!r}; choose {', '.join(BY_NAME)}",
            field="--conventions",
        )
    if len(benchmarks) != 1:
        raise InputError(
            f"model 'garch' takes exactly one benchmark, got {len(benchmarks)}", field="--benchmark"
        )
    events, _ = study_events(
        deals,
        deal_filter=deal_filter,
        ticker_filter=ticker_filter,
        peers=peers,
        collapse_same_day=collapse_same_day,
        unknown_policy=unknown_policy,
        spillovers=spillovers,
        date_basis=date_basis,
    )
    return garch_study(
        returns.select("ticker", "date", "ret"),
        events.select("event_id", "deal_id", "ticker", "t0"),
        benchmark=benchmarks[0],
        estimation=estimation,
        windows=windows,
        min_obs=min_obs,
        conventions=BY_NAME[conventions],
    )


def run_spec(
    deals: pl.DataFrame,
    returns: pl.DataFrame,
    spec: StudySpec = DEFAULT_SPEC,
    *,
    deal_filter: list[str] | None = None,
    ticker_filter: list[str] | None = None,
    firm_events_fn: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    collapse_same_day: bool = True,
    spillovers: pl.DataFrame | None = None,
) -> EventStudyResult:
    """Pure: the firm-events of ``deals`` (optionally filtered) estimated on ``returns`` as ``spec``
    says, each benchmark group (:meth:`StudySpec.groups`) with its own model, pooled into one result
    (:mod:`analysis.pooled`). What ``carousel study``, ``run`` and ``report`` compute."""
    if not getattr(model_spec(spec.model, spec.benchmarks), "batch_engine", True):
        return run_study(deals, returns, model=spec.model, benchmarks=spec.benchmarks,
                         estimation=spec.estimation, windows=spec.windows, min_obs=spec.min_obs,
                         deal_filter=deal_filter, ticker_filter=ticker_filter, conventions=spec.conventions,
                         method=spec.method, mask_other_events=spec.mask_other_events,
                         peers=list(spec.peers) or None, unknown_policy=spec.unknown_policy, spillovers=spillovers,
                         date_basis=spec.date_basis)
    events, all_events = study_events(
        deals, deal_filter=deal_filter, ticker_filter=ticker_filter, peers=list(spec.peers) or None,
        firm_events_fn=firm_events_fn, collapse_same_day=collapse_same_day, unknown_policy=spec.unknown_policy,
        spillovers=spillovers, date_basis=spec.date_basis,
    )
    calendars = (dict(all_events.select("ticker", "calendar").unique().iter_rows())
                 if "calendar" in all_events.columns else None)
    groups = spec.groups(all_events["ticker"].unique().to_list(), calendars)
    named = {t for g in groups[1:] for t in g.tickers}
    parts = []
    for i, group in enumerate(groups):
        member = pl.col("ticker").is_in(list(group.tickers)) if i else ~pl.col("ticker").is_in(list(named))
        sub = events.filter(member)
        if i and sub.height == 0:
            continue  # a filter left this group empty; the default group always runs (it names the model)
        try:
            study = EventStudy(
                returns.select("ticker", "date", "ret"),
                engine_events(sub),
                model=group.model,
                benchmarks=group.benchmarks,
                estimation=spec.estimation,
                windows=spec.windows,
                min_obs=spec.min_obs,
                conventions=BY_NAME[spec.conventions],
                mask_other_events=spec.mask_other_events,
                other_events=all_events.select("ticker", "t0"),
            )
            parts.append(study.fit(cast(Method, spec.method)))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return pool_results(parts)


def study(
    con: duckdb.DuckDBPyConnection,
    spec: StudySpec = DEFAULT_SPEC,
    *,
    deal_filter: list[str] | None = None,
    ticker_filter: list[str] | None = None,
) -> EventStudyResult:
    """The study of the database's ledger and prices as ``spec`` says: what ``carousel study`` prints."""
    deals, returns = load_inputs(con, spec.extra_tickers())
    return run_spec(deals, returns, spec, deal_filter=deal_filter, ticker_filter=ticker_filter)


def announcement_sizes(deals: pl.DataFrame, spec: StudySpec = DEFAULT_SPEC) -> pl.DataFrame:
    """Per firm-event (as the study builds them): the disclosed size of its announcement, in $bn.

    A firm-event stands for every deal row announced with it (two-way deals are two rows; one
    announcement can carry three), so its size is the sum over those rows' contracts, each contract
    once at its largest report; null when no amount is disclosed.
    """
    ev, _ = study_events(deals, peers=list(spec.peers) or None, unknown_policy=spec.unknown_policy)
    ev = ev.select("event_id", "deal_ids").explode("deal_ids")
    amounts = deals.select("deal_id", "contract_id", pl.col("amount_usd").cast(pl.Float64))
    return (
        ev.join(amounts, left_on="deal_ids", right_on="deal_id", how="left")
        .group_by("event_id", "contract_id")
        .agg(pl.col("amount_usd").max())
        .group_by("event_id")
        .agg((pl.col("amount_usd").sum() / 1e9).alias("amount_bn"), pl.col("amount_usd").count().alias("_n"))
        .with_columns(pl.when(pl.col("_n") > 0).then(pl.col("amount_bn")).alias("amount_bn"))
        .drop("_n")
        .sort("event_id")
    )
