"""Load the offline price snapshot (``data/prices/*.csv``) into the store as one batch.

Idempotence: the batch records a SHA-256 over the file names and bytes. If a batch with the same hash
already exists the load is skipped (``BatchReport.skipped``) and nothing is written. Even without the
hash, the store appends only new or changed rows, so a re-load could never duplicate values.
All files are read and validated before anything is written: one bad file means nothing is stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl

from carousel.db import DATA_DIR
from carousel.errors import InputError
from market.sources import read_snapshot_file, ticker_for_file
from market.store import BatchReport, append_batch
from market.validate import check_rows


def content_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.name):
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def read_snapshot(prices_dir: Path) -> pl.DataFrame:
    files = sorted(Path(prices_dir).glob("*.csv"))
    if not files:
        raise InputError("no *.csv price files found", file=prices_dir)
    frames = []
    for p in files:
        rows = read_snapshot_file(p)
        check_rows(rows, file=str(p))
        frames.append(rows)
    return pl.concat(frames)


def load_snapshot(con: duckdb.DuckDBPyConnection, prices_dir: Path = DATA_DIR / "prices") -> BatchReport:
    files = sorted(Path(prices_dir).glob("*.csv"))
    digest = content_hash(files)
    hits = con.execute(
        "SELECT batch_id FROM price_batches WHERE content_hash = ? ORDER BY batch_id LIMIT 1", [digest]
    ).fetchall()
    found = hits[0] if hits else None
    if found is not None:
        return BatchReport(batch_id=int(found[0]), source="snapshot", status="ok", fetched_rows=0,
                           appended_rows=0, new_rows=0, skipped=True,
                           message="identical snapshot already loaded")
    rows = read_snapshot(Path(prices_dir))
    return append_batch(
        con, rows, source="snapshot", tickers=[ticker_for_file(p) for p in files],
        start=rows["date"].min(), end=rows["date"].max(),  # type: ignore[arg-type]
        message=f"{len(files)} files from {prices_dir}", content_hash=digest,
    )
