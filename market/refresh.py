"""Incremental refresh of the price store from a Source (Yahoo by default).

* Start per ticker = last stored date minus ``overlap`` sessions (new tickers: ``DEFAULT_START``).
  Tickers sharing a start date are fetched in one batched request.
* If the re-fetched overlap differs from what is stored (Yahoo re-adjusted history after a dividend or
  split), or shares no date with it (nothing shows the two are on one basis), the ticker is re-fetched in
  full, from its first stored date (or ``start_default`` if earlier), so the whole revised history is
  stored; the old values stay in ``price_rows`` and the revision is reported.
* A ticker's stored history stays on one adjustment basis: a full re-fetch that lacks a stored date
  (starts after the first, ends before the last, or has a hole) is refused for that ticker (reported as
  failed, stored prices untouched) unless it agrees with the stored rows on every date they share. Appended,
  it would become the latest version of some days only, on another basis than the stored days it does not
  replace, and invent a return at each seam (a 2:1 split re-adjustment: -50% on a flat day).
* Snapshot refreshes (``--source snapshot``) skip every ticker that already has fetched (non-snapshot)
  rows and report it (``kept_fetched``): the older, differently adjusted snapshot never replaces them.
* Rows of a session that has not closed yet (close per the ticker's exchange calendar, half days included,
  after ``clock()``) are dropped and reported (``not_closed``): during trading hours Yahoo serves the
  unfinished bar, which would otherwise be stored as that day's close. The next refresh stores it.
* Rate limits and timeouts are retried with exponential backoff (``sleep`` is injectable for tests).
* The tickers that succeeded are committed in one batch; failed ones are reported.
  Exit codes: 0 all ok, 1 partial, 2 all failed, 6 another refresh holds the lock.
* Single writer: ``fcntl.flock`` on ``<db>.refresh.lock`` (holding our pid). The OS releases it when the
  process dies, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import duckdb
import polars as pl

from core.errors import CarouselError, InputError
from market.calendars import calendar_for, close_time_utc, sessions_back
from market.sources import RetryableError, Source, TickerResult
from market.store import (
    SNAPSHOT,
    VALUE_COLUMNS,
    BatchReport,
    append_batch,
    differs,
    fetched_tickers,
    last_dates,
    stored_rows,
)
from market.validate import check_rows, missing_sessions

DEFAULT_START = date(2018, 1, 1)
DEFAULT_OVERLAP = 5
BENCHMARKS = ("SPY", "QQQ", "SOXX", "^GSPC")
EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_RUNNING = 0, 1, 2, 6


class RefreshRunning(CarouselError):
    exit_code = EXIT_RUNNING


@contextmanager
def refresh_lock(db: Path, *, wait: bool = False) -> Iterator[Path]:
    """Exclusive refresh lock next to the database; raises RefreshRunning unless ``wait``."""
    path = Path(f"{db}.refresh.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RefreshRunning(
                    f"refresh already running (pid {holder}); lock {path}; use --wait to wait for it"
                ) from None
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            print(f"waiting for the running refresh (pid {holder}) to finish", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class RefreshReport:
    tickers: list[str]
    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refetched: list[str] = field(default_factory=list)
    attempts: int = 0
    batch: BatchReport | None = None
    universe_note: str | None = None
    #: Sessions of the exchange calendar missing inside each stored ticker's fetched range.
    missing_sessions: dict[str, list[date]] = field(default_factory=dict)
    #: Snapshot source only: requested tickers left alone because they have fetched (non-snapshot) rows.
    kept_fetched: list[str] = field(default_factory=list)
    #: Sessions served before their close (unfinished bars), per ticker; not stored.
    not_closed: dict[str, list[date]] = field(default_factory=dict)
    #: Stored rows on weekdays that are not sessions of the ticker's calendar (warnings, see validate).
    non_session: dict[str, list[date]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return EXIT_OK
        return EXIT_PARTIAL if self.ok else EXIT_FAILED

    @property
    def status(self) -> str:
        return {EXIT_OK: "ok", EXIT_PARTIAL: "partial", EXIT_FAILED: "failed"}[self.exit_code]


def fetch_with_retry(
    source: Source, tickers: list[str], start: date, end: date | None, *,
    max_attempts: int = 5, base_delay: float = 2.0, sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, TickerResult], int]:
    """Fetch; retry the whole request or the individual tickers that hit a retryable error.

    Delay before attempt k (k >= 2) is ``base_delay * 2**(k-2)``: 2, 4, 8, 16 s by default.
    """
    final: dict[str, TickerResult] = {}
    pending = list(tickers)
    attempt = 0
    last_error = "not attempted"
    while pending and attempt < max_attempts:
        if attempt:
            sleep(base_delay * 2 ** (attempt - 1))
        attempt += 1
        try:
            results = source.fetch(pending, start, end)
        except RetryableError as exc:
            last_error = str(exc)
            continue
        retry = []
        for t in pending:
            res = results.get(t) or TickerResult(t, error="missing from source result")
            if res.ok or not res.retryable:
                final[t] = res
            else:
                retry.append(t)
                last_error = res.error or last_error
        pending = retry
    for t in pending:
        final[t] = TickerResult(t, error=f"gave up after {attempt} attempts: {last_error}",
                                retryable=True)
    return final, attempt


#: Columns whose change in the overlap means history was re-adjusted. Volume is left out on purpose:
#: Yahoo routinely finalises the last day's volume after the close (see data/prices/PROVENANCE.md);
#: a volume-only change is still stored and reported as a revision, without a full re-fetch.
REFETCH_COLUMNS = [c for c in VALUE_COLUMNS if c != "volume"]


def overlap_changed(fetched: pl.DataFrame, stored: pl.DataFrame,
                    columns: list[str] = REFETCH_COLUMNS) -> list[str]:
    """Tickers whose re-fetched rows differ from the stored ones (the store's rule: ``differs``)."""
    j = fetched.join(stored, on=["ticker", "date"], how="inner", suffix="_old")
    if j.is_empty():
        return []
    diffs = [differs(c, pl.col(c), pl.col(f"{c}_old")) for c in columns]
    return sorted(j.filter(pl.any_horizontal(diffs))["ticker"].unique().to_list())


def unverified(fetched: pl.DataFrame, stored: pl.DataFrame) -> list[str]:
    """Tickers with fetched rows of which none falls on a stored date.

    Why: the overlap check compares shared dates only, so a fetch that shares none (the source lacks the
    stored overlap days) would pass it unseen and append new rows on whatever basis the source now uses.
    """
    have = set(fetched["ticker"].unique().to_list())
    shared = set(fetched.join(stored, on=["ticker", "date"], how="semi")["ticker"].unique().to_list())
    return sorted(have - shared)


def refetch_refusals(full: pl.DataFrame, stored: pl.DataFrame, *, what: str = "full re-fetch"
                     ) -> dict[str, str]:
    """Why a ticker's full re-fetch must not be stored, per ticker (a ticker absent from it may be).

    The ``prices`` view shows the latest row per date, so a re-fetch replaces exactly the stored dates it
    contains. If it lacks some stored date while its values differ from the stored ones (a new split or
    dividend basis), those dates keep the old basis next to re-fetched ones and the returns view invents
    a return at every seam. A re-fetch that lacks stored dates is safe only when it agrees with the stored
    rows on every date they share, and shares at least one. ``what`` names the rows in the message (the
    snapshot loader holds a new snapshot file to the same rule).
    """
    missing = stored.select("ticker", "date").join(full, on=["ticker", "date"], how="anti")
    if missing.is_empty():
        return {}
    changed = set(overlap_changed(full, stored))
    shared = set(full.join(stored, on=["ticker", "date"], how="semi")["ticker"].unique().to_list())
    span = full.group_by("ticker").agg(first=pl.col("date").min(), last=pl.col("date").max())
    have = {r["ticker"]: (r["first"], r["last"]) for r in span.iter_rows(named=True)}
    kept = stored.group_by("ticker").agg(first=pl.col("date").min(), last=pl.col("date").max())
    was = {r["ticker"]: (r["first"], r["last"]) for r in kept.iter_rows(named=True)}
    out: dict[str, str] = {}
    for (t,), lack in missing.group_by("ticker"):
        t = str(t)
        if t in shared and t not in changed:
            continue
        days = sorted(lack["date"].to_list())
        s_first, s_last = was[t]
        parts: list[str] = []
        if t not in have:
            parts.append(f"returned no rows for the stored {s_first}..{s_last}")
        else:
            f_first, f_last = have[t]
            if f_first > s_first:
                parts.append(f"starts {f_first}, after the first stored date {s_first}")
            if f_last < s_last:
                parts.append(f"ends {f_last}, before the stored last date {s_last}")
            inner = [d for d in days if f_first <= d <= f_last]
            if inner:
                shown = ", ".join(str(d) for d in inner[:3]) + (" ..." if len(inner) > 3 else "")
                parts.append(f"lacks {len(inner)} stored date(s) inside its range ({shown})")
        why = "its values differ from the stored ones" if t in changed else "it shares no date with the stored rows"
        out[t] = (f"{what} ({why}) {'; '.join(parts)}; not stored: the stored days it does not "
                  "replace would stay on the old adjustment basis next to re-fetched days (a false return "
                  "at each seam); stored prices kept")
    return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


def unclosed_sessions(rows: pl.DataFrame, calendar: str, now: datetime) -> list[date]:
    """Dates of ``rows`` whose session on ``calendar`` closes after ``now`` (unfinished bars), sorted."""
    # XNYS and XTKS sessions close before midnight UTC of their own date, so only rows dated from
    # yesterday (UTC) on can still be open: a few calendar look-ups per ticker, not one per row.
    today = now.astimezone(UTC).date()
    recent = rows.filter(pl.col("date") >= today - timedelta(days=1))["date"].unique().sort()
    out: list[date] = []
    for d in recent.to_list():
        try:
            close = close_time_utc(calendar, d)
        except KeyError:
            # Not a session (reported as a non-session row elsewhere); a later date cannot be final yet.
            if d > today:
                out.append(d)
            continue
        if close > now:
            out.append(d)
    return out


def _validated(res: dict[str, TickerResult], source_name: str, report: RefreshReport
               ) -> dict[str, pl.DataFrame]:
    good: dict[str, pl.DataFrame] = {}
    for t, r in res.items():
        if not r.ok or r.rows is None:
            report.failed[t] = r.error or "failed"
            continue
        try:
            check_rows(r.rows, file=f"{source_name}:{t}", line_offset=1)
        except InputError as exc:
            report.failed[t] = str(exc)
            continue
        good[t] = r.rows
    return good


def refresh(
    con: duckdb.DuckDBPyConnection, source: Source, tickers: list[str], *,
    overlap: int = DEFAULT_OVERLAP, start_default: date = DEFAULT_START, end: date | None = None,
    max_attempts: int = 5, base_delay: float = 2.0, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = _utc_now,
) -> RefreshReport:
    """Fetch, validate and store; one batch for everything that succeeded (see module docstring).

    ``clock`` gives "now" (tz-aware) for the session-closed check; tests inject a fixed one.
    """
    now = clock()
    if now.tzinfo is None:
        raise ValueError("clock must return a timezone-aware datetime")
    report = RefreshReport(tickers=sorted(tickers))
    if source.name == SNAPSHOT:
        report.kept_fetched = sorted(set(report.tickers) & fetched_tickers(con))
    todo = [t for t in report.tickers if t not in report.kept_fetched]
    last = last_dates(con)
    starts: dict[date, list[str]] = {}
    for t in todo:
        s = sessions_back(calendar_for(t), last[t], overlap) if t in last else start_default
        starts.setdefault(s, []).append(t)

    def fetch(group: list[str], start: date) -> dict[str, pl.DataFrame]:
        res, n = fetch_with_retry(source, group, start, end, max_attempts=max_attempts,
                                  base_delay=base_delay, sleep=sleep)
        report.attempts += n
        out = _validated(res, source.name, report)
        for t, rows_t in out.items():
            open_days = unclosed_sessions(rows_t, calendar_for(t), now)
            if open_days:
                report.not_closed[t] = open_days
                out[t] = rows_t.filter(~pl.col("date").is_in(open_days))
        return out

    good: dict[str, pl.DataFrame] = {}
    for start, group in sorted(starts.items()):
        good.update(fetch(group, start))

    # A changed overlap means history was re-adjusted, an overlap with no shared date cannot show it was
    # not: re-fetch those tickers in full, from their first stored date, and store a re-fetch only if it
    # leaves no stored day on the old basis (refetch_refusals).
    known = [t for t in good if t in last]
    if known:
        stored = stored_rows(con, known)
        fetched = pl.concat([good[t] for t in known])
        redo = sorted(set(overlap_changed(fetched, stored)) | set(unverified(fetched, stored)))
        if redo:
            first = dict(stored.group_by("ticker").agg(pl.col("date").min()).iter_rows())
            by_start: dict[date, list[str]] = {}
            for t in redo:
                del good[t]
                by_start.setdefault(min(cast("date", first[t]), start_default), []).append(t)
            full: dict[str, pl.DataFrame] = {}
            for start, group in sorted(by_start.items()):
                full.update(fetch(group, start))
            if full:
                refused = refetch_refusals(pl.concat(list(full.values())),
                                           stored.filter(pl.col("ticker").is_in(list(full))))
                for t, why in refused.items():
                    report.failed[t] = why
                    del full[t]
            good.update(full)
            report.refetched = redo

    report.ok = sorted(good)
    for t, rows_t in good.items():
        ms = missing_sessions(rows_t, t)
        if ms.missing:
            report.missing_sessions[t] = ms.missing
        if ms.extra:
            report.non_session[t] = ms.extra
    rows = pl.concat(list(good.values())) if good else None
    notes = [f"{t}: {e}" for t, e in sorted(report.failed.items())]
    if report.kept_fetched:
        notes.append(f"kept fetched prices for {', '.join(report.kept_fetched)}")
    msg = "; ".join(notes) or None
    if rows is None:
        from market.store import conform

        rows = conform(pl.DataFrame({"ticker": [], "date": []},
                                    schema={"ticker": pl.Utf8, "date": pl.Date}))
    report.batch = append_batch(
        con, rows, source=source.name, tickers=todo,
        start=rows["date"].min() if rows.height else None,  # type: ignore[arg-type]
        end=rows["date"].max() if rows.height else None,  # type: ignore[arg-type]
        status=report.status, message=msg,
    )
    return report
