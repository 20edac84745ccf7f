"""What a test compares to say "the database did not change": a hash of every table's rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb


def content_hash(db: Path) -> str:
    """Hash of every base table's full content, in a stable order (independent of the file's bytes)."""
    h = hashlib.sha256()
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        for t in tables:
            h.update(t.encode())
            rows = con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()  # noqa: S608 - catalog names
            h.update(repr(rows).encode())
    return h.hexdigest()
