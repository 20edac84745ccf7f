"""The ground floor: what every other package stands on and that imports nothing from the project.

* :mod:`core.errors` - the error types and their exit codes.
* :mod:`core.paths`  - where the shipped data and the default database live.
* :mod:`core.db`     - DuckDB connections (lock and corruption errors made clear) and transactions.
"""
