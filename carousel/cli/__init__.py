"""The ``carousel`` command line: one typer app assembled from each package's commands.

Errors derived from :class:`core.errors.CarouselError` are printed as one clear line on stderr and
turned into their exit code; nothing a user can cause should end in a traceback.

Cold start: ``carousel --help`` must not pay for duckdb, polars, numpy, pyarrow, scipy or matplotlib
(about 0.6 s to import, and help needs only typer). So this module and the command modules import them
inside the commands that use them, and command signatures use only typer, pathlib and typing
(tests/architecture/test_cold_start.py checks it in a fresh process).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from core.errors import CarouselError

app = typer.Typer(
    name="carousel",
    help="Measure the circular AI deal web: ledger, market data, event studies, figures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_err = Console(stderr=True)


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="DuckDB database file for the command that follows (same as its own "
                     "--db; env CAROUSEL_DB; default data/carousel.duckdb).", dir_okay=False),
    ] = None,
) -> None:
    """Measure the circular AI deal web: ledger, market data, event studies, figures."""
    # Read by every command's --db (carousel.cli.options.DbOption) when it has none of its own.
    if db is not None:
        ctx.meta["carousel.db"] = db


def _register() -> None:
    # Each package owns its commands; the shell only mounts them.
    from carousel.cli.explain import register as register_explain
    from carousel.cli.ledger import app as ledger_app
    from carousel.cli.market import register as register_market
    from carousel.cli.shell import register as register_carousel
    from carousel.cli.study import register as register_analysis

    app.add_typer(ledger_app, name="ledger", help="The event-sourced deal ledger.")
    register_market(app)
    register_analysis(app)
    register_carousel(app)
    register_explain(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sql_comment_safe(sys.argv[1:] if argv is None else list(argv))
    try:
        rv = app(args=args, standalone_mode=False)
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
    except CarouselError as err:
        # Text, not markup: messages quote user input, which may contain [brackets].
        _err.print(Text.assemble(("error: ", "bold red"), str(err)), highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        _err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        # A file-system condition (full disk, permissions, a path that is not a folder) while writing an
        # output: one line naming the file, exit 1; outputs are written to a temporary file and renamed,
        # so no half-written file is left behind.
        name = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot write{name}: {exc.strerror or exc}", 1)
    except Exception as exc:
        # Usage errors (bad option values) arrive here in non-standalone mode. Typer >= 0.20 vendors
        # click as ``typer._click``, so match both its and click's ClickException.
        if _is_click_exception(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        if not _is_duckdb_error(exc):
            raise
        from core import db

        if db.is_disk_full(exc):
            # A full disk (or a file-size limit) mid-write: DuckDB rolled the transaction back, so the
            # database holds what it held before; say so instead of a TransactionException traceback.
            where = f"database {db.last_opened}" if db.last_opened else "the database"
            _fail(f"{where} could not be written: the disk is full ({_first(exc)}); nothing was changed", 4)
        if not db.is_storage_error(exc):
            raise  # a query or programming error: keep the traceback for the bug report
        # Storage-level failures that surface in a query rather than at open (a damaged block, a disk
        # error): the database's fault, not a bug in the command, so a clear line and exit 4.
        where = f"database {db.last_opened}" if db.last_opened else "the database"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _err.print(
            Text.assemble(("error: ", "bold red"), f"{where} cannot be read: {first}"),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(4)


def _is_duckdb_error(exc: BaseException) -> bool:
    # duckdb is imported only by commands that open a database: if it was never imported, no duckdb
    # error can have been raised (and importing it here would cost every other command 0.1-0.3 s).
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def sql_comment_safe(args: list[str]) -> list[str]:
    """``carousel sql "-- note\nSELECT 1"``: the query starts with ``--``, which the option parser took
    for an (unknown) option. An argument of ``sql`` that starts with ``--`` followed by whitespace, or
    that spans lines, cannot be an option name, so a leading space is added (SQL ignores it)."""
    if not args or args[0] != "sql":
        return args
    return [a if not (a.startswith("--") and a != "--" and (a[2:3].isspace() or "\n" in a)) else " " + a
            for a in args]


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str, code: int) -> None:
    _err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    sys.exit(code)


def _is_click_exception(exc: BaseException) -> bool:
    # Either may be missing: typer >= 0.20 vendors click (click itself is then not installed by our
    # lock file), older typer depends on click.
    classes: list[type] = []
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        classes.append(VendoredClickException)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException

        classes.append(ClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(classes))
