"""Load the offline price snapshot (``data/prices/*.csv``) into the store as one batch.

Idempotence: the batch records a SHA-256 over the file names and bytes. If a batch with the same hash
already exists the load is skipped (``BatchReport.skipped``) and nothing is written. Even without the
hash, the store appends only new or changed rows, so a re-load could never duplicate values.
All files are read and validated before anything is written: one bad file means nothing is stored.
Rows on weekdays that are not sessions of the ticker's calendar are stored and reported as warnings
(see ``market.validate`` for why they are not errors).

Fetched prices win: a ticker that already has rows from a non-snapshot source (Yahoo) is skipped and
reported in ``BatchReport.kept_fetched``; the snapshot is older and on another adjustment basis, and as
the latest batch it would replace Yahoo's values up to its end date while later days keep Yahoo's basis,
inventing a return on the seam day. Tickers without fetched rows load as before.

A file for a ticker with stored (snapshot) rows is held to the refresh's rule
(``market.refresh.refetch_refusals``): if its values differ from the stored ones and it lacks a stored date
(starts later, ends earlier, has a hole), the stored days it does not replace would keep the old basis, so
the whole load is refused (InputError naming the file) and nothing is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl

from core.errors import InputError
from core.paths import DATA_DIR
from market.refresh import refetch_refusals
from market.sources import check_regular_file, read_snapshot_file, ticker_for_file
from market.store import (
    SNAPSHOT,
    BatchReport,
    append_batch,
    fetched_tickers,
    last_dates,
    stored_rows,
)
from market.validate import check_rows, non_session_warning


def content_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.name):
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def snapshot_files(prices_dir: Path) -> list[Path]:
    """The ``*.csv`` files of a snapshot folder, sorted; InputError naming the folder if there are none,
    or naming the first entry that is not a regular file (a directory, FIFO, dangling link, loop)."""
    prices_dir = Path(prices_dir)
    if not prices_dir.is_dir():
        raise InputError("folder does not exist", file=prices_dir)
    files = sorted(prices_dir.glob("*.csv"))
    if not files:
        raise InputError("no *.csv price files found", file=prices_dir)
    # Every entry is checked before any is read (and before the content hash reads their bytes).
    for p in files:
        check_regular_file(p)
    return files


def read_snapshot(prices_dir: Path, warnings: list[str] | None = None) -> pl.DataFrame:
    """Every file read and validated (InputError on the first bad one); warnings appended to ``warnings``."""
    files = snapshot_files(prices_dir)
    frames = []
    for p in files:
        rows = read_snapshot_file(p)
        check_rows(rows, file=str(p))
        if warnings is not None:
            w = non_session_warning(rows, ticker_for_file(p))
            if w:
                warnings.append(w)
        frames.append(rows)
    return pl.concat(frames)


def load_snapshot(con: duckdb.DuckDBPyConnection, prices_dir: Path = DATA_DIR / "prices", *,
                  warnings: list[str] | None = None) -> BatchReport:
    """Validate every file, then append one batch. Data warnings (non-session rows) go to ``warnings``."""
    files = snapshot_files(prices_dir)
    digest = content_hash(files)
    hits = con.execute(
        "SELECT batch_id FROM price_batches WHERE content_hash = ? ORDER BY batch_id LIMIT 1", [digest]
    ).fetchall()
    found = hits[0] if hits else None
    if found is not None:
        return BatchReport(batch_id=int(found[0]), source=SNAPSHOT, status="ok", fetched_rows=0,
                           appended_rows=0, new_rows=0, skipped=True,
                           message="identical snapshot already loaded")
    rows = read_snapshot(Path(prices_dir), warnings)
    # Fetched rows only ever accumulate (the store is append-only), so a ticker skipped here stays
    # skipped: recording the content hash below cannot hide a ticker that a later load should take.
    kept = sorted(set(rows["ticker"].unique().to_list()) & fetched_tickers(con))
    note = f"kept fetched prices for {', '.join(kept)}" if kept else None
    load = rows.filter(~pl.col("ticker").is_in(kept))
    if load.is_empty():
        return BatchReport(batch_id=None, source=SNAPSHOT, status="ok", fetched_rows=0,
                           appended_rows=0, new_rows=0, skipped=True, message=note, kept_fetched=kept)
    loaded = sorted(t for t in (ticker_for_file(p) for p in files) if t not in kept)
    held = sorted(set(loaded) & set(last_dates(con)))
    if held:
        refused = refetch_refusals(load.filter(pl.col("ticker").is_in(held)), stored_rows(con, held),
                                   what="snapshot file")
        if refused:
            t = min(refused)
            by_ticker = {ticker_for_file(p): p for p in files}
            raise InputError(f"{t}: {refused[t]}; nothing loaded", file=by_ticker[t])
    rep = append_batch(
        con, load, source=SNAPSHOT, tickers=loaded,
        start=load["date"].min(), end=load["date"].max(),  # type: ignore[arg-type]
        message="; ".join(m for m in (f"{len(files)} files from {prices_dir}", note) if m),
        content_hash=digest,
    )
    rep.kept_fetched = kept
    return rep
