"""Commands of the shell itself: ``carousel sql``, ``carousel report`` and ``carousel run``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from carousel.cli.options import (
    BenchmarkOpt,
    ConfigOpt,
    ConventionsOpt,
    DateBasisOpt,
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
    build_explain_spec,
    build_spec,
)
from carousel.sql_limits import DEFAULT_MAX_ROWS, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT_S
from core.errors import InputError

#: markup=False: titles, tickers and query results are user data; rich would read "[headline
#: reconstructed from URL/lede]" as a tag and drop it, and crash on "[/x]".
_out = Console(highlight=False, soft_wrap=True, markup=False)
OutOption = Annotated[Path, typer.Option("--out", help="Output folder for report, figures and tables.")]


def _json_safe(row: dict[str, object]) -> dict[str, object]:
    """NaN and infinities become null: JSON has no literal for them (json.dumps would emit NaN)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def register(app: typer.Typer) -> None:
    @app.command("sql")
    def sql_cmd(
        sql: Annotated[str, typer.Argument(help="One SELECT over the views deals, flows, companies, "
                                                "ledger_events, prices, returns, abnormal_returns, car.")],
        fmt: Annotated[str, typer.Option(
            "--format", help="table | csv | json (one array) | jsonl (one object per line)")] = "table",
        timeout: Annotated[float, typer.Option(
            "--timeout", help="Stop the query after this many seconds.")] = DEFAULT_TIMEOUT_S,
        max_rows: Annotated[int, typer.Option(
            "--max-rows", help="Refuse a result with more rows than this (add a LIMIT).")] = DEFAULT_MAX_ROWS,
        memory_limit: Annotated[str, typer.Option(
            "--memory-limit", help="DuckDB memory limit for the query (no spilling to disk).")
        ] = DEFAULT_MEMORY_LIMIT,
        db: DbOption = None,
    ) -> None:
        """Run a read-only SQL query (writes are refused). It may start with a -- comment."""
        import polars as pl

        from carousel.queries import query

        if fmt not in ("table", "csv", "json", "jsonl"):
            raise InputError(f"unknown format {fmt!r}; choose table, csv, json or jsonl", field="--format")
        frame = query(sql, db, timeout=timeout, max_rows=max_rows, memory_limit=memory_limit)
        if fmt == "csv":
            # CSV has no nested values: lists and structs are written as JSON text.
            for col, dtype in frame.schema.items():
                if dtype.is_nested():
                    frame = frame.with_columns(
                        pl.Series(col, [json.dumps(v, default=str) for v in frame[col].to_list()], dtype=pl.String)
                    )
            sys.stdout.write(frame.write_csv())
        elif fmt == "json":
            # One JSON document (an array, [] when empty) so that json.load works on the output.
            records = [_json_safe(row) for row in frame.iter_rows(named=True)]
            sys.stdout.write(json.dumps(records, default=str, sort_keys=True, indent=1) + "\n")
        elif fmt == "jsonl":
            for row in frame.iter_rows(named=True):
                sys.stdout.write(json.dumps(_json_safe(row), default=str, sort_keys=True) + "\n")
        else:
            t = Table(*frame.columns)
            for r in frame.iter_rows():
                t.add_row(*("" if v is None else str(v) for v in r))
            _out.print(t)
            _out.print(f"{frame.height} rows")

    @app.command("verify")
    def verify_cmd(
        anchor: Annotated[Path | None, typer.Option(
            help="Anchor JSON from `carousel ledger anchor`, kept outside the database.")] = None,
        db: DbOption = None,
    ) -> None:
        """Check everything stored: file blocks, ledger chain, price chain, study stamp. Exit 5 on tampering."""
        from carousel.cli.ledger import _read_anchor
        from carousel.verify import verify_all

        doc = _read_anchor(anchor) if anchor else None  # a bad anchor file: exit 2 before the database opens
        report = verify_all(db, doc)
        for line in report.lines:
            _out.print(line)
        if not report.ok:
            from core.errors import ConflictError

            raise ConflictError(f"verify FAILED: {'; '.join(report.failures)}")

    @app.command("run")
    def run_cmd(
        out: OutOption = Path("out"),
        online: Annotated[bool, typer.Option("--online", help="Refresh prices from Yahoo first.")] = False,
        db: DbOption = None,
        config: ConfigOpt = None,
        model: ModelOpt = None,
        benchmark: BenchmarkOpt = None,
        estimation: EstimationOpt = None,
        window: WindowOpt = None,
        min_obs: MinObsOpt = None,
        peer: PeerOpt = None,
        conventions: ConventionsOpt = None,
        method: MethodOpt = None,
        mask_other_events: MaskOpt = None,
        lag_non_us: LagOpt = None,
        unknown_policy: UnknownOpt = None,
        date_basis: DateBasisOpt = None,
    ) -> None:
        """The main job: ledger, prices, event study, flow graph, figures, tables and the HTML report."""
        from carousel.mainjob import print_summary, run

        spec = build_spec(
            config, model=model, benchmark=benchmark, estimation=estimation, window=window, min_obs=min_obs,
            conventions=conventions, method=method, unknown_policy=unknown_policy, date_basis=date_basis,
            mask_other_events=mask_other_events, lag_non_us=lag_non_us, peer=peer,
        )
        summary = run(db, out, online=online, spec=spec, explain=build_explain_spec(config), console=_out)
        print_summary(summary, _out)

    @app.command("report")
    def report_cmd(
        out: OutOption = Path("out"),
        db: DbOption = None,
        config: ConfigOpt = None,
        model: ModelOpt = None,
        benchmark: BenchmarkOpt = None,
        estimation: EstimationOpt = None,
        window: WindowOpt = None,
        min_obs: MinObsOpt = None,
        peer: PeerOpt = None,
        conventions: ConventionsOpt = None,
        method: MethodOpt = None,
        mask_other_events: MaskOpt = None,
        lag_non_us: LagOpt = None,
        unknown_policy: UnknownOpt = None,
        date_basis: DateBasisOpt = None,
    ) -> None:
        """Write the self-contained HTML report (and its figures and tables) from the database."""
        from carousel.mainjob import run

        spec = build_spec(
            config, model=model, benchmark=benchmark, estimation=estimation, window=window, min_obs=min_obs,
            conventions=conventions, method=method, unknown_policy=unknown_policy, date_basis=date_basis,
            mask_other_events=mask_other_events, lag_non_us=lag_non_us, peer=peer,
        )
        summary = run(db, out, spec=spec, explain=build_explain_spec(config), console=_out, load_inputs=False)
        _out.print(f"report written: {summary.out / 'report.html'}")
