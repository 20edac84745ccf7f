"""What a test compares to say "the database did not change": a hash of every table's rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

#: content hash by the bytes it was read from (the database file and its WAL), see :func:`content_hash`
_BY_BYTES: dict[tuple[str, str], str] = {}


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "-"


def content_hash(db: Path) -> str:
    """Hash of every base table's full content, in a stable order (independent of the file's bytes).

    Reading every row into Python costs about a second on the shipped data, and the attack corpus and the
    fault tests take it before and after each command. The content is a function of the bytes DuckDB
    opens (the file and its write-ahead log), so a hash already taken from the very same bytes is reused:
    identical bytes cannot hold other rows. Any changed byte (a command that wrote, even without changing
    a row) reads the rows again.
    """
    db = Path(db)
    key = (_file_digest(db), _file_digest(db.with_name(db.name + ".wal")))
    if key in _BY_BYTES:
        return _BY_BYTES[key]
    h = hashlib.sha256()
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        for t in tables:
            h.update(t.encode())
            rows = con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()  # noqa: S608 - catalog names
            h.update(repr(rows).encode())
    digest = h.hexdigest()
    # the bytes read must still be the ones keyed (nothing wrote while the rows were read)
    if key == (_file_digest(db), _file_digest(db.with_name(db.name + ".wal"))):
        _BY_BYTES[key] = digest
    return digest
