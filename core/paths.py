"""Where carousel's files live: the repository root, the shipped data and the default database.

Why here: ledger, market and the shell all read the shipped ``data/`` folder, and the default database
path is part of the public interface (``--db`` falls back to $CAROUSEL_DB, then to it).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InputError

#: Repository root (the folder holding ``data/``); the package is installed editable from it.
ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
DEFAULT_DB = DATA_DIR / "carousel.duckdb"
ENV_VAR = "CAROUSEL_DB"


def resolve_db(path: str | Path | None = None) -> Path:
    """The database path: explicit argument, else $CAROUSEL_DB, else ``data/carousel.duckdb``.

    ``CAROUSEL_DB=""`` (a script whose variable was never filled) is an error, not the default database:
    silently writing to the shipped database is the one outcome the user did not ask for.
    """
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env is not None and not env.strip():
        raise InputError(f"${ENV_VAR} is set but empty: unset it to use the default "
                         f"data/carousel.duckdb, or give a path", field=ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_DB
