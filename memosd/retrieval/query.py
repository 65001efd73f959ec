"""A query text analysed once per recall and shared by every index it is scored against.

A recall scores one text against the lexical index, the coarse index and the fine vectors; each has
its own tokenizer and hash encoder, but with the same settings they produce the same terms and
vectors, so the work is done once.
"""

from __future__ import annotations

import numpy as np

from ..temporal import TimeIntent, time_intent
from .hashing import HashEncoder
from .tokenizer import Tokenizer


class AnalyzedQuery:
    """A query's text, its index terms, and its hashed vector per encoder setting (computed once each)."""

    __slots__ = ("text", "terms", "_hashed", "_time")

    def __init__(self, text: str, tokenizer: Tokenizer):
        self.text = text
        self.terms = tokenizer.terms(text)
        self._hashed: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = {}
        self._time: TimeIntent | None = None

    def time_intent(self) -> TimeIntent:
        """What the query asks about time (memosd.temporal), read on first use."""
        if self._time is None:
            self._time = time_intent(self.text)
        return self._time

    def hashed(self, encoder: HashEncoder) -> tuple[np.ndarray, np.ndarray]:
        """``encoder.query(self.terms)``, shared by every encoder with the same dimension and bigram weight."""
        key = (encoder.dim, encoder.bigram_weight)
        found = self._hashed.get(key)
        if found is None:
            found = self._hashed[key] = encoder.query(self.terms)
        return found


def terms_of(query: str | AnalyzedQuery, tokenizer: Tokenizer) -> list[str]:
    """The index terms of a query, tokenised here unless it was analysed already."""
    return query.terms if isinstance(query, AnalyzedQuery) else tokenizer.terms(query)


def hashed_of(query: str | AnalyzedQuery, terms: list[str], encoder: HashEncoder) -> tuple[np.ndarray, np.ndarray]:
    """``encoder``'s vector of a query whose ``terms`` the caller already has."""
    return query.hashed(encoder) if isinstance(query, AnalyzedQuery) else encoder.query(terms)
