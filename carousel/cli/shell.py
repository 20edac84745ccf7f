"""Commands of the shell itself: ``carousel sql``, ``carousel report`` and ``carousel run``."""

from __future__ import annotations

import functools
import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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
    FormatsOpt,
    JobsOpt,
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


#: The study options of ``run`` and ``report`` (``carousel study`` lists its own), each passed to
#: :func:`carousel.cli.options.build_spec` under its parameter name.
_STUDY_OPTIONS: dict[str, object] = {
    "config": ConfigOpt, "model": ModelOpt, "benchmark": BenchmarkOpt, "estimation": EstimationOpt,
    "window": WindowOpt, "min_obs": MinObsOpt, "peer": PeerOpt, "conventions": ConventionsOpt,
    "method": MethodOpt, "mask_other_events": MaskOpt, "lag_non_us": LagOpt, "unknown_policy": UnknownOpt,
    "date_basis": DateBasisOpt,
}


def _with_study_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command(spec, config, **own)`` as a typer command with its own options plus the study options,
    the StudySpec built once from them (defaults < carousel.toml < command line); ``config`` is the
    ``--config`` path, for the other sections of carousel.toml (``[explain]``).

    Why: ``run`` and ``report`` estimate the same study; one list cannot drift apart. typer reads the
    options from the wrapper's signature, so it is the command's own parameters (without ``spec``)
    followed by :data:`_STUDY_OPTIONS`, each defaulting to None (not given).
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name not in ("spec", "config")]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=opt)
             for name, opt in _STUDY_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        config = kwargs["config"]
        spec = build_spec(**{name: kwargs.pop(name) for name in _STUDY_OPTIONS})
        command(spec, config, **kwargs)

    params = own + extra
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return wrapper


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
        """Check everything stored: file blocks, ledger chain, price and share chains, study stamp. Exit 5 on
        tampering."""
        from carousel import anchor as anchors
        from carousel.verify import verify_all

        doc = anchors.read(anchor) if anchor else None  # a bad anchor file: exit 2 before the database opens
        report = verify_all(db, doc)
        for line in report.lines:
            _out.print(line)
        if not report.ok:
            from core.errors import ConflictError

            raise ConflictError(f"verify FAILED: {'; '.join(report.failures)}")

    @app.command("run")
    @_with_study_options
    def run_cmd(
        spec: object,
        config: Path | None,
        out: OutOption = Path("out"),
        online: Annotated[bool, typer.Option("--online", help="Refresh prices from Yahoo first.")] = False,
        db: DbOption = None,
        formats: FormatsOpt = None,
        jobs: JobsOpt = None,
    ) -> None:
        """The main job: ledger, prices, event study, flow graph, figures, tables and the HTML report."""
        from carousel.figure_pool import default_workers, parse_formats
        from carousel.mainjob import print_summary, run

        summary = run(db, out, online=online, spec=spec, explain=build_explain_spec(config),  # type: ignore[arg-type]
                      console=_out, formats=parse_formats(formats),
                      jobs=default_workers() if jobs is None else jobs)
        print_summary(summary, _out)

    @app.command("report")
    @_with_study_options
    def report_cmd(
        spec: object,
        config: Path | None,
        out: OutOption = Path("out"),
        db: DbOption = None,
        formats: FormatsOpt = None,
        jobs: JobsOpt = None,
    ) -> None:
        """Write the self-contained HTML report (and its figures and tables) from the database."""
        from carousel.figure_pool import default_workers, parse_formats
        from carousel.mainjob import run

        summary = run(db, out, spec=spec, explain=build_explain_spec(config),  # type: ignore[arg-type]
                      console=_out, load_inputs=False, formats=parse_formats(formats),
                      jobs=default_workers() if jobs is None else jobs)
        _out.print(f"report written: {summary.out / 'report.html'}")
