"""Amount terms read from the free-text ``amount_note`` (fallback for deals ``amount_terms.csv`` does not
list): whether the headline amount is exact, a ceiling or an estimate, and over what horizon."""

from __future__ import annotations

import re

from ledger.registry import AmountTerms

_ESTIMATE_WORDS = re.compile(r"~|\b(?:about|approx\w*|around|roughly|estimated?|reported|report|not confirmed)\b", re.I)
_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                 "nine": "9", "ten": "10"}


def _leading_clause(note: str) -> str:
    """What the note says about the headline amount itself: its first clause, without asides.

    Notes lead with the amount and then add context (stakes, later expansions, IP terms, other figures);
    words such as '~' or 'up to' in that context describe other numbers, not the headline amount.
    """
    head = re.split(r";|\.\s", note, maxsplit=1)[0]
    return re.sub(r"\([^)]*\)", "", head)


def note_terms(note: str, *, disclosed: bool) -> AmountTerms:
    """amount_kind and horizon read from the leading clause of ``amount_note``.

    ``up to``/``ceiling`` -> up_to; '~', about, approx., around, roughly, estimate(d), report(ed), not
    confirmed -> estimate; otherwise exact. Horizon: 'over N years' or 'N-year' -> 'Ny'; 'through/until
    [December |end-]YYYY' -> 'through YYYY'. Shipped deals are listed in ``amount_terms.csv`` instead,
    where a person has read the whole note.
    """
    lead = _leading_clause(note)
    low = lead.lower()
    if not disclosed:
        kind = "undisclosed"
    elif "up to" in low or "ceiling" in low:
        kind = "up_to"
    elif _ESTIMATE_WORDS.search(lead):
        kind = "estimate"
    else:
        kind = "exact"
    horizon = None
    words = "|".join(_NUMBER_WORDS)
    m = re.search(rf"\bover (?:about |~)?(\d+|{words})[- ]years?\b|\b(\d+|{words})-year\b", lead, re.I)
    if m:
        n = (m.group(1) or m.group(2)).lower()
        horizon = f"{_NUMBER_WORDS.get(n, n)}y"
    else:
        t = re.search(r"\b(?:through|until|till) (?:December |end-)?(20\d\d)\b", lead)
        horizon = f"through {t.group(1)}" if t else None
    return AmountTerms(kind, horizon)
