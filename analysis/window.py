"""The event window: one type for parsing, labelling, ordering and membership.

Why a type: a window travels from the command line (``--window=-1,1``) through the engine to tables,
figures, SQL (``"window" = '[-1,+1]'``) and JSON. Before this module it was a tuple in one place, a
label string in another and parsed back into integers in a third. :class:`EventWindow` is a
``NamedTuple``, so it still unpacks as ``(start, end)`` and compares equal to the tuple, and its
:attr:`label` is the one spelling used in every output.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_PARSE_RE = re.compile(r"^[\[(]?\s*([+-]?\d+)\s*[,:]\s*([+-]?\d+)\s*[\])]?$")


class EventWindow(NamedTuple):
    """Relative trading days ``start..end`` around t0, both included (``start <= end``)."""

    start: int
    end: int

    @classmethod
    def of(cls, window: tuple[int, int] | EventWindow | str) -> EventWindow:
        """Coerce a tuple, a window or a text (see :meth:`parse`) into a window."""
        if isinstance(window, str):
            return cls.parse(window)
        start, end = int(window[0]), int(window[1])
        if start > end:
            raise ValueError(f"window [{start},{end}] ends before it starts")
        return cls(start, end)

    @classmethod
    def parse(cls, text: str) -> EventWindow:
        """``'-1,1'``, ``'[-1,+1]'``, ``'-1:1'`` -> ``EventWindow(-1, 1)``; ValueError otherwise."""
        m = _PARSE_RE.match(text.strip())
        if m is None:
            raise ValueError(f"window {text!r} is not 'start,end' (e.g. -1,1)")
        start, end = int(m.group(1)), int(m.group(2))
        if start > end:
            raise ValueError(f"window {text!r} ends before it starts")
        return cls(start, end)

    @property
    def label(self) -> str:
        """``'[-1,+1]'``, ``'[0,0]'``: the spelling of every table, figure, SQL view and JSON record."""
        return f"[{_signed(self.start)},{_signed(self.end)}]"

    @property
    def length(self) -> int:
        """Number of trading days in the window."""
        return self.end - self.start + 1

    def contains(self, day: int | EventWindow) -> bool:
        """True if a relative day (or a whole window) lies inside this window."""
        if isinstance(day, EventWindow):
            return self.start <= day.start and day.end <= self.end
        return self.start <= day <= self.end

    def sort_key(self) -> tuple[int, int]:
        """Numeric order for tables: by start, then end ([-5,+5] before [-1,+1] before [0,0])."""
        return (self.start, self.end)

    def __str__(self) -> str:
        return self.label


def _signed(day: int) -> str:
    return f"+{day}" if day > 0 else str(day)


def window_label(window: tuple[int, int]) -> str:
    """``(-1, 1) -> '[-1,+1]'``: the label of any (start, end) pair."""
    return EventWindow.of(window).label


def label_order(labels: list[str]) -> list[str]:
    """Window labels sorted numerically (text order puts '[0,+10]' before '[0,0]')."""
    return sorted(labels, key=lambda s: EventWindow.parse(s).sort_key())


#: The windows of the default study (and of `carousel run`): event day, the short and long symmetric
#: windows and the post-event drift.
DEFAULT_WINDOWS: tuple[EventWindow, ...] = (
    EventWindow(0, 0),
    EventWindow(-1, 1),
    EventWindow(-5, 5),
    EventWindow(0, 10),
)
