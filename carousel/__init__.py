"""carousel: measure the circular AI deal web.

The top-level packages are:

* ``ledger``   - the event-sourced deal ledger (immutable events in DuckDB, projections).
* ``market``   - daily prices (yfinance / offline snapshot), append-only price store, calendars.
* ``analysis`` - event studies, the money-flow graph, figures, tables and the report.
* ``carousel`` - the shell: database access, the CLI, the main job.
"""

__version__ = "0.1.0"
