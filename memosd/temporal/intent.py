"""What a question asks about time: whether it asks for a time at all, and which time it is about.

"When did she move?" and "How long has he played guitar?" ask for a time: the
turns that answer them say when (they carry a time expression). "What did she
paint in June 2023?" is about a time: the turns that answer it were said then,
or talk about then. Both are read from the grammar of English questions, not
from any data set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .mentions import find_mentions

_ASKS_TIME = re.compile(
    r"(?<!\w)(?:when|since\s+when|until\s+when|how\s+long|how\s+often|how\s+soon|how\s+recently|"
    r"what\s+(?:time|date|day|days|week|weekend|month|year|season|period|decade|age)|"
    r"which\s+(?:time|date|day|days|week|weekend|month|year|season|period|decade)|"
    r"in\s+what\s+(?:year|month|season)|at\s+what\s+(?:time|age|point)|"
    r"how\s+many\s+(?:years|months|weeks|days|hours|times|decades)|how\s+old|"
    r"what\s+(?:was|is)\s+the\s+date)(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TimeIntent:
    """The time side of a question."""

    asks_time: bool
    """The question asks when, how long, how often or in which period."""
    interval: tuple[float, float] | None
    """The question names a period with a year (or a full date): UTC epoch seconds, half-open."""
    month: int | None
    """The question names a month without a year ("in June"): 1-12."""

    @property
    def any(self) -> bool:
        return self.asks_time or self.interval is not None or self.month is not None


NO_INTENT = TimeIntent(False, None, None)


def time_intent(question: str) -> TimeIntent:
    """Read a question's time intent. Relative expressions ("last year") are not resolved: a question
    carries no date of its own to resolve them against."""
    if not question:
        return NO_INTENT
    asks = _ASKS_TIME.search(question) is not None
    interval = None
    month = None
    for mention in find_mentions(question, None):
        if mention.lo is not None and mention.hi is not None and mention.kind == "point":
            interval = (mention.lo, mention.hi) if interval is None else (min(interval[0], mention.lo),
                                                                           max(interval[1], mention.hi))
        elif mention.month_only is not None:
            month = mention.month_only
    if not asks and interval is None and month is None:
        return NO_INTENT
    return TimeIntent(asks, interval, month)
