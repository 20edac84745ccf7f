"""Where prices come from: one small protocol, a Yahoo source (yfinance) and the offline snapshot.

Both return, per ticker, either rows in ``market.store.PRICE_SCHEMA`` or an error with a flag saying
whether retrying may help (rate limits, timeouts) or not (unknown ticker, no data).
"""

from __future__ import annotations

import csv
import errno
import io
import logging
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from core.errors import InputError
from core.paths import DATA_DIR
from market.calendars import calendar_for
from market.store import PRICE_SCHEMA, conform
from market.validate import check_order

if TYPE_CHECKING:  # pandas only for yfinance frames, imported there: 1-2 s off `carousel study`
    import pandas as pd

#: Snapshot file stems that are not Yahoo symbols.
FILE_TO_TICKER = {"GSPC": "^GSPC", "IXIC": "^IXIC"}
TICKER_TO_FILE = {v: k for k, v in FILE_TO_TICKER.items()}
#: A Yahoo symbol as the ledger accepts it (same pattern as ``ledger.load._TICKER_RE``; a test keeps the
#: two identical): NVDA, 9984.T, ^GSPC. Upper case: Yahoo symbols are case-insensitive and the store
#: keys on the exact string, so callers normalise with ``.upper()`` before matching.
TICKER_RE = re.compile(r"^\^?[A-Z0-9]{1,10}(\.[A-Z]{1,3})?$")
SNAPSHOT_DIR = DATA_DIR / "prices"
#: Volumes at or beyond this cannot be stored as BIGINT.
_INT64_LIMIT = 2.0**63


@dataclass(frozen=True)
class TickerResult:
    ticker: str
    rows: pl.DataFrame | None = None
    error: str | None = None
    retryable: bool = False
    dropped_nan_rows: int = 0

    @property
    def ok(self) -> bool:
        return self.rows is not None and self.error is None


class Source(Protocol):
    name: str

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, TickerResult]:
        """Rows in [start, end] (end inclusive; None = up to the latest) per requested ticker."""
        ...


class RetryableError(Exception):
    """The whole request failed in a way that retrying later may fix (rate limit, timeout)."""


# ----------------------------------------------------------------------------------------------- Yahoo

_RETRYABLE_RE = re.compile(r"RateLimit|Too Many Requests|rate limit|Timeout|timed out|429", re.I)
_YF_COLUMNS = {
    "Open": "open", "High": "high", "Low": "low", "Close": "close", "Adj Close": "adj_close",
    "Volume": "volume", "Dividends": "dividends", "Stock Splits": "splits",
}


def is_retryable(exc: BaseException) -> bool:
    """Rate limits (yfinance's YFRateLimitError) and timeouts of any HTTP stack."""
    if isinstance(exc, TimeoutError | RetryableError):
        return True
    try:
        from yfinance.exceptions import YFRateLimitError

        if isinstance(exc, YFRateLimitError):
            return True
    except ImportError:  # pragma: no cover - yfinance is a hard dependency
        pass
    return bool(_RETRYABLE_RE.search(type(exc).__name__) or _RETRYABLE_RE.search(str(exc)))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _capture_yf_errors() -> Iterator[_Capture]:
    # yf.download catches per-ticker exceptions and only logs them ("['NVDA']: YFRateLimitError(...)").
    handler = _Capture()
    logger = logging.getLogger("yfinance")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _per_ticker_errors(messages: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for msg in messages:
        m = re.match(r"\s*\[([^\]]*)\]:\s*(.*)", msg, re.S)
        if not m:
            continue
        for sym in re.findall(r"'([^']+)'", m.group(1)):
            out[sym.upper()] = m.group(2).strip()
    return out


def parse_download(frame: pd.DataFrame | None, tickers: list[str]) -> dict[str, TickerResult]:
    """Turn a ``yf.download(..., auto_adjust=False, actions=True)`` frame into per-ticker long rows.

    Handles both ``group_by='column'`` (levels Price, Ticker) and ``group_by='ticker'`` (Ticker, Price).
    The index of daily bars is tz-naive by default (yfinance 0.2.x and 1.x: ``ignore_tz`` is true for daily
    intervals, which strips each ticker's zone): its dates are the exchange's local session dates. A
    tz-aware index (``ignore_tz=False``, or one ``Ticker.history`` frame) at midnight in the exchange's zone
    gives the same *local* date (converting to UTC first would move Tokyo sessions to the previous day).
    A tz-aware timestamp that is not a local midnight was converted from another zone (yfinance 1.4+
    converts a mixed download to its most common zone, earlier versions to UTC): its local date need not
    be the session date, so that ticker fails instead of being stored a day off.
    Rows where every price is NaN are the union-of-dates padding yf.download adds when tickers trade on
    different days; they are dropped and counted. A ticker with no remaining rows failed.
    """
    import pandas as pd

    out: dict[str, TickerResult] = {}
    if frame is None or frame.empty:
        return {t: TickerResult(t, error="no data returned (empty frame)") for t in tickers}
    cols = frame.columns
    if not isinstance(cols, pd.MultiIndex):
        if len(tickers) != 1:
            raise ValueError("single-level columns from yf.download for several tickers")
        cols = pd.MultiIndex.from_product([list(cols), tickers], names=["Price", "Ticker"])
        frame = frame.set_axis(cols, axis=1)
    names = list(cols.names)
    ticker_level = names.index("Ticker") if "Ticker" in names else 1
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        idx = pd.DatetimeIndex(idx)
    local = idx.tz_localize(None) if idx.tz is not None else idx
    dates = pl.Series("date", local.normalize().values.astype("datetime64[D]")).cast(pl.Date)
    # Only a tz-aware index can have been converted; a naive time of day is Yahoo's live bar, which
    # check_rows refuses as a second row of its date.
    converted = (pl.Series("_converted", local != local.normalize()) if idx.tz is not None
                 else pl.repeat(False, len(idx), eager=True).alias("_converted"))
    available = set(cols.get_level_values(ticker_level))
    for t in tickers:
        if t not in available:
            out[t] = TickerResult(t, error="ticker missing from the download")
            continue
        sub = frame.xs(t, axis=1, level=ticker_level)
        data: dict[str, Any] = {"date": dates, "_converted": converted}
        garbage = None
        for yf_name, ours in _YF_COLUMNS.items():
            if yf_name in sub.columns:
                try:
                    data[ours] = pl.Series(ours, sub[yf_name].to_numpy(dtype="float64"))
                except (TypeError, ValueError):
                    # Garbage from the API (text where numbers belong) fails this ticker only.
                    garbage = f"non-numeric values in '{yf_name}' from Yahoo"
                    break
        if garbage is not None:
            out[t] = TickerResult(t, error=garbage)
            continue
        df = pl.DataFrame(data).with_columns(ticker=pl.lit(t))
        price_cols = [c for c in ("open", "high", "low", "close", "adj_close") if c in df.columns]
        all_nan = pl.all_horizontal([pl.col(c).is_nan() | pl.col(c).is_null() for c in price_cols])
        kept = df.filter(~all_nan)
        dropped = df.height - kept.height
        if kept.is_empty():
            out[t] = TickerResult(t, error="no data returned (all values NaN)", dropped_nan_rows=dropped)
            continue
        if kept["_converted"].any():
            first = kept.filter(pl.col("_converted"))["date"][0]
            out[t] = TickerResult(t, error=(
                f"index converted to {idx.tz} from another time zone (a bar near {first} is not at local "
                "midnight): the session dates are ambiguous; download each exchange's tickers separately "
                "with ignore_tz=True"), dropped_nan_rows=dropped)
            continue
        kept = kept.with_columns(
            [pl.col(c).fill_nan(None) for c in price_cols + ["dividends", "splits"] if c in kept.columns]
        )
        if "volume" in kept.columns:
            vol = kept["volume"].fill_nan(None)
            if (vol.is_infinite() | (vol.abs() >= _INT64_LIMIT)).any():
                # Casting inf (or a finite value beyond Int64) to Int64 would raise for the whole
                # download: fail this ticker only.
                out[t] = TickerResult(t, error="non-finite values in 'Volume' from Yahoo (or beyond BIGINT)",
                                      dropped_nan_rows=dropped)
                continue
            kept = kept.with_columns(vol.round(0).cast(pl.Int64).alias("volume"))
        out[t] = TickerResult(t, rows=conform(kept), dropped_nan_rows=dropped)
    return out


class YahooSource:
    """Batched multi-ticker download through yfinance (raw and adjusted close, dividends, splits)."""

    name = "yahoo"

    def __init__(self, *, threads: bool | int = True, timeout: int = 30,
                 group_by: str = "column") -> None:
        self.threads = threads
        self.timeout = timeout
        self.group_by = group_by

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, TickerResult]:
        # One download per exchange calendar. Daily bars come with naive local dates (ignore_tz=True,
        # also yfinance's default for daily bars), which a mixed download keeps. Without ignore_tz,
        # yf.download converts every ticker's index to one zone (the most common one since 1.4, UTC
        # before), which moves Tokyo midnights to the previous New York day; per-calendar downloads keep
        # each index in one zone whatever the version, and parse_download refuses a converted index.
        groups: dict[str, list[str]] = {}
        for t in tickers:
            groups.setdefault(calendar_for(t), []).append(t)
        out: dict[str, TickerResult] = {}
        for group in groups.values():
            out.update(self._fetch_group(group, start, end))
        return out

    def _fetch_group(self, tickers: list[str], start: date, end: date | None
                     ) -> dict[str, TickerResult]:
        import yfinance as yf

        # yfinance's `end` is exclusive.
        yf_end = (end + timedelta(days=1)).isoformat() if end is not None else None
        # yfinance's own deprecation warnings (pandas' inplace keyword...) are not the user's to act on
        # and would be printed once per download group; failures still arrive through its log.
        with _capture_yf_errors() as cap, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                frame = yf.download(
                    tickers, start=start.isoformat(), end=yf_end, auto_adjust=False, actions=True,
                    group_by=self.group_by, threads=self.threads, progress=False, ignore_tz=True,
                    timeout=self.timeout, multi_level_index=True,
                )
            except Exception as exc:
                if is_retryable(exc):
                    raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
                return {t: TickerResult(t, error=f"{type(exc).__name__}: {exc}") for t in tickers}
        logged = _per_ticker_errors(cap.messages)
        results = parse_download(frame, tickers)
        for t, res in results.items():
            if t.upper() in logged and not res.ok:
                msg = logged[t.upper()]
                results[t] = TickerResult(t, error=msg, retryable=bool(_RETRYABLE_RE.search(msg)),
                                          dropped_nan_rows=res.dropped_nan_rows)
        return results


# -------------------------------------------------------------------------------------------- snapshot

_CSV_COLUMNS = ["date", "open", "high", "low", "close", "adj_close", "volume"]
#: A session date, optionally with a midnight time part and a UTC offset, as pandas/yfinance write a
#: daily index (``2024-01-03 00:00:00-05:00``: the date is the exchange-local date, kept as written). Any
#: other time of day is not a daily bar and is refused.
_DATE_RE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
#: Volume is an integer; a float spelling of one (``23370800.0``, ``1.5e6``, the artefact
#: ``4070000.000000001``) is accepted and rounded, a real fraction (``100.5``) is refused.
_VOLUME_INT_TOL = 1e-6


def ticker_for_file(path: Path) -> str:
    stem = path.name[: -len(".csv")]
    return FILE_TO_TICKER.get(stem, stem)


def check_regular_file(path: Path) -> None:
    """InputError unless ``path`` is (or links to) a regular file; nothing is opened.

    Why before reading: a FIFO named ``X.csv`` blocks ``open`` forever, and a directory, a dangling
    symlink or a symlink loop would surface as an OSError mid-load. ``stat`` answers without opening.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        why = "a symlink loop" if exc.errno == errno.ELOOP else (
            "a dangling symlink" if path.is_symlink() else str(exc.strerror or exc))
        raise InputError(f"cannot read price file: {why}", file=path) from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise InputError(f"is {kind}, not a regular price file", file=path)


def _read_cells(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data records of a CSV, each record exactly one line (file line i + 2 = record i).

    Read with the csv module rather than a bulk reader so that every structural fault is an InputError
    naming its line: an empty file, a record with fewer or more fields than the header (a file cut short
    mid-line would otherwise store ``1.`` of ``1.5`` as the close), a blank line between records. Blank
    lines at the end are ignored; a UTF-8 BOM and CRLF line endings are accepted.
    """
    check_regular_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    reader = csv.reader(io.StringIO(text))
    records: list[list[str]] = []
    blank_at: int | None = None
    expected_line = 0
    try:
        for rec in reader:
            expected_line += 1
            if reader.line_num != expected_line:
                raise InputError("a quoted field spans several lines", file=path, line=expected_line)
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                blank_at = blank_at or reader.line_num
                continue
            if blank_at is not None:
                raise InputError("blank line between price rows", file=path, line=blank_at)
            records.append(rec)
    except csv.Error as exc:
        raise InputError(f"cannot read CSV: {exc}", file=path, line=reader.line_num) from None
    if not records:
        raise InputError("file is empty (expected the header " + ",".join(_CSV_COLUMNS) + ")",
                         file=path, line=1)
    header = [h.strip() for h in records[0]]
    for i, rec in enumerate(records[1:]):
        if len(rec) != len(header):
            raise InputError(f"{len(rec)} fields, the header has {len(header)} (a truncated or "
                             "malformed line?)", file=path, line=i + 2)
    return header, records[1:]


def read_snapshot_file(path: Path, *, today: date | None = None) -> pl.DataFrame:
    """One snapshot CSV as PRICE_SCHEMA rows; malformed values raise InputError (file, line, field).

    ``today`` (default: the current UTC date) bounds the dates: a row after it cannot be a closed session.
    """
    ticker = ticker_for_file(path)
    if not TICKER_RE.match(ticker):
        # A lower-case or odd name would become a separate ticker in the store (`nvda` next to `NVDA`).
        raise InputError(f"file name {path.name!r} is not <TICKER>.csv for an upper-case Yahoo symbol "
                         "(e.g. NVDA.csv, 9984.T.csv, GSPC.csv for ^GSPC)", file=path)
    header, records = _read_cells(path)
    missing = [c for c in _CSV_COLUMNS if c not in header]
    if missing:
        raise InputError("missing column in header", file=path, line=1, field=missing[0])
    twice = [c for c in _CSV_COLUMNS if header.count(c) > 1]
    if twice:
        raise InputError("column appears twice in header", file=path, line=1, field=twice[0])
    if not records:
        raise InputError("no price rows (the file has only a header)", file=path, line=2)
    columns = list(zip(*records, strict=True))  # transpose once; every record has len(header) fields
    raw = pl.DataFrame(
        {c: columns[header.index(c)] for c in _CSV_COLUMNS},
        schema=dict.fromkeys(_CSV_COLUMNS, pl.Utf8),
    ).with_columns(
        # Surrounding blanks are not part of a value; an empty cell is missing (NULL).
        pl.all().str.strip_chars().replace("", None)
    )
    vol = pl.col("volume").cast(pl.Float64, strict=False)
    typed = {
        "date": pl.col("date").str.extract(_DATE_RE.pattern, 1).str.strptime(pl.Date, "%Y-%m-%d",
                                                                               strict=False),
        **{c: pl.col(c).cast(pl.Float64, strict=False) for c in _CSV_COLUMNS[1:6]},
        "volume": vol,
    }
    parsed = raw.select(**typed)
    # A cell that fails to parse turns NULL, so equal null counts mean every cell parsed: one cheap
    # check on the common path, the per-column search (for the line and field) only when one failed.
    raw_nulls, parsed_nulls = raw.null_count().row(0), parsed.null_count().row(0)
    for c, before, after in zip(_CSV_COLUMNS, raw_nulls, parsed_nulls, strict=True):
        if before == after:
            continue
        bad = raw.with_row_index("_i").filter(pl.col(c).is_not_null() & parsed[c].is_null())
        if bad.height:
            hint = " (expected YYYY-MM-DD, a time part only at midnight)" if c == "date" else ""
            raise InputError(f"cannot parse {bad[c][0]!r}{hint}", file=path,
                             line=int(bad["_i"][0]) + 2, field=c)
    v = pl.col("volume")
    bad_vol = parsed.with_row_index("_i").filter(
        v.is_not_null() & (~v.is_finite() | (v.abs() >= _INT64_LIMIT)
                           | ((v - v.round(0)).abs() > _VOLUME_INT_TOL * pl.max_horizontal(v.abs(), 1.0)))
    )
    if bad_vol.height:
        raise InputError("volume must be a whole number of shares (below 2**63), got "
                         f"{raw['volume'][int(bad_vol['_i'][0])]}",
                         file=path, line=int(bad_vol["_i"][0]) + 2, field="volume")
    parsed = parsed.with_columns(v.round(0).cast(pl.Int64))
    # Checked in file order, before conform() sorts by date: afterwards row i is file line i + 2, so the
    # line numbers of check_rows' errors are right.
    no_date = parsed.with_row_index("_i").filter(pl.col("date").is_null())
    if no_date.height:
        raise InputError("date is missing", file=path, line=int(no_date["_i"][0]) + 2, field="date")
    check_order(parsed["date"], file=str(path), line_offset=2)
    today = today or datetime.now(UTC).date()
    future = parsed.with_row_index("_i").filter(pl.col("date") > today)
    if future.height:
        raise InputError(f"{future['date'][0]} is after today ({today} UTC): not a closed session",
                         file=path, line=int(future["_i"][0]) + 2, field="date")
    return conform(parsed.with_columns(ticker=pl.lit(ticker)))


class SnapshotSource:
    """The offline price snapshot shipped in ``data/prices`` (one CSV per ticker)."""

    name = "snapshot"

    def __init__(self, prices_dir: Path = SNAPSHOT_DIR) -> None:
        self.prices_dir = Path(prices_dir)

    def files(self) -> dict[str, Path]:
        files = sorted(self.prices_dir.glob("*.csv"))
        for p in files:
            check_regular_file(p)
        return {ticker_for_file(p): p for p in files}

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, TickerResult]:
        files = self.files()
        out: dict[str, TickerResult] = {}
        for t in tickers:
            if t not in files:
                out[t] = TickerResult(t, error=f"no snapshot file for {t} in {self.prices_dir}")
                continue
            rows = read_snapshot_file(files[t])
            rows = rows.filter(pl.col("date") >= start)
            if end is not None:
                rows = rows.filter(pl.col("date") <= end)
            out[t] = TickerResult(t, rows=rows)
        return out


__all__ = [
    "PRICE_SCHEMA", "TICKER_RE", "RetryableError", "SnapshotSource", "Source", "TickerResult",
    "YahooSource", "is_retryable", "parse_download", "read_snapshot_file",
]
