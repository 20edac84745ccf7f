"""Commands of the market package: ``refresh``, ``schedule`` and ``market load-snapshot|status|validate``."""

from __future__ import annotations

import re
import shutil
import sys
from contextlib import suppress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from carousel.cli.options import DbOption
from core.paths import DATA_DIR, resolve_db

market_app = typer.Typer(help="Price store: load the offline snapshot, status, validation.",
                         no_args_is_help=True)
#: markup=False: tickers, batch messages and file names are printed as they are, never as rich markup.
_out = Console(markup=False)


class SourceName(StrEnum):
    yahoo = "yahoo"
    snapshot = "snapshot"


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _symbols(values: list[str] | None, option: str) -> list[str]:
    """Comma-separated Yahoo symbols, upper-cased (Yahoo is case-insensitive; the store keys on the
    exact string, so `nvda` would otherwise become a second ticker), deduplicated, each checked against
    the ledger's ticker rule. InputError naming the option on the first bad one."""
    from core.errors import InputError
    from market.sources import TICKER_RE

    out: list[str] = []
    for raw in _split(values):
        sym = raw.upper()
        if not TICKER_RE.match(sym):
            raise InputError(f"{raw!r} is not a Yahoo symbol (expected e.g. NVDA, 9984.T, ^GSPC)",
                             field=option)
        if sym not in out:
            out.append(sym)
    return out


_NO_NETWORK = re.compile(
    r"Could not resolve host|DNSError|Failed to establish a new connection|Network is unreachable|"
    r"Name or service not known|Temporary failure in name resolution|Connection refused|"
    r"ConnectionError|curl: \((6|7)\)", re.I)
#: What yfinance says for a ticker when its time-zone lookup failed, which offline is every ticker.
_NO_TIMEZONE = "no timezone found"


def network_unreachable(failed: dict[str, str]) -> bool:
    """True when the failures say the network is down: at least one connection error, and every
    other failure is one or yfinance's 'no timezone found' that the failed lookup causes."""
    if not failed:
        return False
    errors = list(failed.values())
    return any(_NO_NETWORK.search(e) for e in errors) and all(
        _NO_NETWORK.search(e) or _NO_TIMEZONE in e for e in errors)


def refresh_cmd(
    db: DbOption = None,
    source: Annotated[SourceName, typer.Option(help="yahoo (network) or snapshot (offline).")] = (
        SourceName.yahoo
    ),
    tickers: Annotated[list[str] | None, typer.Option(
        "--tickers", help="Comma-separated Yahoo symbols (default: ledger listed tickers + benchmarks).")
    ] = None,
    benchmarks: Annotated[str, typer.Option(help="Benchmarks added to the universe.")] = (
        "SPY,QQQ,SOXX,^GSPC"
    ),
    overlap: Annotated[int, typer.Option(min=0, help="Sessions re-fetched before the last stored date.")
                       ] = 5,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running refresh (instead of exiting 6) and "
                                                      "for the database lock (instead of exiting 3).")
                    ] = False,
    prices_dir: Annotated[Path, typer.Option(help="Snapshot folder for --source snapshot.")] = (
        DATA_DIR / "prices"
    ),
    max_attempts: Annotated[int, typer.Option(min=1)] = 5,
) -> None:
    """Incremental price refresh. Exit 0 ok, 1 partial, 2 failed, 6 another refresh is running."""
    from carousel.db import connect, connect_waiting
    from carousel.universe import exchanges, universe
    from core.errors import DatabaseLockedError
    from market.refresh import refresh, refresh_lock
    from market.sources import SnapshotSource, Source, YahooSource

    # Validated before the lock and the database are touched.
    wanted = _symbols(tickers, "--tickers")
    if tickers is not None and not wanted:
        # `--tickers "$LIST"` with an empty variable must not silently refresh the whole universe.
        from core.errors import InputError

        raise InputError("no symbol given (leave the option out to refresh the default universe)",
                         field="--tickers")
    bench = _symbols([benchmarks], "--benchmarks")
    path = resolve_db(db)
    src: Source = SnapshotSource(prices_dir) if source is SourceName.snapshot else YahooSource()
    if path.exists():
        # A foreign or damaged file is refused before the lock file is created next to it (a file held
        # by another process is checked once it is free, by the open below).
        with suppress(DatabaseLockedError):
            connect(path, read_only=True).close()
    with refresh_lock(path, wait=wait):
        con = connect_waiting(path, wait=wait)  # --wait also waits for the database lock (a long reader)
        try:
            note = None
            if not wanted:
                wanted, note = universe(con, tuple(bench))
            rep = refresh(con, src, wanted, overlap=overlap, max_attempts=max_attempts, exchanges=exchanges(con))
        finally:
            con.close()
    if note:
        _out.print(f"universe: {note}")
    b = rep.batch
    appended = b.appended_rows if b else 0
    _out.print(f"refresh {rep.status}: {len(rep.ok)}/{len(rep.tickers)} tickers ok, "
               f"{appended} rows appended (batch {b.batch_id if b else '-'}), {rep.attempts} requests")
    if rep.kept_fetched:
        _out.print("kept fetched prices for " + ", ".join(rep.kept_fetched)
                   + " (the snapshot never replaces fetched prices)")
    if rep.refetched:
        _out.print("full re-fetch (overlap changed): " + ", ".join(rep.refetched))
    for t, days in sorted(rep.not_closed.items()):
        _out.print(f"session not closed yet: {t} {', '.join(str(d) for d in days)} (not stored; "
                   "the next refresh stores the final values)")
    for r in b.revisions if b else []:
        _out.print(f"revision: {r.ticker} {r.rows} rows {r.first_date}..{r.last_date} "
                   f"({', '.join(r.fields)}); previous values kept")
    for t, gap in sorted(rep.missing_sessions.items()):
        shown = ", ".join(str(d) for d in gap[:5]) + (" ..." if len(gap) > 5 else "")
        _out.print(f"warning: {t}: {len(gap)} sessions missing against the calendar: {shown}")
    for t, days in sorted(rep.non_session.items()):
        shown = ", ".join(str(d) for d in days[:5]) + (" ..." if len(days) > 5 else "")
        _out.print(f"warning: {t}: {len(days)} row(s) on weekdays that are not sessions of the "
                   f"calendar (stored; check the source): {shown}", soft_wrap=True)
    if not rep.ok and network_unreachable(rep.failed):
        # One line instead of one per ticker: offline, every ticker fails for the same reason, and
        # yfinance words it as "possibly delisted; no timezone found", which misleads.
        print(f"error: Yahoo Finance cannot be reached (no network): none of the {len(rep.failed)} tickers "
              "was fetched and nothing was stored. Offline, load the shipped prices with "
              "`carousel refresh --source snapshot` (or `carousel market load-snapshot`).", file=sys.stderr)
    else:
        for t, e in sorted(rep.failed.items()):
            print(f"failed: {t}: {e}", file=sys.stderr)
    if rep.exit_code:
        # typer.Exit works both standalone and under carousel.cli.main (which exits with the code).
        raise typer.Exit(rep.exit_code)


def schedule_cmd(
    db: DbOption = None,
    log: Annotated[Path | None, typer.Option(help="Log file (default <db>.refresh.log).")] = None,
) -> None:
    """Print a crontab line and a systemd service + timer for a daily refresh after the US close."""
    from market.schedule import install_text, render

    path = resolve_db(db).resolve()
    exe = shutil.which("carousel") or "carousel"
    files = render(carousel=exe, db=path, log=(log or Path(f"{path}.refresh.log")).resolve(),
                   workdir=Path.cwd().resolve())
    print(install_text(files), end="")


@market_app.command("load-snapshot")
def load_snapshot_cmd(
    db: DbOption = None,
    prices_dir: Annotated[Path, typer.Option(help="Folder of <TICKER>.csv files.")] = DATA_DIR / "prices",
    shares_csv: Annotated[Path | None, typer.Option(
        "--shares-csv", help="Shares-outstanding CSV loaded with the prices (market values; default "
        "data/shares/shares_outstanding.csv).")] = None,
) -> None:
    """Load the offline snapshot (prices, then share counts) as one batch each, skipped if unchanged."""
    from carousel.db import connect
    from market.shares_store import load_shares_snapshot
    from market.snapshot import load_snapshot

    con = connect(db)
    warnings: list[str] = []
    try:
        rep = load_snapshot(con, prices_dir, warnings=warnings)
        shares = load_shares_snapshot(con, shares_csv) if shares_csv else load_shares_snapshot(con)
    finally:
        con.close()
    if rep.skipped and rep.batch_id is not None:
        _out.print(f"snapshot unchanged: already loaded as batch {rep.batch_id}; nothing written")
    elif rep.skipped:
        _out.print("snapshot not loaded: every ticker in it has fetched prices; nothing written")
    else:
        _out.print(f"batch {rep.batch_id}: {rep.appended_rows} rows appended "
                   f"({rep.new_rows} new, {rep.appended_rows - rep.new_rows} revised)")
    if rep.kept_fetched:
        _out.print("kept fetched prices for " + ", ".join(rep.kept_fetched)
                   + " (the snapshot never replaces fetched prices)")
    if shares.skipped:
        _out.print(f"share counts unchanged: already loaded as batch {shares.batch_id}; nothing written")
    else:
        _out.print(f"share counts batch {shares.batch_id}: {shares.appended_rows} rows appended "
                   f"({shares.revised_rows} revised)")
    for w in warnings:
        _out.print(f"warning: {w}", soft_wrap=True)


@market_app.command("status")
def status_cmd(db: DbOption = None) -> None:
    """Per ticker: rows, first/last date, latest batch; then the last batches."""
    from carousel.db import connect

    con = connect(db, read_only=True)
    try:
        per = con.execute(
            "SELECT ticker, count(*), min(date), max(date), max(batch_id) FROM prices "
            "GROUP BY ticker ORDER BY ticker").fetchall()
        batches = con.execute(
            "SELECT batch_id, source, fetched_at, status, row_count, message FROM price_batches "
            "ORDER BY batch_id DESC LIMIT 10").fetchall()
    finally:
        con.close()
    t = Table("ticker", "rows", "first", "last", "batch")
    for r in per:
        t.add_row(*(str(x) for x in r))
    _out.print(t)
    b = Table("batch", "source", "fetched_at", "status", "rows", "message")
    for r in batches:
        b.add_row(*("" if x is None else str(x) for x in r))
    _out.print(b)


@market_app.command("validate")
def validate_cmd(
    prices_dir: Annotated[Path, typer.Option(help="Folder of <TICKER>.csv files.")] = DATA_DIR / "prices",
) -> None:
    """Validate snapshot files (errors exit 2 naming file, line, field) and report missing sessions."""
    from market.snapshot import snapshot_files
    from market.sources import read_snapshot_file, ticker_for_file
    from market.validate import check_rows, missing_sessions

    files = snapshot_files(prices_dir)  # a missing or empty folder is an error, not an empty table
    t = Table("ticker", "calendar", "rows", "first", "last", "missing sessions", "non-session rows")
    for p in files:
        rows = read_snapshot_file(p)
        check_rows(rows, file=str(p))
        m = missing_sessions(rows, ticker_for_file(p))
        t.add_row(m.ticker, m.calendar, str(rows.height), str(m.first), str(m.last),
                  str(len(m.missing)), str(len(m.extra)))
    _out.print(t)


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh_cmd)
    app.command("schedule")(schedule_cmd)
    app.add_typer(market_app, name="market")

