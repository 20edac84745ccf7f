"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.paths import ENV_VAR

#: ``--db PATH``, falling back to $CAROUSEL_DB, then ``data/carousel.duckdb`` (see core.paths.resolve_db).
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar=ENV_VAR,
        help=f"DuckDB database file (env {ENV_VAR}; default data/carousel.duckdb).",
        dir_okay=False,
    ),
]
