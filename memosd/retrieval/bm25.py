"""BM25 channel computed at query time, so N and avgdl stay exact under add/remove."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .postings import InvertedIndex, grown
from .ranking import EMPTY_POSTINGS, Postings
from .term_batch import TermBatch
from .vocabulary import Vocabulary


class BM25Channel:
    """Inverted index of term -> (slot, tf) with per-slot document lengths."""

    def __init__(self, k1: float, b: float) -> None:
        self.k1 = k1
        self.b = b
        self.vocabulary = Vocabulary()
        self.index = InvertedIndex()
        self.doc_len = np.zeros(1024, dtype=np.float32)
        self.n_docs = 0
        self.total_len = 0

    def add_batch(self, slots: np.ndarray, batch: TermBatch) -> None:
        """Index the rows of ``batch`` under ``slots``."""
        self.doc_len = grown(self.doc_len, int(slots.max()) + 1)
        self.doc_len[slots] = batch.lengths
        self.total_len += int(batch.lengths.sum())
        self.n_docs += len(slots)
        rows, ids, tf = batch.term_counts()
        term_ids = np.asarray(self.vocabulary.assign(batch.terms), dtype=np.int64)
        self.index.add(term_ids[ids], slots[rows], tf.astype(np.float32))

    def add_one(self, slot: int, terms: list[str]) -> None:
        """Index one document without batch overhead."""
        self.doc_len = grown(self.doc_len, slot + 1)
        self.doc_len[slot] = len(terms)
        self.total_len += len(terms)
        self.n_docs += 1
        counts = Counter(terms)
        self.index.add_one(slot, self.vocabulary.assign(counts), list(counts.values()))

    def remove_many(self, docs: list[tuple[int, list[str]]]) -> None:
        """Purge documents (slot, terms) from the postings, the vocabulary and the length statistics."""
        lookup = self.vocabulary.get
        emptied = self.index.remove_many(
            (slot, [i for i in map(lookup, set(terms)) if i is not None]) for slot, terms in docs)
        self.vocabulary.release(emptied)
        for slot, _ in docs:
            self.n_docs -= 1
            self.total_len -= int(self.doc_len[slot])
            self.doc_len[slot] = 0.0

    def contributions(self, terms: list[str]) -> Postings:
        """(slots, BM25 weights) of every posting of the query ``terms``."""
        k1, b, n = self.k1, self.b, self.n_docs
        lists, factors = [], []
        for term, qtf in Counter(terms).items():
            term_id = self.vocabulary.get(term)
            plist = None if term_id is None else self.index.get(term_id)
            if plist is not None:
                idf = math.log1p((n - plist.size + 0.5) / (plist.size + 0.5))
                lists.append(plist)
                factors.append(qtf * idf * (k1 + 1.0))
        if not lists:
            return EMPTY_POSTINGS
        slots = np.concatenate([p.view()[0] for p in lists])
        tfs = np.concatenate([p.view()[1] for p in lists])
        # tf * (k1 + 1) * idf / (tf + k1 * (1 - b + b * dl / avgdl)), in place.
        weights = np.take(self.doc_len, slots)
        weights *= np.float32(k1 * b * n / max(self.total_len, 1))
        weights += np.float32(k1 * (1.0 - b))
        weights += tfs
        np.divide(tfs, weights, out=weights)
        weights *= np.repeat(np.asarray(factors, np.float32), [p.size for p in lists])
        return slots, weights

    def nbytes(self) -> int:
        return self.index.nbytes() + self.vocabulary.nbytes() + self.doc_len.nbytes
