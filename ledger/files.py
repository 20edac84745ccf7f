"""Reading deal and reference files: rows with their line numbers, every failure an InputError.

Why apart from validation: how a CSV or YAML file becomes ``(line, {column: text})`` pairs (byte-order
marks, quoted line breaks, YAML's sexagesimal times and silent duplicate keys) is a different job from
what a value in a column may be (:mod:`ledger.fields`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from core.errors import InputError

DEAL_FIELDS = (
    "id", "announced_date", "announced_time_et", "session", "payer", "payee", "amount_usd_bn",
    "amount_note", "deal_type", "counterparty_tickers", "headline_reaction", "source_publisher",
    "source_title", "source_date", "source_url", "confidence",
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found", file=path)
    if not path.is_file():
        raise InputError("not a regular file (a directory?)", file=path)


def read_text(path: Path) -> str:
    """The file's text; every way of failing to read it is an InputError naming the file."""
    check_file(path)
    try:
        # utf-8-sig: Excel saves "CSV UTF-8" with a byte-order mark, which would otherwise become part of
        # the first column's name.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None


def decode_error(path: Path) -> InputError:
    """The InputError for a file that is not UTF-8, naming the first bad byte's offset in the file.

    Why a second, incremental read: a streaming reader sees the failure in a buffered chunk whose offset
    in the file it does not know; decoding in 1 MiB blocks (memory bounded) finds the absolute offset the
    message has always given."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    fed = 0
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    return InputError(f"not UTF-8 text ({exc.reason} at byte {fed - pending + exc.start})", file=path)
                fed += len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return InputError(f"not UTF-8 text ({exc.reason} at byte {fed - len(exc.object) + exc.start})", file=path)
    except OSError as exc:
        return InputError(f"cannot read file: {exc.strerror or exc}", file=path)
    return InputError("not UTF-8 text", file=path)


def csv_rows(
    path: Path, required: tuple[str, ...], *, allowed: tuple[str, ...] | None = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with its line numbers, read as a stream (memory does not grow with the file).

    ``allowed`` names optional columns beyond ``required``; any other column is an error, because a
    misspelt column (``amount_usd_bm``) would otherwise be dropped silently and its values lost. ``None``
    allows any extra column.
    """
    check_file(path)
    try:
        # utf-8-sig: Excel saves "CSV UTF-8" with a byte-order mark, which would otherwise become part of
        # the first column's name. newline="": lines end only at \r, \n or \r\n, as in CSV
        # (str.splitlines would also end them at U+2028, U+0085, form feeds..., splitting a record in two
        # inside an unquoted field).
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    with fh:
        try:
            yield from _csv_records(fh, path, required, allowed)
        except UnicodeDecodeError:
            raise decode_error(path) from None
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror or exc}", file=path) from None


def _csv_records(
    fh: Iterable[str], path: Path, required: tuple[str, ...], allowed: tuple[str, ...] | None
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(fh, strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=path, line=1) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", file=path, line=1, field=missing[0])
    dups = sorted({c for c in header if header.count(c) > 1})
    if dups:
        raise InputError(f"column(s) appear more than once: {', '.join(dups)}", file=path, line=1, field=dups[0])
    if allowed is not None:
        unknown = [c for c in header if c not in required and c not in allowed]
        if unknown:
            raise InputError(f"unknown column(s): {', '.join(map(repr, unknown))}; expected {', '.join(required + allowed)}",
                             file=path, line=1, field=unknown[0])
    done = reader.line_num  # the last line of the last record read (csv does not advance it on an error)
    try:
        for row in reader:
            # The line the record starts on: line_num is where it ends (quoted fields may hold line breaks).
            raw = [v for k, v in row.items() if k is not None] + list(row.get(None) or [])
            line = reader.line_num - sum(len(_LINE_BREAK.findall(v)) for v in raw if isinstance(v, str))
            done = reader.line_num
            if None in row:
                raise InputError(f"{len(row[None])} value(s) more than the header has", file=path, line=line)
            short = sum(1 for k, v in row.items() if k is not None and v is None)
            if short:
                # DictReader fills a short row with None: a value would silently shift or go missing.
                raise InputError(f"{short} value(s) fewer than the header has", file=path, line=line)
            yield line, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=path, line=done + 1) from None


def yaml_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a YAML deals file, read from the composed node tree rather than constructed values.

    Why nodes: YAML 1.1 *constructs* ``16:30`` as the sexagesimal integer 990 and ``0.1`` as a binary
    float, and silently keeps the last of two equal keys. A plain scalar's node keeps the text as written,
    so times stay ``16:30``, amounts reach :class:`~decimal.Decimal` from their digits, and a duplicate key
    can be reported with its line.
    """
    text = read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"malformed YAML: {getattr(exc, 'problem', None) or exc}", file=path,
                         line=(mark.line + 1) if mark else None) from None
    except RecursionError:
        raise InputError("YAML nested too deeply (a deals file is a list of flat mappings)", file=path) from None
    if root is not None:
        _refuse_unknown_tags(root, path)
    if isinstance(root, yaml.MappingNode):
        top = _yaml_mapping(root, path)
        if "deals" not in top:
            raise InputError("expected a list of deals (or a mapping with a 'deals' list)", file=path, line=1)
        root = top["deals"]
    if not isinstance(root, yaml.SequenceNode):
        raise InputError("expected a list of deals (or a mapping with a 'deals' list)", file=path,
                         line=(root.start_mark.line + 1) if root is not None else 1)
    for node in root.value:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            raise InputError("each deal must be a mapping", file=path, line=line)
        item = _yaml_mapping(node, path)
        unknown = sorted(set(item) - set(DEAL_FIELDS))
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}", file=path, line=line, field=unknown[0])
        row = {}
        for k in DEAL_FIELDS:
            value = item.get(k)
            if value is not None and not isinstance(value, yaml.ScalarNode):
                raise InputError("expected a single value, not a list or mapping (separate several with ';')",
                                 file=path, line=value.start_mark.line + 1, field=k)
            row[k] = "" if value is None or value.tag == "tag:yaml.org,2002:null" else str(value.value).strip()
        yield line, row


#: The YAML tags a deals file may use (plain scalars resolve to these; an explicit ``!tag`` or
#: ``!!python/...`` would otherwise be silently read as its text).
_YAML_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp",
                                                          "map", "seq"))


def _refuse_unknown_tags(root: yaml.Node, path: Path) -> None:
    """InputError at the first node with a tag outside :data:`_YAML_TAGS` (iterative: no recursion)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.tag not in _YAML_TAGS:
            raise InputError(f"unknown YAML tag {node.tag!r}", file=path, line=node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_mapping(node: yaml.MappingNode, path: Path) -> dict[str, yaml.Node]:
    out: dict[str, yaml.Node] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise InputError("keys must be plain names", file=path, line=key_node.start_mark.line + 1)
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key in out:
            raise InputError(f"duplicate key {key!r} (first on line {lines[key]})", file=path, line=line, field=key)
        out[key], lines[key] = value_node, line
    return out
