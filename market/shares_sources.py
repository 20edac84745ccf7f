"""Where share counts come from: the shipped CSV (offline) and yfinance (online), one row shape.

Both sources return rows in :data:`SHARE_SCHEMA`: one count per (ticker, as_of_date), on the basis in
force that day (``shares``) and on the basis of the split-adjusted prices (``shares_split_adjusted``).

The CSV (``data/shares/shares_outstanding.csv``, see its SOURCES.md) was typed in by hand from filings;
every value is checked here and a bad one is an InputError naming file, line and field.

Yahoo's ``Ticker.get_shares_full(start, end)`` returns a pandas Series of counts indexed by tz-aware
timestamps (midnight in the exchange's zone), sorted, or ``None`` when Yahoo has nothing. Known faults
(yfinance issues #1954, #1593): several values on one date and wild outliers
(MSFT 2024-05-31: 7,432,309,760 and 7,698,290,176, +3.6 %). :func:`parse_shares_full` cleans them by
a rule stated there and reports what it dropped; nothing is averaged or interpolated.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from core.errors import InputError
from core.paths import DATA_DIR
from market.sources import TICKER_RE, is_retryable

if TYPE_CHECKING:  # pandas only for yfinance series, imported there: 1-2 s off `carousel study`
    import pandas as pd

SHARES_CSV = DATA_DIR / "shares" / "shares_outstanding.csv"

#: Canonical frame of share-count rows (the source -> store hand-off).
SHARE_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.Utf8(),
    "as_of_date": pl.Date(),
    "shares": pl.Int64(),
    "shares_split_adjusted": pl.Int64(),
    "class_detail": pl.Utf8(),
    "count_basis": pl.Utf8(),
    "source_ref": pl.Utf8(),
    "filing_date": pl.Date(),
    "verification": pl.Utf8(),
}

_REQUIRED = ["ticker", "as_of_date", "shares_outstanding", "split_adjusted_to_2026"]
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Per-class counts as the CSV writes them: ``A=5843M;B=864M;C=5534M`` or ``A=2180000871;B=344487662``.
CLASS_RE = re.compile(r"^([A-Z])=(\d+)(M?)$")
#: Per-class counts in millions may each be rounded by up to half a million.
_CLASS_ROUNDING = 500_000

#: Yahoo cleaning rule (see :func:`parse_shares_full`).
NEIGHBOUR_DAYS = 30
OUTLIER_REL = 0.02


def conform_shares(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast/complete a frame to SHARE_SCHEMA (missing optional columns NULL), sorted by ticker, date."""
    cols = [
        pl.col(n).cast(t) if n in rows.columns else pl.lit(None, dtype=t).alias(n)
        for n, t in SHARE_SCHEMA.items()
    ]
    return rows.select(cols).sort("ticker", "as_of_date")


def parse_class_detail(detail: str | None) -> dict[str, int] | None:
    """Per-class counts from ``class_detail`` (``A=5843M;B=864M;C=5534M``), or None if it has none.

    Only single-letter share classes count; other details (``ADS_equiv=...``, ``issued=...``) are notes.
    """
    if not detail:
        return None
    parts = [p.strip() for p in detail.split(";") if p.strip()]
    found = [CLASS_RE.match(p) for p in parts]
    if not parts or not all(found):
        return None
    return {m.group(1): int(m.group(2)) * (1_000_000 if m.group(3) else 1) for m in found if m}


def _read_records(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and records; every structural fault is an InputError naming its line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    reader = csv.reader(io.StringIO(text))
    out: list[tuple[int, list[str]]] = []
    try:
        for rec in reader:
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            out.append((reader.line_num, rec))
    except csv.Error as exc:
        raise InputError(f"cannot read CSV: {exc}", file=path, line=reader.line_num) from None
    if not out:
        raise InputError("file is empty (expected a header with " + ",".join(_REQUIRED) + ")",
                         file=path, line=1)
    header = [h.strip() for h in out[0][1]]
    for col in _REQUIRED:
        if col not in header:
            raise InputError("missing column in header", file=path, line=1, field=col)
    rows = []
    for line, rec in out[1:]:
        if len(rec) != len(header):
            raise InputError(f"{len(rec)} fields, the header has {len(header)}", file=path, line=line)
        rows.append([str(line), *rec])
    return ["_line", *header], rows


def _int_count(raw: str, *, path: Path, line: int, name: str) -> int:
    s = raw.strip().replace(",", "").replace("_", "")
    if not s.isdigit():
        raise InputError(f"expected a whole positive number of shares, got {raw!r}", file=path,
                         line=line, field=name)
    v = int(s)
    if v <= 0 or v >= 2**63:
        raise InputError(f"share count {raw!r} out of range (1 .. 2**63-1)", file=path, line=line,
                         field=name)
    return v


def _date(raw: str, *, path: Path, line: int, name: str, required: bool) -> date | None:
    s = raw.strip()
    if not s:
        if required:
            raise InputError("date is missing", file=path, line=line, field=name)
        return None
    if not _DATE_RE.match(s):
        raise InputError(f"cannot parse {raw!r} (expected YYYY-MM-DD)", file=path, line=line, field=name)
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise InputError(f"not a calendar date: {raw!r}", file=path, line=line, field=name) from None


def read_shares_csv(path: Path = SHARES_CSV) -> pl.DataFrame:
    """The shipped share-count file as SHARE_SCHEMA rows; every bad value raises InputError.

    Checked: ticker a Yahoo symbol; as_of_date an ISO date; both counts whole positive numbers;
    ``split_adjusted_to_2026`` not below ``shares_outstanding`` (only forward splits are recorded, so
    adjusting can only multiply); per-class counts that sum to the total (within the rounding of
    per-class millions); one row per (ticker, as_of_date).
    """
    path = Path(path)
    header, records = _read_records(path)
    idx = {c: i for i, c in enumerate(header)}

    def cell(rec: list[str], col: str) -> str:
        return rec[idx[col]].strip() if col in idx else ""

    out: dict[str, list[Any]] = {k: [] for k in SHARE_SCHEMA}
    seen: dict[tuple[str, date], int] = {}
    for rec in records:
        line = int(rec[0])
        ticker = cell(rec, "ticker")
        if not TICKER_RE.match(ticker):
            raise InputError(f"{ticker!r} is not an upper-case Yahoo symbol", file=path, line=line,
                             field="ticker")
        as_of = _date(cell(rec, "as_of_date"), path=path, line=line, name="as_of_date", required=True)
        assert as_of is not None
        shares = _int_count(cell(rec, "shares_outstanding"), path=path, line=line,
                            name="shares_outstanding")
        adjusted = _int_count(cell(rec, "split_adjusted_to_2026"), path=path, line=line,
                              name="split_adjusted_to_2026")
        if adjusted < shares:
            raise InputError(f"split-adjusted count {adjusted} is below the count {shares} (a reverse "
                             "split is not recorded in the sources)", file=path, line=line,
                             field="split_adjusted_to_2026")
        detail = cell(rec, "class_detail") or None
        classes = parse_class_detail(detail)
        if classes is not None:
            tol = _CLASS_ROUNDING * len(classes) if "M" in (detail or "") else 0
            if abs(sum(classes.values()) - shares) > tol:
                raise InputError(f"classes sum to {sum(classes.values())}, not shares_outstanding "
                                 f"{shares}", file=path, line=line, field="class_detail")
        key = (ticker, as_of)
        if key in seen:
            raise InputError(f"second row for {ticker} on {as_of} (first on line {seen[key]})",
                             file=path, line=line, field="as_of_date")
        seen[key] = line
        out["ticker"].append(ticker)
        out["as_of_date"].append(as_of)
        out["shares"].append(shares)
        out["shares_split_adjusted"].append(adjusted)
        out["class_detail"].append(detail)
        out["count_basis"].append(cell(rec, "count_basis") or None)
        form = cell(rec, "source_form")
        ref = cell(rec, "source_url_or_accession")
        out["source_ref"].append(" | ".join(x for x in (form, ref) if x) or None)
        out["filing_date"].append(_date(cell(rec, "filing_date"), path=path, line=line,
                                        name="filing_date", required=False))
        out["verification"].append(cell(rec, "verification") or None)
    if not out["ticker"]:
        raise InputError("no share-count rows (the file has only a header)", file=path, line=2)
    return conform_shares(pl.DataFrame(out, schema=SHARE_SCHEMA))


# ----------------------------------------------------------------------------------------------- Yahoo


@dataclass(frozen=True)
class SharesResult:
    """One ticker's fetched counts, or an error (``retryable``: a rate limit or timeout)."""

    ticker: str
    rows: pl.DataFrame | None = None
    error: str | None = None
    retryable: bool = False
    dropped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rows is not None and self.error is None


def _local_dates(index: Any) -> np.ndarray:
    """Exchange-local dates of a (tz-aware) DatetimeIndex, as datetime64[D] (not converted to UTC)."""
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    local = idx.tz_localize(None) if idx.tz is not None else idx
    return np.asarray(local.normalize().values.astype("datetime64[D]"))


def _split_factors(dates: np.ndarray, shares: np.ndarray, splits: pd.Series | None
                   ) -> tuple[np.ndarray, list[str]]:
    """Factor that puts each count on the split-adjusted basis, and notes on each split's evidence.

    A split dated after a count multiplies it by the split ratio, as in the CSV. Whether Yahoo's counts
    are on the basis in force (raw) or already split-adjusted is not documented, so the data decide per
    split: if the median count of the 120 days after the split is about ``ratio`` times the median of
    the 120 days before (nearer the ratio than 1 on a log scale), the counts are raw and the split
    applies; if they stay level, Yahoo already adjusted them and it does not. Without counts on both
    sides the split applies (raw is what a filing prints). Medians, so one outlier cannot decide.
    """
    factor = np.ones(len(dates))
    notes: list[str] = []
    if splits is None or len(splits) == 0:
        return factor, notes
    sdates = _local_dates(splits.index)
    ratios = np.asarray(splits.to_numpy(dtype="float64"))
    window = np.timedelta64(120, "D")
    for d, r in zip(sdates, ratios, strict=True):
        if not np.isfinite(r) or r <= 0 or r == 1.0:
            continue
        before = (dates < d) & (dates >= d - window)
        after = (dates >= d) & (dates <= d + window)
        applies = True
        if before.any() and after.any():
            jump = float(np.median(shares[after]) / np.median(shares[before]))
            applies = abs(np.log(jump / r)) < abs(np.log(jump))
            notes.append(f"split {r:g} on {d}: counts jump x{jump:.3f}, "
                         + ("raw basis, adjusted" if applies else "already adjusted by Yahoo"))
        if applies:
            factor[dates < d] *= r
    return factor, notes


def parse_shares_full(series: pd.Series | None, ticker: str, splits: pd.Series | None = None
                      ) -> SharesResult:
    """Clean one ``get_shares_full`` Series into SHARE_SCHEMA rows, reporting what was dropped.

    Rule (whole arrays, no interpolation, no averaging):
    1. non-finite or non-positive counts are dropped;
    2. counts are put on the split-adjusted basis (``splits`` = ``Ticker.splits``, see
       :func:`_split_factors`), so that a split is not mistaken for an outlier;
    3. each count is compared with the median of the counts on *other* dates within ±30 days; when
       there are at least two such dates (so that a majority exists), one more than 2 % away from that
       median is an outlier and dropped (share counts move by well under 2 % a month; a step such as
       an issuance has most neighbours on each side at its own level when Yahoo's points are dense);
    4. a date still holding several different counts keeps the one nearest that median, or is dropped
       when there is no neighbour to decide by.
    """
    if series is None or len(series) == 0:
        return SharesResult(ticker, error="no share counts returned")
    import pandas as pd

    try:
        values = np.asarray(pd.to_numeric(series, errors="raise").to_numpy(dtype="float64"))
    except (TypeError, ValueError):
        return SharesResult(ticker, error="non-numeric share counts from Yahoo")
    dates = _local_dates(series.index)
    dropped: list[str] = []
    good = np.isfinite(values) & (values > 0) & (values < 2.0**63)
    dropped += [f"{d}: invalid count {v}" for d, v in zip(dates[~good], values[~good], strict=True)]
    dates, values = dates[good], values[good]
    if len(values) == 0:
        return SharesResult(ticker, error="no valid share counts returned", dropped=dropped)
    order = np.argsort(dates, kind="stable")
    dates, values = dates[order], values[order]
    factor, notes = _split_factors(dates, values, splits)
    adj = values * factor
    # Pairwise neighbour matrix: counts on other dates within the window.
    gap = np.abs((dates[:, None] - dates[None, :]).astype(np.int64))
    near = (gap <= NEIGHBOUR_DAYS) & (dates[:, None] != dates[None, :])
    n_dates = (near & _first_of_date(dates)[None, :]).sum(axis=1)  # distinct neighbouring dates
    masked = np.where(near, adj[None, :], np.nan)
    has = near.any(axis=1)
    ref = np.full(len(adj), np.nan)
    if has.any():
        ref[has] = np.nanmedian(masked[has], axis=1)
    dev = np.abs(adj / ref - 1)
    outlier = (n_dates >= 2) & (dev > OUTLIER_REL)
    dropped += [f"{d}: outlier {int(v)} vs neighbours' median {int(m)}"
                for d, v, m in zip(dates[outlier], adj[outlier], ref[outlier], strict=True)]
    frame = pl.DataFrame({"as_of_date": dates[~outlier], "shares": values[~outlier],
                          "adjusted": adj[~outlier], "dev": dev[~outlier]},
                         schema={"as_of_date": pl.Date, "shares": pl.Float64, "adjusted": pl.Float64,
                                 "dev": pl.Float64}).with_columns(pl.col("dev").fill_nan(None))
    nearest = pl.col("dev").fill_null(np.inf)
    per_date = frame.group_by("as_of_date").agg(
        pl.col("adjusted").n_unique().alias("n_values"),
        pl.col("shares").sort_by(nearest).first(),
        pl.col("adjusted").sort_by(nearest).first(),
        pl.col("dev").is_null().all().alias("undecidable"),
    )
    ambiguous = (pl.col("n_values") > 1) & pl.col("undecidable")
    dropped += [f"{d}: several counts and no neighbour to choose by"
                for d in per_date.filter(ambiguous)["as_of_date"].sort().to_list()]
    kept = per_date.filter(~ambiguous).sort("as_of_date")
    if kept.is_empty():
        return SharesResult(ticker, error="no unambiguous share counts returned", dropped=dropped)
    rows = kept.select(
        pl.lit(ticker).alias("ticker"), "as_of_date",
        pl.col("shares").round(0).cast(pl.Int64),
        pl.col("adjusted").round(0).cast(pl.Int64).alias("shares_split_adjusted"),
        pl.lit("yahoo shares_out timeseries").alias("count_basis"),
        pl.lit("yfinance Ticker.get_shares_full").alias("source_ref"),
        pl.lit("yahoo (cleaned: duplicates/outliers dropped)").alias("verification"),
    )
    return SharesResult(ticker, rows=conform_shares(rows), dropped=dropped + notes)


def _first_of_date(dates: np.ndarray) -> np.ndarray:
    """True at the first position of each date in a sorted date array (to count distinct dates)."""
    first = np.ones(len(dates), dtype=bool)
    first[1:] = dates[1:] != dates[:-1]
    return first


class YahooSharesSource:
    """Share counts through yfinance, one ``Ticker`` per symbol (Yahoo has no batched endpoint)."""

    name = "yahoo"

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, SharesResult]:
        import yfinance as yf

        out: dict[str, SharesResult] = {}
        for t in tickers:
            try:
                tk = yf.Ticker(t)
                series = tk.get_shares_full(start=start.isoformat(),
                                            end=end.isoformat() if end is not None else None)
                splits = tk.splits
            except Exception as exc:  # one ticker's failure must not sink the others
                out[t] = SharesResult(t, error=f"{type(exc).__name__}: {exc}", retryable=is_retryable(exc))
                continue
            res = parse_shares_full(series, t, splits)
            if res.rows is not None:
                res = SharesResult(t, rows=res.rows.filter(pl.col("as_of_date") >= start),
                                   dropped=res.dropped)
            out[t] = res
        return out


class CsvSharesSource:
    """The shipped, hand-verified share-count file (offline)."""

    name = "shares_csv"

    def __init__(self, path: Path = SHARES_CSV) -> None:
        self.path = Path(path)

    def fetch(self, tickers: list[str], start: date, end: date | None) -> dict[str, SharesResult]:
        rows = read_shares_csv(self.path).filter(pl.col("as_of_date") >= start)
        if end is not None:
            rows = rows.filter(pl.col("as_of_date") <= end)
        out = {}
        for t in tickers:
            sub = rows.filter(pl.col("ticker") == t)
            out[t] = SharesResult(t, rows=sub) if sub.height else SharesResult(
                t, error=f"no share counts for {t} in {self.path}")
        return out

