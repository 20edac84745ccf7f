"""`carousel refresh` without a network: one message that says so and suggests the snapshot, no
third-party warnings, nothing stored. yfinance is faked the way it fails offline (1.x): the download
logs one error per ticker (a DNS error for the time-zone lookup of some, 'possibly delisted; no
timezone found' for the rest) and returns an empty frame, after pandas deprecation warnings."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yfinance

from carousel.cli.market import network_unreachable

DNS = ("DNSError('Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com. "
       "See https://curl.se/libcurl/c/libcurl-errors.html first for more details.')")


def _offline_download(tickers: list[str] | str, **_: Any) -> pd.DataFrame:
    warnings.warn("The inplace keyword in DataFrame.rename is deprecated", FutureWarning, stacklevel=2)
    warnings.warn("The inplace keyword in DataFrame.sort_index is deprecated", DeprecationWarning, stacklevel=2)
    log = logging.getLogger("yfinance")
    names = [tickers] if isinstance(tickers, str) else list(tickers)
    for i, t in enumerate(names):
        log.error("['%s']: %s", t, DNS if i == 0 else "possibly delisted; no timezone found")
    return pd.DataFrame()


def _to_stderr(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_offline_refresh_says_so_once_and_suggests_the_snapshot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    monkeypatch.setattr(yfinance, "download", _offline_download)
    with warnings.catch_warnings():
        # As a user's interpreter shows them (pytest would otherwise record them silently).
        warnings.simplefilter("default")
        warnings.showwarning = _to_stderr
        code, out, err = run_cli(["refresh", "--db", str(tmp_path / "c.duckdb"),
                                  "--tickers", "AMD,NVDA,SPY,9984.T"], capsys)
    assert code == 2
    assert err.count("cannot be reached") == 1 and "--source snapshot" in err
    assert "possibly delisted" not in err and "failed:" not in err
    assert "Warning" not in err and "inplace" not in err
    assert "0/4 tickers ok, 0 rows appended" in out


def test_network_unreachable_needs_a_connection_error() -> None:
    assert network_unreachable({"AMD": DNS, "SPY": "possibly delisted; no timezone found"})
    # a real delisting (no connection error anywhere) keeps its per-ticker message
    assert not network_unreachable({"XYZ": "possibly delisted; no timezone found"})
    assert not network_unreachable({"AMD": DNS, "SPY": "non-numeric values in 'Close' from Yahoo"})
    assert not network_unreachable({})
