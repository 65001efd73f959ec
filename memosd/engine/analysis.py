"""What indexing needs from a memory's text, computed apart from the structures it goes into.

Reading a text (its index terms, its time expressions, who said it) is most of
the cost of indexing a memory and depends on nothing but the text and when it
was said. So the writer thread does it for each write while it holds the write
transaction, and the event loop, which owns the in-RAM indexes, only inserts the
results: a batch of a thousand memories holds the loop for the inserts alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from memosd_client.protocol.messages import Memory

from ..retrieval.speakers import speaker_of
from ..retrieval.tokenizer import Tokenizer
from ..temporal import find_mentions, month_bits, resolved_hull

_NAN = float("nan")
_MAX_MENTIONS = 127
"""The slot table keeps the count of time expressions in an int8."""


@dataclass(slots=True, frozen=True)
class TextAnalysis:
    """One memory's text, read for indexing (see :func:`analyze`)."""

    terms: list[str]
    """Index terms in order (the lexical index and the tiers' vectors use them)."""
    speaker: str | None
    """Who said it ("Alice: ..."), or None."""
    time_mentions: int
    """How many time expressions it holds (capped at 127)."""
    talks_from: float
    """Start of the period its dated expressions cover (UTC epoch seconds; NaN: none)."""
    talks_to: float
    months: int
    """Bit m-1 set for each calendar month it was said in or its dated expressions start or end in."""


@dataclass(slots=True)
class Written:
    """Versions a write job stored, read for indexing: what its ``index`` step adds to the namespace."""

    ns_id: int
    fresh: list[Memory]
    analyses: list[TextAnalysis]


class Analyzer:
    """Reads texts for indexing. Safe to use from one thread while others read the indexes: it keeps
    only a stem cache, which holds no memory's content beyond single words and is forgotten on purge."""

    def __init__(self, tokenizer: Tokenizer | None = None):
        self.tokenizer = tokenizer or Tokenizer()

    def analyze(self, mems: Sequence[Memory]) -> list[TextAnalysis]:
        """Each memory's :class:`TextAnalysis`, in order."""
        return [self.analyze_one(mem) for mem in mems]

    def analyze_one(self, mem: Memory) -> TextAnalysis:
        # Relative expressions ("yesterday") resolve against when it was said, else when it was written.
        said = mem.event_time if mem.event_time is not None else mem.valid_from
        mentions = find_mentions(mem.text, said)
        hull = resolved_hull([m for m in mentions if m.kind == "point"]) if mentions else None
        talks_from, talks_to = hull if hull is not None else (_NAN, _NAN)
        return TextAnalysis(
            terms=self.tokenizer.terms(mem.text),
            speaker=speaker_of(mem.text),
            time_mentions=min(len(mentions), _MAX_MENTIONS),
            talks_from=talks_from,
            talks_to=talks_to,
            months=month_bits(mem.event_time, *(hull if hull is not None else (None, None))),
        )

    def forget(self, texts: Iterable[str]) -> None:
        """Drop purged texts' words from the stem cache."""
        for text in texts:
            self.tokenizer.forget(text)
