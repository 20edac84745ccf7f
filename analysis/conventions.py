"""Named convention sets for the event study.

Why: published tools disagree on small formula choices (degrees of freedom, which days enter the
prediction-error correction, test denominators). carousel computes the textbook version by default and
can reproduce a reference tool exactly when its convention set is selected. Every field documents the
choice it controls; ``docs``/README list how each differs from the textbook.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conventions:
    """Formula choices. ``TEXTBOOK`` is the default; ``ESTUDY2`` reproduces R's estudy2."""

    name: str
    #: residual sigma ddof: "k" = number of regression parameters (textbook, M - k), or an int (estudy2: 1).
    sigma_ddof: str | int = "k"
    #: prediction-error correction computed from the market days of the estimation dates even where the
    #: firm has no return (estudy2) rather than only the firm's own estimation observations (textbook).
    pe_over_all_market_days: bool = False
    #: generalized sign p-hat: "per_firm_mean" (Cowan 1992) or "pooled" (estudy2).
    sign_phat: str = "per_firm_mean"
    #: rank test: "corrado" (textbook) or "estudy2" (row means times the number of columns).
    rank_variant: str = "corrado"
    #: Patell Z denominator sums (M_i-k)/(M_i-k-2) over the firm-events with an AR that day ("present",
    #: textbook) or over every firm-event in the panel, numerator as mean times N ("all_firms", estudy2).
    patell_over: str = "present"


TEXTBOOK = Conventions(name="textbook")
ESTUDY2 = Conventions(
    name="estudy2",
    sigma_ddof=1,
    pe_over_all_market_days=True,
    sign_phat="pooled",
    rank_variant="estudy2",
    patell_over="all_firms",
)

BY_NAME = {c.name: c for c in (TEXTBOOK, ESTUDY2)}
