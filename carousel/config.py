"""The project file ``carousel.toml``: a paper's study specification, kept in its repository.

Why a file: ``carousel study``, ``run`` and ``report`` must estimate the same thing, and a reader of a
paper must be able to see what that was. The file is found by searching upward from the working
directory (like ``pyproject.toml``), or given with ``--config``; options on the command line override
it. Every problem names the file, the line and the key::

    version = 1                       # required: the format of this file

    [study]
    model = "market"                  # mean | market_adjusted | market | multifactor | ff3
    benchmarks = ["SPY"]              # 'SPY[-1]' is SPY one trading day earlier
    windows = ["0,0", "-1,1", "-5,5", "0,10"]
    estimation = [-250, -11]
    min_obs = 120
    unknown_policy = "same_day"       # same_day | next_session
    date_basis = "official"           # official | evidence | first_report | deal_row
    conventions = "textbook"          # textbook | estudy2
    method = "batch"                  # batch | statsmodels | event_dummy
    mask_other_events = true
    lag_non_us_listings = true        # 9984.T on SPY and SPY[-1] (Dimson)
    peers = []

    [study.benchmarks_by_ticker]
    "9984.T" = ["SPY", "SPY[-1]"]

    [explain]                         # carousel explain and the main job's second stage
    formula = "car ~ log_amount + on_round_trip + C(deal_kind)"
    window = "-1,1"                   # one of the study's windows
    weights = "wls"                   # ols | wls (1/se(CAR)^2)
    covariance = ["hc3", "cluster:date,firm"]   # or one: "hc3"; explain prints the first
    bootstrap = 0                     # wild cluster bootstrap draws per term (0: none)
    boot_weights = "webb"             # webb | rademacher
    seed = 0
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.spec import ExplainSpec, StudySpec
from analysis.window import EventWindow
from core.errors import InputError

FILENAME = "carousel.toml"
VERSION = 1

_STUDY_KEYS: dict[str, str] = {
    "model": "str",
    "benchmarks": "list[str]",
    "windows": "list[str]",
    "estimation": "list[int]",
    "min_obs": "int",
    "unknown_policy": "str",
    "date_basis": "str",
    "conventions": "str",
    "method": "str",
    "mask_other_events": "bool",
    "lag_non_us_listings": "bool",
    "peers": "list[str]",
    "benchmarks_by_ticker": "table",
}
_EXPLAIN_KEYS: dict[str, str] = {
    "formula": "str",
    "window": "window",
    "weights": "str",
    "covariance": "str|list[str]",
    "bootstrap": "int",
    "boot_weights": "str",
    "seed": "int",
}


@dataclass(frozen=True)
class ProjectConfig:
    """What a ``carousel.toml`` sets: the study fields it names (unnamed ones keep their defaults)."""

    path: Path | None
    study: dict[str, Any]
    lines: dict[str, int]
    #: the ``[explain]`` fields it names (:class:`analysis.spec.ExplainSpec`)
    explain: dict[str, Any] = field(default_factory=dict)

    def source(self, key: str) -> str:
        """``'carousel.toml:7'`` for a key the file sets (for error messages and the report)."""
        return f"{self.path}:{self.lines.get(key, 0)}" if self.path else "default"


def find_config(start: Path | None = None) -> Path | None:
    """The nearest ``carousel.toml`` in ``start`` (default: the working directory) or a parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
    return None


def _key_lines(text: str) -> dict[str, int]:
    """Line of each ``[study]`` key (``benchmarks_by_ticker.9984.T`` for the sub-table's entries).

    tomllib reports no positions, so the lines are found in the text: a key line is ``name =`` under
    the most recent table header.
    """
    lines: dict[str, int] = {}
    table = ""
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    key = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")
    for no, line in enumerate(text.splitlines(), start=1):
        if m := header.match(line):
            table = m.group(1).replace(" ", "")
            lines.setdefault(table, no)
            continue
        if m := key.match(line):
            name = m.group(1).strip("\"'")
            full = f"{table}.{name}" if table else name
            lines.setdefault(full, no)
    return lines


def load_config(path: Path) -> ProjectConfig:
    """Read and check ``path``; InputError naming file, line and key for anything wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", file=path, field="--config") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no lineno attribute; the message ends "(at line 2, column 7)".
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        raise InputError(f"not valid TOML: {exc}", file=path, line=line) from None
    lines = _key_lines(text)

    def fail(msg: str, key: str) -> InputError:
        return InputError(msg, file=path, line=lines.get(key) or lines.get(key.split(".")[0]), field=key)

    if "version" not in data:
        raise InputError(f"no 'version = {VERSION}' line: the file's format must be stated", file=path,
                         line=1, field="version")
    if data["version"] != VERSION:
        raise fail(f"version {data['version']!r} is not supported (this carousel reads version {VERSION})",
                   "version")
    for top in data:
        if top not in ("version", "study", "explain"):
            raise fail(f"unknown section or key {top!r} (known: version, [study], [explain])", top)
    out: dict[str, Any] = {}
    for name, value, key, kind in _section_items(data.get("study", {}), "study", _STUDY_KEYS, fail):
        out[name] = _coerce(name, value, kind, lambda msg, k=key: fail(msg, k), lines, fail)
    explain = _explain_section(data.get("explain", {}), fail)
    cfg = ProjectConfig(path=path, study=out, lines={k.removeprefix("study."): v for k, v in lines.items()},
                        explain=explain)
    # Every value is checked together now (e.g. a window overlapping the estimation window), so a bad
    # file fails when it is read, naming the key, not in the middle of a run.
    try:
        apply_config(StudySpec(), cfg)
    except InputError as exc:
        field = exc.field or ""
        # A model/benchmark mismatch is about whichever of the two the file sets.
        related = {"model": ("model", "benchmarks"), "benchmarks": ("benchmarks", "model")}
        key = next((k for k in related.get(field, (field,)) if k in out), field)
        raise fail(str(exc).removeprefix(f"field '{field}': "), f"study.{key}") from None
    return cfg


def _section_items(section: Any, table: str, known: dict[str, str], fail: Any) -> list[tuple[str, Any, str, str]]:
    """(name, value, dotted key, kind) of each key of a ``[table]``; a non-table or an unknown key fails
    naming it, the same way for every section."""
    if not isinstance(section, dict):
        raise fail(f"'{table}' must be a table ([{table}])", table)
    items = []
    for name, value in section.items():
        key = f"{table}.{name}"
        kind = known.get(name)
        if kind is None:
            raise fail(f"unknown key {name!r} in [{table}]; known: {', '.join(known)}", key)
        items.append((name, value, key, kind))
    return items


def _explain_section(section: Any, fail: Any) -> dict[str, Any]:
    """The ``[explain]`` table's values, typed and checked together (:class:`ExplainSpec`)."""
    out: dict[str, Any] = {}
    for name, value, key, kind in _section_items(section, "explain", _EXPLAIN_KEYS, fail):
        if kind == "window":
            if not isinstance(value, str):
                raise fail(f"window must be a string such as \"-1,1\", not {value!r}", key)
            try:
                out[name] = EventWindow.parse(value)
            except ValueError as exc:
                raise fail(str(exc), key) from None
        elif kind == "str|list[str]":
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise fail(f"{name} must be a string or a list of strings, e.g. [\"hc3\", \"cluster:date,firm\"]",
                           key)
            out[name] = tuple(values)
        else:
            out[name] = _coerce(name, value, kind, lambda msg, k=key: fail(msg, k), {}, fail)
    try:
        ExplainSpec(**out)
    except InputError as exc:
        bad = exc.field or ""
        raise fail(str(exc).removeprefix(f"field '{bad}': "), f"explain.{bad}") from None
    return out


def _coerce(name: str, value: Any, kind: str, fail: Any, lines: dict[str, int], fail_at: Any) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise fail(f"{name} must be a string, not {type(value).__name__}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"{name} must be true or false, not {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"{name} must be an integer, not {value!r}")
        return value
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{name} must be a list of strings, e.g. [\"SPY\"]")
        if name == "windows":
            try:
                return tuple(EventWindow.parse(v) for v in value)
            except ValueError as exc:
                raise fail(str(exc)) from None
        return tuple(value)
    if kind == "list[int]":
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise fail(f"{name} must be two integers [start, end], e.g. [-250, -11]")
        return (value[0], value[1])
    # table: ticker -> list of benchmarks
    if not isinstance(value, dict):
        raise fail(f"{name} must be a table of ticker = [benchmarks]")
    pairs = []
    for ticker, bench in sorted(value.items()):
        if not isinstance(bench, list) or not bench or not all(isinstance(b, str) for b in bench):
            raise fail_at(f"benchmarks for {ticker} must be a non-empty list of strings",
                          f"study.{name}.{ticker}")
        pairs.append((ticker, tuple(bench)))
    return tuple(pairs)


def apply_config(spec: StudySpec, cfg: ProjectConfig | None) -> StudySpec:
    """``spec`` with the file's values (validated); the file's line is recorded as each one's source."""
    if cfg is None or not cfg.study:
        return spec
    sources = dict(spec.sources)
    for name in cfg.study:
        sources[name] = cfg.source(name)
    return spec.with_(**cfg.study, sources=tuple(sorted(sources.items())))


def apply_explain_config(spec: ExplainSpec, cfg: ProjectConfig | None) -> ExplainSpec:
    """``spec`` with the ``[explain]`` values of the file (validated when the file was read)."""
    if cfg is None or not cfg.explain:
        return spec
    return spec.with_(**cfg.explain)


def resolve_config(explicit: Path | None) -> ProjectConfig | None:
    """``--config PATH`` if given (it must exist), else the nearest ``carousel.toml``, else None."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"config file {explicit} does not exist", file=explicit, field="--config")
        return load_config(explicit)
    found = find_config()
    return load_config(found) if found else None
