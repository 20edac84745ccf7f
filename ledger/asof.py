"""As-of reads of the ledger folded in DuckDB SQL: the state as known at an instant (transaction time),
in effect on a date (valid time), or at thousands of instants or dates in one pass.

Why SQL: an as-of state is by definition not what the projection tables hold now, and replaying the log
prefix in Python costs seconds at 100,000 events. The fold has a closed form that a database computes in
one pass over the log: per deal and field, the value comes from one event, the *winner* among the events
that set the field,

* an amendment in effect (effective date on or before the valid date; every amendment when no valid
  date is asked), the one latest in (effective date, log position) order; else
* the latest (by log position) of the announcement, the corrections and the timing evidence;

counting only the events at or after the deal's latest announcement (a second announcement of a deal
starts a new record, as :class:`ledger.model.DealAnnounced` does). The status is retracted when a
retraction in effect is known, the version is the stream version of the deal's latest event. These are
the rules of :mod:`ledger.project` (its module doc says why they are what they are); a property test
compares this module with ``project.fold`` on random logs at random cut points, exactly.

The payload's JSON is parsed once per event (one ``json_extract`` with every path), each field's value
kept as JSON text so that "absent" (SQL NULL) and "present but null" (``'null'``) stay apart, as
``dict.get`` with a default does in :func:`ledger.project.deal_row`. Amounts are converted to
DECIMAL(38, 2) in SQL when the text has at most two decimals (exact); any other text (more decimals,
exponents, a v1 amount in billions with more than 11 decimals) is rounded half-even by
:func:`ledger.project._amount` itself, in Python, once per distinct text.

A single query splits the deals by stream before any payload is read (:func:`deals_at`): a narrow scan
finds the streams holding an event other than their first announcement up to the cut; every other
stream holds one deal event, its announcement, whose fold is its payload, so it becomes a row straight
from one typed parse (``json_transform``, lists into VARCHAR[]) with no aggregation, and only the other
streams' events are folded. On a log of announcements (every log carousel's import writes) nothing is
folded at all; when the other events are many, one fold of every event is cheaper and is taken. The
split by stream is one by deal because a writer's payload names its stream's deal; each row says so
(``_own``), and a log where a payload names another stream's deal is folded by the payload's deal.
Every route gives the same rows; the hypothesis test runs each.

Many instants: with recorded_at non-decreasing along the log (the writer makes it strictly increasing),
the events known at T are a prefix of the log, so each deal event starts a version of its deal that is
known from its recorded_at until the deal's next event; window aggregates give every version in one
pass and an interval join gives the state at every instant. A log whose recorded_at goes backwards
(written by something else) is answered one query per instant, still in SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from ledger import project
from ledger.model import TIMING_FIELDS, upcast

_UTC = pl.Datetime("us", "UTC")
_FOREVER = 2**62  # microseconds beyond any recorded_at

#: Every (event type, schema version) the SQL fold reads. A payload version the fold does not know (a
#: new upcaster) sends the query to the Python replay until this module learns it (a test holds the two
#: in step with ``ledger.model.REGISTRY``).
SQL_EVENT_VERSIONS: frozenset[tuple[str, int]] = frozenset({
    ("CompanyRegistered", 1),
    ("DealAnnounced", 1),  # amount_usd_bn (US$ bn), upcast in SQL below
    ("DealAnnounced", 2),
    ("DealAmended", 1),
    ("DealCorrected", 1),
    ("DealRetracted", 1),
    ("DealTimingEvidenced", 1),
    ("DealTimingEvidenced", 2),  # + origin, which the fold does not read
})
_DEAL_TYPES = ("DealAnnounced", "DealAmended", "DealCorrected", "DealRetracted", "DealTimingEvidenced")

#: The deal fields a deal row reads from the folded record, with how the row derives its column.
_TEXT, _DATE, _LIST, _AMOUNT = "text", "date", "list", "amount"
_FIELDS: dict[str, str] = {
    "contract_id": _TEXT,
    "announced_date": _DATE,
    "announced_time_et": _TEXT,
    "session": _TEXT,
    "payers": _LIST,
    "payees": _LIST,
    "amount_usd": _AMOUNT,
    "amount_kind": _TEXT,
    "deal_type": _TEXT,
    "horizon": _TEXT,
    "tickers": _LIST,
    "counts_toward_total": "bool",
    "title": _TEXT,
    "confidence": _TEXT,
    "payer_amount_usd": _AMOUNT,
    "first_report_date": _DATE,
    "first_report_time_et": _TEXT,
    "first_report_session": _TEXT,
    "timing_time_et": _TEXT,
    "timing_session": _TEXT,
    "timing_evidence_kind": _TEXT,
    "timing_confidence": _TEXT,
}
_TIMING_KEY = {field: key for key, field in TIMING_FIELDS.items()}

def _branch_sql(types: tuple[str, ...], top: list[str], values: dict[str, str], eff: str, where: str,
                own: bool = False) -> str:
    """One kind of deal event: ``top`` JSON paths extracted in one parse (``j[1]`` is the deal id), the
    valid-time date ``eff`` and each field's value expression over ``j`` (NULL for a field not set);
    ``own``: also whether the event's stream is its deal's (``ledger.model.deal_stream``)."""
    paths = ", ".join(f"'{p}'" for p in ["$.deal_id", *top])
    cols = ", ".join(f"CAST({values.get(f, 'NULL')} AS VARCHAR) AS v_{f}" for f in _FIELDS)
    kinds = ", ".join(f"'{t}'" for t in types)
    own_col = "coalesce(sid = 'deal-' || (j[1] ->> '$'), false) AS own, " if own else ""
    return (f"SELECT pos, sv, et, ra, j[1] ->> '$' AS deal_id, {own_col}{eff} AS eff, {cols} FROM "
            f"(SELECT position AS pos, stream_version AS sv, event_type AS et, schema_version AS ver, "
            f"epoch_us(recorded_at) AS ra, {'stream_id AS sid, ' if own else ''}json_extract(payload, [{paths}]) AS j "
            f"FROM ledger_log WHERE event_type IN ({kinds}) AND ({where}))")


def _announced() -> tuple[list[str], dict[str, str]]:
    """Paths and values of a DealAnnounced: every field as recorded; a v1 payload held US$ bn
    (ledger.model._deal_announced_v1_to_v2), exact in DECIMAL when the text has at most 11 decimals and
    15 integer digits, otherwise marked 'BN:<text>' for Python."""
    top = ["$.amount_usd_bn", *(f"$.{f}" for f in _FIELDS)]
    values = {f: f"j[{i + 3}]" for i, f in enumerate(_FIELDS)}
    bn = "(j[2] ->> '$')"
    values["amount_usd"] = (
        f"CASE WHEN ver >= 2 THEN {values['amount_usd']} WHEN {bn} IS NULL OR {bn} = '' THEN 'null' "
        f"WHEN regexp_full_match({bn}, '-?[0-9]{{1,15}}(\\.[0-9]{{1,11}})?') "
        f"THEN to_json(CAST(CAST(CAST({bn} AS DECIMAL(38, 11)) * 1000000000 AS DECIMAL(38, 2)) AS VARCHAR)) "
        f"ELSE to_json('BN:' || {bn}) END")
    return top, values


def _events_sql(where: str, valid: str, *, own: bool = False, types: frozenset[str] = frozenset(_DEAL_TYPES)) -> str:
    """Deal events of ``ledger_log`` (``where`` on its columns), one row each: position, stream version,
    type, recorded_at (us), deal id, valid-time date of an amendment or retraction (0001-01-01 when
    undated: in effect at every date), the order ``k`` in which it sets fields for the valid date
    ``valid`` (a SQL date, NULL for every amendment): amendments in effect above the rest, in (effective
    date, position) order, the rest by position, NULL for an amendment not in effect; and one
    ``v_<field>`` JSON text per field it sets (arg_max skips a NULL value, so one key serves all);
    ``own``: also ``own``, whether the event's stream is its deal's; ``types``: the kinds of event to
    read (the others are known to be absent).

    One branch per kind of event, each parsing its payload once for the paths it needs (a path lookup
    costs about as much as a tenth of the parse: extracting every path from every payload tripled the
    time)."""
    dated = "coalesce(CAST(nullif(j[2] ->> '$', '') AS DATE), DATE '0001-01-01')"
    top, values = _announced()
    changes = {f: f"j[{i + 3}]" for i, f in enumerate(_FIELDS)}
    timing = {f: f"coalesce(j[{i + 2}], 'null')" for i, f in enumerate(_TIMING_KEY)}
    changed = ["$.effective_date", *(f"$.changes.{f}" for f in _FIELDS)]
    branches = {
        "DealAnnounced": lambda: _branch_sql(("DealAnnounced",), top, values, "NULL::DATE", where, own),
        "DealCorrected": lambda: _branch_sql(("DealCorrected",), changed, changes, "NULL::DATE", where, own),
        "DealAmended": lambda: _branch_sql(("DealAmended",), changed, changes, dated, where, own),
        "DealTimingEvidenced": lambda: _branch_sql(("DealTimingEvidenced",), [f"$.{_TIMING_KEY[f]}" for f in _TIMING_KEY],
                                                   timing, "NULL::DATE", where, own),
        "DealRetracted": lambda: _branch_sql(("DealRetracted",), ["$.effective_date"], {}, dated, where, own),
    }
    # the announcements' branch always, so that the union is never empty
    union = "\nUNION ALL\n".join(b() for t, b in branches.items() if t in types or t == "DealAnnounced")
    return f"""
SELECT *, CASE WHEN et <> 'DealAmended' THEN pos WHEN {valid} IS NULL OR eff <= {valid}
               THEN {2**62} + (date_diff('day', DATE '1970-01-01', eff) + 1000000) * {2**37} + pos END AS k
FROM ({union})"""


def _row_sql(src: str, keys: str, *, typed: bool = False) -> str:
    """Deal rows (``ledger.project.deal_row``) from the winners' JSON texts ``j_<field>`` of ``src`` (or,
    ``typed``, their values parsed already: the scalar is the column itself instead of its ``->> '$'``)."""
    cols = []
    for f, kind in _FIELDS.items():
        s = f"j_{f}" if typed else f"(j_{f} ->> '$')"
        if f == "contract_id":
            expr = f"coalesce(nullif({s}, ''), deal_id)"
        elif f in ("session", "amount_kind"):
            expr = f"coalesce(nullif({s}, ''), '{'unknown' if f == 'session' else 'undisclosed'}')"
        elif kind == _DATE:
            expr = f"CAST(nullif({s}, '') AS DATE)"
        elif kind == _LIST:
            expr = f"coalesce(j_{f}, [])" if typed else f"coalesce(from_json(j_{f}, '[\"VARCHAR\"]'), [])"
        elif kind == "bool":
            expr = f"j_{f} IS NULL OR j_{f} NOT IN ('false', 'null', '0', '\"\"', '[]', '{{}}')"
        elif kind == _AMOUNT:
            simple = f"regexp_full_match({s}, '-?[0-9]{{1,36}}(\\.[0-9]{{1,2}})?')"
            cols.append(f"CASE WHEN {s} <> '' AND NOT {simple} THEN {s} END AS _odd_{f}")
            expr = f"CASE WHEN {simple} THEN CAST({s} AS DECIMAL(38, 2)) END"
        else:
            expr = s
        cols.append(f"{expr} AS {f}")
    return f"SELECT {keys}, deal_id, CASE WHEN retracted THEN 'retracted' ELSE 'active' END AS status, " \
           f"version, {', '.join(cols)} FROM {src}"


def _struct(keys: dict[str, str]) -> str:
    """A json_transform structure (``{"key": "TYPE", ...}``) as a SQL string literal."""
    return "'{" + ", ".join(f'"{k}": {t}' for k, t in keys.items()) + "}'"


def _typed(field: str) -> str:
    """How json_transform reads a field of an announcement taken straight from its payload: a list as
    VARCHAR[] (what ``from_json`` of its JSON text gives, non-lists and nested values alike, in one
    parse), the flag as JSON (its truthiness depends on the JSON type: ``"0"`` is true and ``0`` false),
    the rest as VARCHAR (a string's text, any other value's JSON text: what ``->> '$'`` gives)."""
    return {_LIST: '["VARCHAR"]', "bool": '"JSON"'}.get(_FIELDS[field], '"VARCHAR"')


def _typed_announced() -> tuple[dict[str, str], dict[str, str]]:
    """Structure and values of a DealAnnounced: every field as recorded (it sets them all, an absent one
    to NULL); a v1 payload held US$ bn (ledger.model._deal_announced_v1_to_v2), exact in DECIMAL when the
    text has at most 11 decimals and 15 integer digits, otherwise marked 'BN:<text>' for Python. The
    flag alone tells absent (true) from null (false): its JSON text is NULL for both, so only those rare
    payloads are looked up again."""
    structure = {"deal_id": '"VARCHAR"', "amount_usd_bn": '"VARCHAR"', **{f: _typed(f) for f in _FIELDS}}
    values = {f: f"t.{f}" for f in _FIELDS}
    bn = "t.amount_usd_bn"
    values["amount_usd"] = (
        f"CASE WHEN ver >= 2 THEN t.amount_usd WHEN {bn} IS NULL OR {bn} = '' THEN NULL "
        f"WHEN regexp_full_match({bn}, '-?[0-9]{{1,15}}(\\.[0-9]{{1,11}})?') "
        f"THEN CAST(CAST(CAST({bn} AS DECIMAL(38, 11)) * 1000000000 AS DECIMAL(38, 2)) AS VARCHAR) "
        f"ELSE 'BN:' || {bn} END")
    values["counts_toward_total"] = (
        "coalesce(t.counts_toward_total, json_extract(payload, '$.counts_toward_total'))")
    return structure, values


def _odd_amount(text: str) -> Any:
    """An amount text the SQL does not convert exactly: what the Python projection makes of it."""
    if text.startswith("BN:"):
        text = upcast("DealAnnounced", 1, {"amount_usd_bn": text[3:]})["amount_usd"]
    return project._amount(text)


def _finish(frame: pl.DataFrame, first: dict[str, Any], last: dict[str, Any] | None = None) -> pl.DataFrame:
    """Odd amounts through Python, the columns of ``ledger.api.deals`` (between ``first`` and ``last``)."""
    for f in ("amount_usd", "payer_amount_usd"):
        odd = frame[f"_odd_{f}"].drop_nulls().unique().to_list()
        if odd:
            conv = pl.Series(f"_conv_{f}", [_odd_amount(t) for t in odd], dtype=pl.Decimal(38, 2))
            lookup = pl.DataFrame({f"_odd_{f}": odd}).with_columns(conv)
            frame = frame.join(lookup, on=f"_odd_{f}", how="left", maintain_order="left").with_columns(
                pl.coalesce(f"_conv_{f}", f).alias(f)).drop(f"_conv_{f}")
    schema = pl.Schema({**first, **project.DEAL_COLUMNS, **(last or {})})
    return frame.select(*schema).cast(schema)


def sql_readable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every (event type, schema version) in the log is one the SQL fold reads."""
    have = con.execute("SELECT DISTINCT event_type, schema_version FROM ledger_log").fetchall()
    return all((str(t), int(v)) in SQL_EVENT_VERSIONS for t, v in have)


#: ``ledger_log`` rows of a deal event (any kind).
_IS_DEAL_EVENT = "event_type IN (" + ", ".join(f"'{t}'" for t in _DEAL_TYPES) + ")"
#: A deal event that is not the first event of its stream or not an announcement: the streams holding one
#: (a narrow scan, no payload read) are the ones folded; every other stream holds exactly one deal event
#: up to the cut (stream versions are unique per stream), its announcement.
_OTHER_EVENT = "(event_type <> 'DealAnnounced' OR stream_version <> 1)"


def _params(sql: str, args: dict[str, Any]) -> dict[str, Any]:
    """The named parameters ``sql`` uses (DuckDB refuses a parameter that the statement does not have)."""
    return {k: v for k, v in args.items() if f"${k}" in sql}


def _announced_rows_sql(where: str, *, folded: bool) -> str:
    """Deal rows of the deals whose stream holds one deal event up to the cut, its announcement (nearly
    every deal of a log carousel's import writes): the fold of one announcement is its payload, so each is
    parsed once into typed values (json_transform, lists straight into VARCHAR[]) and becomes a row with no
    aggregation; a hash aggregation of 22 ``arg_max`` over every deal was most of a single query's time.
    ``folded``: leave out the streams of CTE ``s`` (:func:`_split_sql` folds them). ``_own`` says the
    payload's deal is its stream's (``ledger.model.deal_stream``), which makes a partition by stream one
    by deal; the writer never breaks it, and a row that does sends the query to the unsplit fold."""
    structure, values = _typed_announced()
    cols = ", ".join(f"{values[f]} AS j_{f}" for f in _FIELDS)
    anti = " ANTI JOIN s USING (stream_id)" if folded else ""
    src = (f"(SELECT t.deal_id AS deal_id, coalesce(stream_id = 'deal-' || t.deal_id, false) AS _own, "
           f"sv AS version, false AS retracted, {cols} FROM "
           f"(SELECT stream_id, stream_version AS sv, schema_version AS ver, payload, "
           f"json_transform(payload, {_struct(structure)}) AS t FROM ledger_log{anti} "
           f"WHERE event_type = 'DealAnnounced' AND stream_version = 1 AND ({where})))")
    return _row_sql(src, "true AS _plain, _own", typed=True)


def _split_sql(where: str, valid: str, types: frozenset[str], *, since: bool) -> str:
    """Deal rows as known at the cut: the streams holding one announcement straight from it
    (:func:`_announced_rows_sql`), the others (CTE ``s``, narrow) folded by :func:`_group_fold_sql`, their
    events since the deal's latest announcement when ``since``. Each payload is parsed once, in one
    branch or the other; with a stream per deal the two parts hold different deals (``_own`` checks it)."""
    events = _events_sql(f"({where}) AND stream_id IN (SELECT stream_id FROM s)", valid, own=True, types=types)
    rows = _since_announced(events) if since else events
    folded = _row_sql(f"({_group_fold_sql(rows, '_own', valid)})", "_plain, _own")
    return (f"WITH s AS MATERIALIZED (SELECT DISTINCT stream_id FROM ledger_log "
            f"WHERE {_IS_DEAL_EVENT} AND ({where}) AND {_OTHER_EVENT})\n"
            f"{_announced_rows_sql(where, folded=True)}\nUNION ALL\n{folded}")


def _group_fold_sql(rows: str, keys: str, valid: str, key: str = "k") -> str:
    """Fold ``rows`` (events of :func:`_events_sql`, with ``deal_id`` and ``k``) per (``keys``, deal_id);
    ``valid`` is the valid date (a SQL expression, NULL for every amendment), ``key`` the order in which
    events set fields (a field's setters are the rows with a value). ``_plain``: the deal's first event is
    its only announcement, so no event needs to be left out; deals never announced are dropped. With
    ``keys`` ``_own`` (rows of ``_events_sql(own=True)``), whether every event's stream is its deal's,
    and a deal with an event in another deal's stream is kept even if not announced here (its
    announcement may be in the other part of the split, which this event must reach)."""
    aggs = ",\n".join(f"    arg_max(v_{f}, {key}) AS j_{f}" for f in _FIELDS)
    group = "bool_and(own) AS _own" if keys == "_own" else keys
    return f"""
SELECT * FROM (
SELECT {group}, deal_id, arg_max(sv, pos) AS version,
    coalesce(bool_or(et = 'DealRetracted' AND ({valid} IS NULL OR eff <= {valid})), false) AS retracted,
    count(*) FILTER (WHERE et = 'DealAnnounced') AS _announced,
    _announced = 1 AND min(pos) = min(pos) FILTER (WHERE et = 'DealAnnounced') AS _plain,
{aggs}
FROM ({rows}) r
GROUP BY {'deal_id' if keys == '_own' else 'ALL'}) WHERE _announced > 0{' OR NOT _own' if keys == '_own' else ''}"""


def _since_announced(events: str) -> str:
    """The events of each deal from its latest announcement on (a second announcement of a deal starts
    a new record; events before the first have no record to change): the exact but slower route, taken
    only when some deal is not plain (a log carousel's writer never produces)."""
    return f"""
SELECT * FROM (SELECT *, max(pos) FILTER (WHERE et = 'DealAnnounced') OVER (PARTITION BY deal_id) AS ann
               FROM ({events}))
WHERE ann IS NOT NULL AND pos >= ann"""


def _first_route(con: duckdb.DuckDBPyConnection, where: str, args: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """Where :func:`deals_at` starts, from a narrow scan (no payload read), and the deal event types up
    to the cut (the fold's SQL leaves out the branches of absent kinds: its planning time grows with its
    text). ``announced`` when every deal stream holds one deal event, its announcement: nothing to fold.
    ``split`` when the other events are fewer than half the version-1 announcements (a cheap count, no
    grouping by stream: it includes the announcements of streams that are then folded). On a 20,000-deal
    mixed log the split and the fold of every event cost the same at one other event per two
    announcements (CPU 169 / 166 ms; at 1:10, 131 / 169 ms). Else ``fold``."""
    sql = (f"SELECT count(*), count(*) FILTER (WHERE {_OTHER_EVENT}), list(DISTINCT event_type) "
           f"FROM ledger_log WHERE {_IS_DEAL_EVENT} AND ({where})")
    events, other, types = con.execute(sql, _params(sql, args)).fetchall()[0]
    route = "announced" if other == 0 else "split" if 3 * other < events else "fold"
    return route, frozenset(types or ())


#: The route to take when a route's rows are not all plain (some deal has an event before its latest
#: announcement) or not all its streams' own (``_own``: a payload names another stream's deal, so the
#: split by stream is not one by deal; only a fold by the payload's deal is then exact).
_NEXT_PLAIN = {"announced": None, "split": "split_since", "split_since": None, "fold": "fold_since",
               "fold_since": None}


def _route_sql(route: str, where: str, valid: str, types: frozenset[str] = frozenset(_DEAL_TYPES)) -> str:
    """The deal-row SQL of one route of :func:`deals_at` (keys ``_plain``, ``_own``), for a log prefix
    whose deal events are of ``types``."""
    if route == "announced":
        return _announced_rows_sql(where, folded=False)
    if route in ("split", "split_since"):
        return _split_sql(where, valid, types, since=route == "split_since")
    events = _events_sql(where, valid, types=types)
    rows = _since_announced(events) if route == "fold_since" else events
    return _row_sql(f"({_group_fold_sql(rows, 'true AS _own', valid)})", "_plain, _own")


def deals_at(con: duckdb.DuckDBPyConnection, as_known_at_us: int | None, in_effect_on: dt.date | None) -> pl.DataFrame:
    """Every deal as known at ``as_known_at_us`` (None: all records) and in effect on ``in_effect_on``
    (None: every known amendment): the frame of ``ledger.api.deals``, in one query.

    The routes: every stream a single announcement, taken straight from it (``announced``); or those
    straight and the other streams folded (``split``; over the events since each deal's latest
    announcement, ``split_since``, when some deal has events before it); or every event folded by its
    payload's deal (``fold``, ``fold_since``), when a payload names another stream's deal. A route's
    rows are exact when they are all plain and their streams' own; the first such is the answer."""
    where = "TRUE" if as_known_at_us is None else "recorded_at <= make_timestamptz($cut::BIGINT)"
    args: dict[str, Any] = {"valid": in_effect_on}
    if as_known_at_us is not None:
        args["cut"] = as_known_at_us
    first, types = _first_route(con, where, args)
    route: str | None = first
    while route is not None:
        sql = _route_sql(route, where, "$valid::DATE", types)
        if in_effect_on is not None:
            # a deal that is not plain or not its stream's stays in, so that the checks below see it
            sql = f"SELECT * FROM ({sql}) WHERE announced_date <= $valid::DATE OR NOT _plain OR NOT _own"
        out = con.sql(sql, params=_params(sql, args)).pl()
        own = bool(out["_own"].all())
        if own and out["_plain"].all():
            break
        route = _NEXT_PLAIN[route] if own else "fold"
    return _finish(out.sort("deal_id"), {})


def flows_of(deals: pl.DataFrame, keys: Sequence[str] = ()) -> pl.DataFrame:
    """The edges (``ledger.project.flow_rows``) of the active deals in ``deals`` (a frame of deal rows
    with ``keys`` columns first), whole columns at once: one edge per payer x payee; a multi-party edge
    has no amount and does not count; a valid payer share replaces the amount. Sorted by keys, deal_id,
    payer, payee."""
    d = deals.filter((pl.col("status") == "active") & (pl.col("payers").list.len() > 0)
                     & (pl.col("payees").list.len() > 0))
    multi = pl.col("payers").list.len() * pl.col("payees").list.len() > 1
    share, amount = pl.col("payer_amount_usd"), pl.col("amount_usd")
    # ledger.project.payer_share_problem: a share needs an amount, 0 < share <= amount, one payer and payee
    share_ok = share.is_not_null() & amount.is_not_null() & (share > 0) & (share <= amount) & ~multi
    paid = pl.when(share_ok).then(share).otherwise(amount)
    ctt = pl.col("counts_toward_total")
    # Decimal -> text -> float: the correctly rounded float of the decimal, as Python's float(Decimal)
    edges = d.select(
        *keys, "deal_id", "contract_id", pl.col("payers").alias("payer"), pl.col("payees").alias("payee"),
        pl.when(multi).then(None).otherwise(paid.cast(pl.String).cast(pl.Float64)).alias("amount_usd"),
        pl.when(multi).then(pl.lit("undisclosed")).otherwise(pl.col("amount_kind")).alias("amount_kind"),
        "deal_type", "announced_date", (ctt & ~multi).alias("counts_toward_total"),
        (~ctt).alias("duplicate_report"),
    ).explode("payer").explode("payee")
    schema = pl.Schema({**{k: deals.schema[k] for k in keys}, **project.FLOW_COLUMNS})
    return edges.cast(schema).sort(*keys, "deal_id", "payer", "payee", maintain_order=True)


def epoch_us(t: dt.datetime) -> int:
    """Microseconds since the epoch of a tz-aware instant, exactly (no float on the way)."""
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _times_frame(times: Sequence[Any] | pl.Series) -> pl.DataFrame:
    """The distinct instants asked for, in UTC, with ``_t`` their microseconds; naive ones refused."""
    t = pl.DataFrame({"as_known_at": pl.Series(times)})
    dtype = t["as_known_at"].dtype
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError("times must be timezone-aware datetimes")
    t = t.with_columns(pl.col("as_known_at").dt.convert_time_zone("UTC").cast(_UTC)).unique(maintain_order=True)
    return t.with_columns(pl.col("as_known_at").dt.epoch("us").alias("_t"))


def _monotone(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether recorded_at never decreases along the log (the writer's rule), so that the events known
    at any instant are a prefix of the log."""
    return bool(con.execute(
        "SELECT coalesce(bool_and(ra >= prev), true) FROM (SELECT recorded_at AS ra, "
        "lag(recorded_at) OVER (ORDER BY position) AS prev FROM ledger_log) WHERE prev IS NOT NULL"
    ).fetchall()[0][0])


def _versions_sql() -> str:
    """Every version of every deal along transaction time, with ``_from``/``_until`` (us): each deal
    event starts a version (its fold over the deal's events up to it since its latest announcement),
    known until the deal's next event. Window aggregates over the log: one pass for all versions."""
    aggs = ",\n".join(f"    arg_max(v_{f}, k) OVER w AS j_{f}" for f in _FIELDS)
    events = _events_sql("TRUE", "NULL::DATE")
    return f"""
SELECT deal_id, ra AS _from, lead(ra, 1, {_FOREVER}) OVER (PARTITION BY deal_id ORDER BY pos) AS _until,
    sv AS version, bool_or(et = 'DealRetracted') OVER w AS retracted,
{aggs}
FROM (SELECT *, count(*) FILTER (WHERE et = 'DealAnnounced')
                OVER (PARTITION BY deal_id ORDER BY pos ROWS UNBOUNDED PRECEDING) AS _epoch
      FROM ({events}))
WHERE _epoch > 0
WINDOW w AS (PARTITION BY deal_id, _epoch ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"""


def deals_many(con: duckdb.DuckDBPyConnection, times: Sequence[Any] | pl.Series) -> pl.DataFrame:
    """Every deal as known at each of ``times``: ``as_known_at`` plus the columns of ``ledger.api.deals``,
    sorted by (as_known_at, deal_id); equal to :func:`deals_at` at each time (tested). One SQL pass over
    the log for every version, then an as-of join per deal with the instants."""
    t = _times_frame(times)
    if not _monotone(con):  # events known at T are not a prefix of the log: one fold per instant
        parts = [deals_at(con, int(us), None).select(pl.lit(at, dtype=_UTC).alias("as_known_at"), pl.all())
                 for at, us in t.select("as_known_at", "_t").iter_rows()]
        schema = pl.Schema({"as_known_at": _UTC, **project.DEAL_COLUMNS})
        return pl.concat(parts).sort("as_known_at", "deal_id") if parts else pl.DataFrame(schema=schema)
    versions = _row_sql(f"({_versions_sql()}) WHERE _from < _until", "_from, _until, true AS _plain")
    v = _finish(con.sql(versions).pl(), {"_from": pl.Int64}).with_row_index("_vid")
    # Which version holds at each instant: an as-of join per deal on narrow columns (the latest version
    # from at or before the instant; tied recorded_at left no empty interval), then one gather of the
    # wide rows. Joining the wide rows instead cost most of the time (materialising a million list rows).
    grid = t.select("as_known_at", "_t").sort("_t").join(v.select("deal_id").unique().sort("deal_id"), how="cross")
    pick = grid.sort("_t", "deal_id").join_asof(
        v.select("deal_id", "_from", "_vid").sort("_from"), left_on="_t", right_on="_from", by="deal_id",
        strategy="backward", check_sortedness=False).drop_nulls("_vid")  # both sides sorted just above
    out = v.drop("_vid", "_from")[pick["_vid"]].with_columns(pick["as_known_at"])
    return out.select("as_known_at", *project.DEAL_COLUMNS)


def deals_in_effect_many(con: duckdb.DuckDBPyConnection, days: Sequence[dt.date],
                         as_known_at_us: int | None) -> pl.DataFrame:
    """Every deal in effect on each of ``days`` as known at ``as_known_at_us`` (None: all records): the
    columns of ``ledger.api.deals`` then ``known_on``, sorted by (known_on, deal_id); equal to
    :func:`deals_at` on each day (tested).

    Along valid time a deal changes only on the effective dates of its amendments and retractions, so
    it has one version per such date (and one from the beginning of time): each version is folded once
    (the deal's events joined with its breakpoints), then an interval join gives every day at once,
    keeping the deals announced by then.
    """
    where = "TRUE" if as_known_at_us is None else "recorded_at <= make_timestamptz($cut::BIGINT)"
    events = _events_sql(where, "NULL::DATE")
    args: dict[str, Any] = {"days": sorted(set(days))}
    if as_known_at_us is not None:
        args["cut"] = as_known_at_us
    schema = pl.Schema({**project.DEAL_COLUMNS, "known_on": pl.Date})
    if not args["days"]:
        return pl.DataFrame(schema=schema)
    for rows in (events, _since_announced(events)):
        # breakpoints: 0001-01-01 and every effective date of the deal's amendments and retractions
        joined = f"""
WITH r AS MATERIALIZED ({rows}),
b AS (SELECT DISTINCT deal_id, eff AS _b FROM r WHERE eff IS NOT NULL
      UNION SELECT DISTINCT deal_id, DATE '0001-01-01' FROM r)
SELECT b._b, r.* FROM r JOIN b USING (deal_id)"""
        key = "CASE WHEN et = 'DealAmended' AND eff > _b THEN NULL ELSE k END"
        folded = _group_fold_sql(joined, "_b", "_b", key)
        versions = _row_sql(f"({folded})", "_b, _plain")
        sql = f"""
SELECT v.* EXCLUDE (_b), d.day AS known_on FROM (SELECT unnest($days::DATE[]) AS day) d
JOIN (SELECT *, lead(_b, 1, DATE '9999-12-31') OVER (PARTITION BY deal_id ORDER BY _b) AS _until
      FROM ({versions})) v
  ON v._b <= d.day AND (d.day < v._until OR v._until = DATE '9999-12-31')
     AND (v.announced_date <= d.day OR NOT v._plain)"""
        out = con.sql(sql, params=args).pl()
        if out["_plain"].all():
            break
    return _finish(out.sort("known_on", "deal_id"), {}, {"known_on": pl.Date})
