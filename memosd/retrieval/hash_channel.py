"""Sparse inverted index over hash-encoder buckets with live per-bucket IDF.

Score(q, d) = sum_b q_b * idf_b^2 * d_b where q and d are the encoder's
normalised vectors: a tf-idf cosine whose document norm ignores IDF, which
keeps stored weights fixed while document frequencies drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .hashing import SparseVector
from .postings import PostingList


class HashChannel:
    """Per-bucket postings of (slot, normalised weight); a list's size is its bucket's df."""

    def __init__(self, dim: int) -> None:
        self.buckets: list[PostingList | None] = [None] * dim
        self.n_docs = 0

    def add_batch(self, docs: Iterable[tuple[int, SparseVector]]) -> None:
        """Index ``(slot, vector)`` pairs with one append per touched bucket."""
        slots: list[int] = []
        buckets: list[int] = []
        weights: list[float] = []
        for slot, (doc_buckets, doc_weights) in docs:
            self.n_docs += 1
            slots.extend([slot] * len(doc_buckets))
            buckets.extend(doc_buckets)
            weights.extend(doc_weights)
        if not buckets:
            return
        bucket_arr = np.asarray(buckets, dtype=np.int64)
        order = np.argsort(bucket_arr, kind="stable")
        bucket_arr = bucket_arr[order]
        slot_arr = np.asarray(slots, dtype=np.int32)[order]
        weight_arr = np.asarray(weights, dtype=np.float32)[order]
        starts = np.flatnonzero(np.r_[True, bucket_arr[1:] != bucket_arr[:-1]])
        ends = np.r_[starts[1:], len(bucket_arr)]
        for start, end in zip(starts.tolist(), ends.tolist()):
            bucket = int(bucket_arr[start])
            plist = self.buckets[bucket]
            if plist is None:
                self.buckets[bucket] = plist = PostingList(end - start)
            plist.extend(slot_arr[start:end], weight_arr[start:end])

    def remove(self, slot: int, buckets: list[int]) -> None:
        """Purge ``slot`` from the given buckets."""
        for bucket in buckets:
            plist = self.buckets[bucket]
            if plist is not None and plist.remove(slot) and plist.size == 0:
                self.buckets[bucket] = None
        self.n_docs -= 1

    def accumulate(self, vector: SparseVector, scores: np.ndarray) -> None:
        """Add sum_b q_b * idf_b^2 * d_b for every slot sharing a bucket with ``vector``."""
        n = self.n_docs
        for bucket, q in zip(*vector):
            plist = self.buckets[bucket]
            if plist is None:
                continue
            df = plist.size
            idf = math.log1p((n - df + 0.5) / (df + 0.5))
            slots, weights = plist.view()
            scores[slots] += np.float32(q * idf * idf) * weights

    def nbytes(self) -> int:
        lists = sum(p.nbytes() for p in self.buckets if p is not None)
        return lists + 8 * len(self.buckets)
