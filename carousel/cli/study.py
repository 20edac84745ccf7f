"""``carousel study``: the event study of the ledger's deals on the stored prices, from the shell.

Imperative shell: read deals and prices read-only from DuckDB, build firm-events and simple returns
(from adjusted close, via the market layer), hand them to the pure engine, print a rich table or JSON.
"""

from __future__ import annotations

import json
import math
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from analysis.models import benchmark_tickers, model_spec
from analysis.results import EventStudyResult, car_columns
from analysis.study import load_inputs, run_study
from analysis.summary import Column
from analysis.summary import Table as SummaryTable
from analysis.window import DEFAULT_WINDOWS, EventWindow
from carousel.cli.options import DbOption
from carousel.db import connect
from core.errors import InputError


def parse_window(text: str) -> EventWindow:
    """``'-1,1'`` (also ``'[-1,+1]'``, ``'-1:1'``) -> EventWindow(-1, 1); InputError naming the option."""
    try:
        return EventWindow.parse(text)
    except ValueError as exc:
        raise InputError(str(exc), field="--window") from None


def render_table(res: EventStudyResult, console: Console, dollars: pl.DataFrame | None = None) -> None:
    """The CAR table (one row per firm-event and window), then exclusions by reason.

    Labels, formats and alignment come from :func:`analysis.results.car_columns`, the spec every
    other rendering of the CAR table uses; rich only lays it out (bold rows: p < 0.05). ``dollars``
    (``res.car``'s rows with ``analysis.dollar_columns.DOLLAR_COLUMNS``) adds the dollar CAR in US$ bn,
    or its reason code where there is none.
    """
    title = (
        f"Event study: {res.model.name}"
        + (f" on {', '.join(res.model.benchmarks)}" if res.model.reads_benchmark_returns else "")
        + f", estimation [{res.estimation[0]},{res.estimation[1]}], {res.method}, {res.conventions.name}"
    )
    table = Table(title=title, show_lines=False)
    frame, columns = res.car, car_columns()
    if dollars is not None:
        cells = [(reason or "") if v is None else f"{v / 1e9:.1f}"
                 for v, reason in zip(dollars["dollar_car"], dollars["dollar_reason"], strict=True)]
        frame = frame.with_columns(pl.Series("_dollar_bn", cells, dtype=pl.Utf8))
        columns = (*columns, Column("_dollar_bn", "$CAR bn", align="right"))
    spec = SummaryTable(frame, columns)
    for col in spec.columns:
        table.add_column(col.header, justify=col.alignment, no_wrap=True)
    rows, _ = spec.cells()
    for cells, p in zip(rows, res.car["p"].to_list(), strict=True):
        sig = p is not None and p < 0.05
        table.add_row(*cells, style="bold" if sig else None)
    console.print(table)
    console.print(
        f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", highlight=False
    )
    if res.excluded.height:
        for r in res.excluded.sort("event_id").iter_rows(named=True):
            console.print(f"  excluded {r['event_id']}: {r['reason']}", highlight=False)


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
        # Imported here, as the other commands' heavy imports are: every carousel command builds the CLI.
        from analysis.dollar_columns import DOLLAR_COLUMNS, load_dollar_inputs, with_dollars

        if fmt not in ("table", "json"):
            raise InputError(f"unknown format {fmt!r}; choose table or json", field="--format")
        if method not in ("batch", "statsmodels", "event_dummy"):
            raise InputError(f"unknown method {method!r}", field="--method")
        wins = tuple(parse_window(w) for w in window) if window else DEFAULT_WINDOWS
        bench = tuple(benchmark) if benchmark else ("SPY",)
        try:
            resolved = model_spec(model, bench)
        except ValueError as exc:
            raise InputError(str(exc), field="--model") from None
        if not resolved.reads_benchmark_returns and len(bench) > 1:
            # These models read no benchmark returns; a second -b would be silently ignored.
            raise InputError(
                f"model {resolved.name!r} uses no benchmark returns: give at most one --benchmark, "
                "which only sets the trading-day grid",
                field="--benchmark",
            )
        with connect(db, read_only=True) as con:
            deals, returns = load_inputs(con, [*benchmark_tickers(bench), *(peer or [])])
            dollar_inputs = load_dollar_inputs(con, returns["ticker"].unique().to_list())
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
        # Dollar value moved (market value at t0-1 x CAR), row for row with res.car.
        dollars = with_dollars(res.car, dollar_inputs).select(DOLLAR_COLUMNS)
        if fmt == "json":
            keys = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar")
            records = [{k: rec[k] for k in keys} for rec in res.to_json_records()]
            for rec, extra in zip(records, dollars.iter_rows(named=True), strict=True):
                rec.update({k: None if isinstance(v, float) and not math.isfinite(v) else v
                            for k, v in extra.items()})
            typer.echo(json.dumps(records, indent=2))
            # stdout stays pure JSON for scripts; what was left out (and why) goes to stderr.
            typer.echo(f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", err=True)
            for r in res.excluded.sort("event_id").iter_rows(named=True):
                typer.echo(f"  excluded {r['event_id']}: {r['reason']}", err=True)
        else:
            console = Console(markup=False)  # deal ids and reasons are data, not rich markup
            if not console.is_terminal:
                # Piped or captured output: do not wrap deal ids at 80 columns.
                console = Console(width=200, markup=False)
            render_table(res, console, dollars)


__all__ = ["parse_window", "register", "render_table"]
