"""Sparse inverted index over hash-encoder buckets with live per-bucket IDF.

A document is stored as its bucket weights divided by ``norm ** norm_exponent``
(0 = raw weights, 1 = cosine); conversational turns are hurt by full length
normalisation, as with BM25's ``b``. A query vector q scores
sum_b q_b * idf_b * d_b: a tf-idf dot product whose IDF tracks the current
document frequencies while stored weights never change.
"""

from __future__ import annotations

import math

import numpy as np

from .hashing import SparseRows
from .postings import InvertedIndex
from .ranking import EMPTY_POSTINGS, Postings


class HashChannel:
    """Per-bucket postings of (slot, weight); a list's size is its bucket's df."""

    def __init__(self, norm_exponent: float) -> None:
        self.norm_exponent = norm_exponent
        self.index = InvertedIndex()
        self.n_docs = 0

    def add_batch(self, slots: np.ndarray, vectors: SparseRows) -> None:
        """Index the encoder's row vectors under ``slots`` (row i -> slots[i])."""
        self.n_docs += len(slots)
        rows, buckets, weights = vectors
        norms = np.sqrt(np.bincount(rows, weights * weights, minlength=len(slots)))
        stored = weights / norms[rows] ** self.norm_exponent
        self.index.add(buckets, slots[rows], stored.astype(np.float32))

    def add_one(self, slot: int, buckets: np.ndarray, weights: np.ndarray) -> None:
        """Index one document's vector without batch overhead."""
        self.n_docs += 1
        stored = weights / math.sqrt(float(weights @ weights)) ** self.norm_exponent
        self.index.add_one(slot, buckets.tolist(), stored.tolist())

    def remove_many(self, docs: list[tuple[int, np.ndarray]]) -> None:
        """Purge documents (slot, buckets) from the postings."""
        self.index.remove_many((slot, buckets.tolist()) for slot, buckets in docs)
        self.n_docs -= len(docs)

    def contributions(self, buckets: np.ndarray, weights: np.ndarray) -> Postings:
        """(slots, q_b * idf_b * d_b) of every posting of the query vector's buckets."""
        n = self.n_docs
        lists, factors = [], []
        for bucket, q in zip(buckets.tolist(), weights.tolist()):
            plist = self.index.get(bucket)
            if plist is not None:
                lists.append(plist)
                factors.append(q * math.log1p((n - plist.size + 0.5) / (plist.size + 0.5)))
        if not lists:
            return EMPTY_POSTINGS
        slots = np.concatenate([p.view()[0] for p in lists])
        stored = np.concatenate([p.view()[1] for p in lists])
        stored *= np.repeat(np.asarray(factors, np.float32), [p.size for p in lists])
        return slots, stored

    def nbytes(self) -> int:
        return self.index.nbytes()
