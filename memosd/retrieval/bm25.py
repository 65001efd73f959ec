"""BM25 channel computed at query time, so N and avgdl stay exact under add/remove."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .postings import PostingList, grown


class BM25Channel:
    """Inverted index of term -> (slot, tf) with per-slot document lengths."""

    def __init__(self, k1: float, b: float) -> None:
        self.k1 = k1
        self.b = b
        self.postings: dict[str, PostingList] = {}
        self.doc_len = np.zeros(1024, dtype=np.float32)
        self.n_docs = 0
        self.total_len = 0

    def add_batch(self, docs: Iterable[tuple[int, list[str]]]) -> None:
        """Index ``(slot, terms)`` pairs, appending each term's postings in one go."""
        pending: dict[str, tuple[list[int], list[int]]] = {}
        for slot, terms in docs:
            self.doc_len = grown(self.doc_len, slot + 1)
            self.doc_len[slot] = len(terms)
            self.n_docs += 1
            self.total_len += len(terms)
            for term, tf in Counter(terms).items():
                entry = pending.get(term)
                if entry is None:
                    pending[term] = entry = ([], [])
                entry[0].append(slot)
                entry[1].append(tf)
        for term, (slots, tfs) in pending.items():
            plist = self.postings.get(term)
            if plist is None:
                self.postings[term] = plist = PostingList(len(slots))
            plist.extend(np.asarray(slots, np.int32), np.asarray(tfs, np.float32))

    def remove(self, slot: int, terms: list[str]) -> None:
        """Purge ``slot`` from the postings of ``terms`` and from the length stats."""
        for term in set(terms):
            plist = self.postings.get(term)
            if plist is not None and plist.remove(slot) and plist.size == 0:
                del self.postings[term]
        self.n_docs -= 1
        self.total_len -= int(self.doc_len[slot])
        self.doc_len[slot] = 0.0

    def accumulate(self, terms: list[str], scores: np.ndarray) -> None:
        """Add the BM25 score of every matching slot into ``scores``."""
        if not self.n_docs:
            return
        k1, b, n = self.k1, self.b, self.n_docs
        avgdl = max(self.total_len / n, 1.0)
        for term, qtf in Counter(terms).items():
            plist = self.postings.get(term)
            if plist is None:
                continue
            slots, tfs = plist.view()
            idf = math.log1p((n - plist.size + 0.5) / (plist.size + 0.5))
            norm = (k1 * (1.0 - b) + (k1 * b / avgdl) * self.doc_len[slots]) + tfs
            # Slots are unique within a posting list, so fancy += is exact.
            scores[slots] += np.float32(qtf * idf * (k1 + 1.0)) * tfs / norm

    def nbytes(self) -> int:
        lists = sum(p.nbytes() for p in self.postings.values())
        return lists + self.doc_len.nbytes + 100 * len(self.postings)
