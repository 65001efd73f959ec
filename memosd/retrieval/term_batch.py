"""Columnar view of tokenised documents, so per-posting work runs in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np


class TermBatch:
    """Documents' terms as flat arrays of batch-local term ids.

    ``terms[i]`` is the term with local id ``i``; ``tokens``/``rows`` give every
    token's local id and document row in order.
    """

    __slots__ = ("terms", "tokens", "rows", "lengths", "_counts")

    def __init__(self, term_lists: Sequence[Sequence[str]]) -> None:
        flat = list(chain.from_iterable(term_lists))
        local = {term: i for i, term in enumerate(dict.fromkeys(flat))}
        self.terms = list(local)
        self.tokens = np.fromiter(map(local.__getitem__, flat), np.int64, len(flat))
        self.lengths = np.fromiter(map(len, term_lists), np.int64, len(term_lists))
        self.rows = np.repeat(np.arange(len(term_lists)), self.lengths)
        self._counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def term_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, local term id, tf) per distinct term of each row, sorted by row then id."""
        if self._counts is None:
            width = max(len(self.terms), 1)
            keys, tf = np.unique(self.rows * width + self.tokens, return_counts=True)
            self._counts = (keys // width, keys % width, tf)
        return self._counts

    def bigrams(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, left local id, right local id) of each adjacent token pair within a row."""
        same_row = self.rows[1:] == self.rows[:-1]
        return self.rows[1:][same_row], self.tokens[:-1][same_row], self.tokens[1:][same_row]
