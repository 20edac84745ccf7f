"""The safe defaults of ``carousel sql``: a time, a row and a memory limit.

Why a module of its own: the CLI needs them to declare its options, and importing them from
:mod:`carousel.queries` (duckdb, polars) would cost every ``carousel --help`` that import.
"""

from __future__ import annotations

#: A query running longer is interrupted (a runaway join must not hold the database lock for ever).
DEFAULT_TIMEOUT_S = 60.0
#: A larger result is refused: add a LIMIT (or export with COPY outside carousel).
DEFAULT_MAX_ROWS = 100_000
#: DuckDB's memory limit for one query, without spilling to disk.
DEFAULT_MEMORY_LIMIT = "1GB"
