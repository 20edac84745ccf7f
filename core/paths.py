"""Where carousel's files live: the repository root, the shipped data and the default database.

Why here: ledger, market and the shell all read the shipped ``data/`` folder, and the default database
path is part of the public interface (``--db`` falls back to $CAROUSEL_DB, then to it).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root (the folder holding ``data/``); the package is installed editable from it.
ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
DEFAULT_DB = DATA_DIR / "carousel.duckdb"
ENV_VAR = "CAROUSEL_DB"


def resolve_db(path: str | Path | None = None) -> Path:
    """The database path: explicit argument, else $CAROUSEL_DB, else ``data/carousel.duckdb``."""
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_DB
