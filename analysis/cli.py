"""``carousel study``: the event study of the ledger's deals on the stored prices, from the shell.

Imperative shell: read deals and prices read-only from DuckDB, build firm-events and simple returns
(from adjusted close, via the market layer), hand them to the pure engine, print a rich table or JSON.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, cast

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from analysis.conventions import BY_NAME
from analysis.engine import DEFAULT_WINDOWS, EventStudy, Method, window_label
from analysis.models import benchmark_tickers, model_spec
from analysis.results import EventStudyResult
from carousel.db import DbOption
from carousel.errors import InputError


def parse_window(text: str) -> tuple[int, int]:
    """``'-1,1'`` (also ``'[-1,+1]'``, ``'-1:1'``) -> (-1, 1); InputError naming the option otherwise."""
    t = text.strip().strip("[]()").replace(":", ",").replace(" ", "")
    parts = t.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        raise InputError(
            f"window {text!r} is not 'start,end' (e.g. -1,1)", field="--window"
        ) from None
    if a > b:
        raise InputError(f"window {text!r} ends before it starts", field="--window")
    return a, b


def load_inputs(db: Path | None, extra_tickers: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deals, returns) read-only from the database: ledger.api.deals, and market returns of the deals'
    tickers, ``extra_tickers`` (benchmarks, peers) and SPY (the default trading-day grid)."""
    from carousel.db import connect

    ledger_api = importlib.import_module("ledger.api")
    market_api = importlib.import_module("market.api")
    market_returns = importlib.import_module("market.returns")
    con = connect(db, read_only=True)
    try:
        deals = ledger_api.deals(con)
        deal_tickers = deals.select(pl.col("tickers").explode()).drop_nulls().to_series().to_list()
        tickers = sorted(set(deal_tickers) | set(extra_tickers) | {"SPY"})
        prices = market_api.prices(con, tickers)
    finally:
        con.close()
    returns = market_returns.compute_returns(prices)
    return deals, returns


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
) -> EventStudyResult:
    """Pure: firm-events of ``deals`` (optionally filtered) estimated on ``returns``."""
    from analysis.events import firm_events

    if conventions not in BY_NAME:
        raise InputError(
            f"unknown conventions {conventions!r}; choose {', '.join(BY_NAME)}",
            field="--conventions",
        )
    if unknown_policy not in ("same_day", "next_session"):
        raise InputError(
            f"unknown policy {unknown_policy!r}; choose same_day or next_session", field="--unknown-policy"
        )
    if firm_events_fn is not None:
        events = firm_events_fn(deals)
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
    # Every event's tickers must be priced; the study would only exclude them, but the benchmark
    # itself is an input error.
    try:
        study = EventStudy(
            returns.select("ticker", "date", "ret"),
            events.select("event_id", "deal_id", "ticker", "t0"),
            model=model,
            benchmarks=benchmarks,
            estimation=estimation,
            windows=windows,
            min_obs=min_obs,
            conventions=BY_NAME[conventions],
            mask_other_events=mask_other_events,
            other_events=all_events.select("ticker", "t0"),
        )
        return study.fit(cast(Method, method))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def render_table(res: EventStudyResult, console: Console) -> None:
    """The CAR table (one row per firm-event and window), then exclusions by reason."""
    title = (
        f"Event study: {res.model.name}"
        + (
            f" on {', '.join(res.model.benchmarks)}"
            if res.model.name not in ("mean", "ff3")
            else ""
        )
        + f", estimation [{res.estimation[0]},{res.estimation[1]}], {res.method}, {res.conventions.name}"
    )
    table = Table(title=title, show_lines=False)
    for col, just in (
        ("deal", "left"),
        ("ticker", "left"),
        ("t0", "left"),
        ("window", "left"),
        ("CAR %", "right"),
        ("se %", "right"),
        ("t", "right"),
        ("p", "right"),
        ("BHAR %", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in res.car.iter_rows(named=True):
        sig = r["p"] is not None and r["p"] < 0.05
        style = "bold" if sig else None
        table.add_row(
            str(r["deal_id"]),
            r["ticker"],
            str(r["t0"]),
            r["window"],
            _pct(r["car"]),
            _pct(r["se"]),
            _num(r["t"], ".2f"),
            _num(r["p"], ".4f"),
            _pct(r["bhar"]),
            style=style,
        )
    console.print(table)
    console.print(
        f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", highlight=False
    )
    if res.excluded.height:
        for r in res.excluded.sort("event_id").iter_rows(named=True):
            console.print(f"  excluded {r['event_id']}: {r['reason']}", highlight=False)


def _pct(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def _num(v: float | None, spec: str) -> str:
    return "" if v is None or not math.isfinite(v) else format(v, spec)


def register(app: typer.Typer) -> None:
    """Add ``carousel study`` to the shell's app."""

    @app.command("study")
    def study(
        db: DbOption = None,
        model: Annotated[
            str, typer.Option(help="mean | market_adjusted | market | multifactor | ff3")
        ] = "market",
        benchmark: Annotated[
            list[str] | None,
            typer.Option(
                "--benchmark",
                "-b",
                help="Benchmark ticker (repeatable); 'SPY[-1]' lags it one trading day (Tokyo). "
                "For mean and ff3 one ticker, which only sets the trading-day grid.",
            ),
        ] = None,
        estimation: Annotated[
            tuple[int, int], typer.Option(help="Estimation window start end, trading days from t0.")
        ] = (-250, -11),
        window: Annotated[
            list[str] | None,
            typer.Option(
                "--window", "-w", help="Event window 'start,end' (repeatable), e.g. -1,1."
            ),
        ] = None,
        min_obs: Annotated[int, typer.Option(help="Minimum estimation observations.")] = 120,
        deal: Annotated[
            list[str] | None, typer.Option("--deal", help="Only this deal id (repeatable).")
        ] = None,
        ticker: Annotated[
            list[str] | None, typer.Option("--ticker", help="Only this ticker (repeatable).")
        ] = None,
        peer: Annotated[
            list[str] | None,
            typer.Option("--peer", help="Add this ticker to every deal as a peer (repeatable)."),
        ] = None,
        conventions: Annotated[str, typer.Option(help="textbook | estudy2")] = "textbook",
        method: Annotated[str, typer.Option(help="batch | statsmodels | event_dummy")] = "batch",
        flag_other_events: Annotated[
            bool,
            typer.Option(
                help="Keep (and count) other events in the estimation window instead of masking."
            ),
        ] = False,
        unknown_policy: Annotated[
            str,
            typer.Option(
                help="t0 of announcements whose time of day is unknown: same_day (the US business day "
                "of the date; next Tokyo session for 9984.T) | next_session (as if after the close)."
            ),
        ] = "same_day",
        fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    ) -> None:
        """Abnormal returns around every deal announcement (CAR, se, t, p per firm-event and window)."""
        if fmt not in ("table", "json"):
            raise InputError(f"unknown format {fmt!r}; choose table or json", field="--format")
        if method not in ("batch", "statsmodels", "event_dummy"):
            raise InputError(f"unknown method {method!r}", field="--method")
        wins = tuple(parse_window(w) for w in window) if window else DEFAULT_WINDOWS
        bench = tuple(benchmark) if benchmark else ("SPY",)
        try:
            resolved = model_spec(model, bench).name
        except ValueError as exc:
            raise InputError(str(exc), field="--model") from None
        if resolved in ("mean", "ff3") and len(bench) > 1:
            # These models read no benchmark returns; a second -b would be silently ignored.
            raise InputError(
                f"model {resolved!r} uses no benchmark returns: give at most one --benchmark, "
                "which only sets the trading-day grid",
                field="--benchmark",
            )
        deals, returns = load_inputs(db, [*benchmark_tickers(bench), *(peer or [])])
        res = run_study(
            deals,
            returns,
            model=model,
            benchmarks=bench,
            estimation=(int(estimation[0]), int(estimation[1])),
            windows=wins,
            min_obs=min_obs,
            deal_filter=deal,
            ticker_filter=ticker,
            peers=peer,
            conventions=conventions,
            method=method,
            mask_other_events=not flag_other_events,
            unknown_policy=unknown_policy,
        )
        if fmt == "json":
            keys = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar")
            records = [{k: rec[k] for k in keys} for rec in res.to_json_records()]
            typer.echo(json.dumps(records, indent=2))
            # stdout stays pure JSON for scripts; what was left out (and why) goes to stderr.
            typer.echo(f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", err=True)
            for r in res.excluded.sort("event_id").iter_rows(named=True):
                typer.echo(f"  excluded {r['event_id']}: {r['reason']}", err=True)
        else:
            console = Console()
            if not console.is_terminal:
                # Piped or captured output: do not wrap deal ids at 80 columns.
                console = Console(width=200)
            render_table(res, console)


__all__ = ["load_inputs", "parse_window", "register", "render_table", "run_study", "window_label"]
