"""Fama-French daily factors shipped in ``data/factors/ff3_daily.csv``.

The file is in percent (Ken French's convention); carousel works in decimal returns, so every factor is
divided by 100 here, once, at the edge. The series ends 2026-04-30: days after that have *no* factors,
and the engine excludes firm-events that need them (reason ``factors_missing``) instead of filling.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.errors import InputError

#: Columns of the shipped file, all in percent except ``date``.
FF3_COLUMNS = ("mkt_rf", "smb", "hml", "rf")
DEFAULT_FF3 = Path(__file__).resolve().parents[1] / "data" / "factors" / "ff3_daily.csv"


def load_ff3(path: str | Path | None = None) -> pl.DataFrame:
    """Daily FF3 factors as decimals: DataFrame[date: Date, mkt_rf, smb, hml, rf] sorted by date.

    Raises :class:`InputError` naming the file (and line/field where known) on a malformed file.
    """
    src = Path(path) if path is not None else DEFAULT_FF3
    try:
        raw = pl.read_csv(
            src, schema_overrides={c: pl.Float64 for c in FF3_COLUMNS}, try_parse_dates=False
        )
    except FileNotFoundError:
        raise InputError("factor file not found", file=src) from None
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"cannot parse factor file: {str(exc).splitlines()[0]}", file=src
        ) from None
    missing = [c for c in ("date", *FF3_COLUMNS) if c not in raw.columns]
    if missing:
        raise InputError("missing column", file=src, line=1, field=missing[0])
    frame = raw.with_columns(
        pl.col("date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("_d")
    )
    bad = frame.with_row_index("_row").filter(pl.col("_d").is_null())
    if bad.height:
        # +2: one for the header line, one because row indices start at 0.
        raise InputError(
            "date is not YYYY-MM-DD", file=src, line=int(bad["_row"][0]) + 2, field="date"
        )
    for c in FF3_COLUMNS:
        nulls = frame.with_row_index("_row").filter(pl.col(c).is_null())
        if nulls.height:
            raise InputError("missing value", file=src, line=int(nulls["_row"][0]) + 2, field=c)
    if frame["_d"].is_duplicated().any():
        dup = frame.with_row_index("_row").filter(pl.col("_d").is_duplicated())
        raise InputError("duplicate date", file=src, line=int(dup["_row"][1]) + 2, field="date")
    return frame.select(
        pl.col("_d").alias("date"),
        *[(pl.col(c) / 100.0).alias(c) for c in FF3_COLUMNS],
    ).sort("date")
