"""``carousel study``: the event study of the ledger's deals on the stored prices, from the shell.

Imperative shell: read deals and prices read-only from DuckDB, build firm-events and simple returns
(from adjusted close, via the market layer), hand them to the pure engine, print a rich table or JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analysis.results import EventStudyResult, car_columns
from analysis.study import study as run_db_study
from analysis.summary import Table as SummaryTable
from analysis.window import EventWindow
from carousel.cli.options import (
    BenchmarkOpt,
    ConfigOpt,
    ConventionsOpt,
    DbOption,
    EstimationOpt,
    LagOpt,
    MaskOpt,
    MethodOpt,
    MinObsOpt,
    ModelOpt,
    PeerOpt,
    UnknownOpt,
    WindowOpt,
    build_spec,
)
from carousel.db import connect
from core.errors import InputError


def parse_window(text: str) -> EventWindow:
    """``'-1,1'`` (also ``'[-1,+1]'``, ``'-1:1'``) -> EventWindow(-1, 1); InputError naming the option."""
    try:
        return EventWindow.parse(text)
    except ValueError as exc:
        raise InputError(str(exc), field="--window") from None


def render_table(res: EventStudyResult, console: Console) -> None:
    """The CAR table (one row per firm-event and window), then exclusions by reason.

    Labels, formats and alignment come from :func:`analysis.results.car_columns`, the spec every
    other rendering of the CAR table uses; rich only lays it out (bold rows: p < 0.05).
    """
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
    spec = SummaryTable(res.car, car_columns())
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


RECORD_KEYS = ("event_id", "deal_id", "ticker", "t0", "window", "car", "se", "t", "p", "bhar")
FORMATS = ("table", "json", "csv", "parquet")


def register(app: typer.Typer) -> None:
    """Add ``carousel study`` to the shell's app."""

    @app.command("study")
    def study(
        db: DbOption = None,
        config: ConfigOpt = None,
        model: ModelOpt = None,
        benchmark: BenchmarkOpt = None,
        estimation: EstimationOpt = None,
        window: WindowOpt = None,
        min_obs: MinObsOpt = None,
        deal: Annotated[
            list[str] | None, typer.Option("--deal", help="Only this deal id (repeatable).")
        ] = None,
        ticker: Annotated[
            list[str] | None, typer.Option("--ticker", help="Only this ticker (repeatable).")
        ] = None,
        peer: PeerOpt = None,
        conventions: ConventionsOpt = None,
        method: MethodOpt = None,
        mask_other_events: MaskOpt = None,
        lag_non_us: LagOpt = None,
        unknown_policy: UnknownOpt = None,
        fmt: Annotated[str, typer.Option("--format", help="table | json | csv | parquet (needs --out)")] = "table",
        out: Annotated[
            Path | None, typer.Option("--out", help="File for --format parquet (csv/json: stdout unless given).",
                                      dir_okay=False)
        ] = None,
    ) -> None:
        """Abnormal returns around every deal announcement (CAR, se, t, p per firm-event and window)."""
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}", field="--format")
        if fmt == "parquet" and out is None:
            raise InputError("--format parquet writes a file: give --out FILE.parquet", field="--out")
        spec = build_spec(
            config, model=model, benchmark=benchmark, estimation=estimation, window=window, min_obs=min_obs,
            conventions=conventions, method=method, unknown_policy=unknown_policy,
            mask_other_events=mask_other_events, lag_non_us=lag_non_us, peer=peer,
        )
        with connect(db, read_only=True) as con:
            res = run_db_study(con, spec, deal_filter=deal, ticker_filter=ticker)
        if fmt == "table":
            console = Console()
            if not console.is_terminal:
                # Piped or captured output: do not wrap deal ids at 80 columns.
                console = Console(width=200)
            render_table(res, console)
            return
        if fmt == "json":
            records = [{k: rec[k] for k in RECORD_KEYS} for rec in res.to_json_records()]
            text = json.dumps(records, indent=2)
            if out is None:
                typer.echo(text)
            else:
                out.write_text(text + "\n", encoding="utf-8")
        else:
            frame = res.car.select(RECORD_KEYS)
            if fmt == "csv":
                if out is None:
                    sys.stdout.write(frame.write_csv(float_precision=10))
                else:
                    frame.write_csv(out, float_precision=10)
            else:
                try:
                    frame.write_parquet(out)  # type: ignore[arg-type]
                except OSError as exc:
                    raise InputError(f"cannot write {out}: {exc.strerror or exc}", field="--out") from None
        # stdout stays pure data for scripts; what was left out (and why) goes to stderr.
        typer.echo(f"{res.nobs} firm-events estimated, {res.excluded.height} excluded", err=True)
        for r in res.excluded.sort("event_id").iter_rows(named=True):
            typer.echo(f"  excluded {r['event_id']}: {r['reason']}", err=True)


__all__ = ["parse_window", "register", "render_table"]
