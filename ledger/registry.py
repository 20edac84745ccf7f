"""Who is who for a deals file: companies (aliases, tickers), which rows report one contract, and the
explicit amount terms, read from ``companies.csv``, ``contracts.csv`` and ``amount_terms.csv`` beside the
deals file (or the shipped ones in ``data/events``); or, for amend/correct, the database's own companies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.paths import DATA_DIR
from ledger.fields import _HORIZON_RE, _TICKER_RE, BN, _money
from ledger.files import csv_rows
from ledger.model import AMOUNT_KINDS


@dataclass(frozen=True)
class AmountTerms:
    """What a deal's headline amount is (``amount_kind``), over what period (``horizon``), and how much of
    it the named payer pays itself (``payer_amount``, US dollars) when others share the deal: the $40B
    SoftBank-led round of 2025-03-31 had co-investors for about $10B (``data/events/NOTES.md``)."""

    amount_kind: str
    horizon: str | None
    payer_amount: Decimal | None = None


@dataclass(frozen=True)
class Registry:
    """Known companies: alias -> company id, and ticker -> company id; per-deal contract and amount terms."""

    companies: dict[str, dict[str, Any]]
    aliases: dict[str, str]
    tickers: dict[str, str]
    contracts: dict[str, tuple[str, bool]]
    terms: dict[str, AmountTerms] = field(default_factory=dict)


def load_registry(folder: Path) -> Registry:
    comp_file = folder / "companies.csv"
    if not comp_file.exists():
        comp_file = DATA_DIR / "events" / "companies.csv"
    companies: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    tickers: dict[str, str] = {}
    for line, row in csv_rows(comp_file, ("company_id", "name", "listed", "tickers", "aliases"), allowed=("note",)):
        cid = row["company_id"]
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", cid):
            raise InputError(f"invalid company id {cid!r}", file=comp_file, line=line, field="company_id")
        listed = row["listed"].strip().lower()
        if listed not in ("true", "false"):
            raise InputError("must be true or false", file=comp_file, line=line, field="listed")
        tlist = []
        for spec in filter(None, row["tickers"].split("|")):
            parts = spec.split(":")
            if len(parts) != 3 or not _TICKER_RE.match(parts[0]):
                raise InputError(f"ticker {spec!r} is not SYMBOL:EXCHANGE:CCY", file=comp_file, line=line, field="tickers")
            tlist.append({"symbol": parts[0], "exchange": parts[1], "currency": parts[2]})
            tickers[parts[0]] = cid
        companies[cid] = {"company_id": cid, "name": row["name"], "listed": listed == "true", "tickers": tlist}
        for alias in {row["name"], cid, *filter(None, row["aliases"].split("|"))}:
            aliases[alias.strip().lower()] = cid
    contracts: dict[str, tuple[str, bool]] = {}
    counting: dict[str, tuple[str, int]] = {}
    con_file = folder / "contracts.csv"
    if not con_file.exists():
        con_file = DATA_DIR / "events" / "contracts.csv"
    if con_file.exists():
        for line, row in csv_rows(con_file, ("deal_id", "contract_id", "counts_toward_total"), allowed=("note",)):
            flag = row["counts_toward_total"].strip().lower()
            if flag not in ("true", "false"):
                raise InputError("must be true or false", file=con_file, line=line, field="counts_toward_total")
            contracts[row["deal_id"]] = (row["contract_id"], flag == "true")
            if flag == "true":
                # Only one report of a contract counts toward flow totals (the others would add its money again).
                first = counting.setdefault(row["contract_id"], (row["deal_id"], line))
                if first[1] != line:
                    raise InputError(f"{row['deal_id']} and {first[0]} (line {first[1]}) both count toward totals in "
                                     f"contract {row['contract_id']!r}; only one report of a contract counts",
                                     file=con_file, line=line, field="counts_toward_total")
    return Registry(companies, aliases, tickers, contracts, _load_terms(folder))


def _load_terms(folder: Path) -> dict[str, AmountTerms]:
    """``amount_terms.csv``: explicit amount_kind/horizon per deal id (beside the deals file, else shipped)."""
    path = folder / "amount_terms.csv"
    if not path.is_file():
        path = DATA_DIR / "events" / "amount_terms.csv"
    if not path.is_file():
        return {}
    terms: dict[str, AmountTerms] = {}
    first: dict[str, int] = {}
    for line, row in csv_rows(path, ("deal_id", "amount_kind", "horizon"), allowed=("note", "payer_share_bn")):
        did = row["deal_id"]
        if did in first:
            raise InputError(f"duplicate deal id {did!r} (first on line {first[did]})", file=path, line=line, field="deal_id")
        first[did] = line
        kind = row["amount_kind"]
        # Only a disclosed amount has a kind worth stating; an empty amount is 'undisclosed' by definition.
        if kind not in AMOUNT_KINDS or kind == "undisclosed":
            raise InputError(f"{kind!r} is not one of exact, up_to, estimate", file=path, line=line, field="amount_kind")
        horizon = row["horizon"] or None
        if horizon is not None and not _HORIZON_RE.match(horizon):
            raise InputError(f"{horizon!r} is not a horizon like '5y' or 'through 2032'", file=path, line=line,
                             field="horizon")
        share = _money(row.get("payer_share_bn") or "", partial(_terms_error, path, line), "payer_share_bn",
                       scale=BN, unit="US$ billions")
        terms[did] = AmountTerms(kind, horizon, share)
    return terms


def _terms_error(path: Path, line: int, message: str, fld: str) -> InputError:
    return InputError(message, file=path, line=line, field=fld)


def _bn_text(dollars: Decimal) -> str:
    """US dollars as plain billions: 40000000000.00 -> '40', 12500000000.00 -> '12.5'."""
    return format((dollars / BN).normalize(), "f")


def registry_from_companies(companies: list[dict[str, Any]]) -> Registry:
    """A registry of the companies a database has registered (for ``amend``/``correct``).

    The database, not a CSV beside the working directory, is what a change must agree with: a deal may only
    name companies and tickers that the ledger itself knows.
    """
    aliases: dict[str, str] = {}
    tickers: dict[str, str] = {}
    for c in companies:
        cid = c["company_id"]
        aliases[cid.lower()] = cid
        aliases[str(c["name"]).strip().lower()] = cid
        for t in c["tickers"] or []:
            tickers[t] = cid
    return Registry({c["company_id"]: c for c in companies}, aliases, tickers, {})
