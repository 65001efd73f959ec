"""Offline feature-hashing encoder: stemmed unigrams and bigrams into fixed buckets.

A text's vector holds, per bucket, the signed sum of ``(1 + ln tf) * type_weight``
over the features hashed there (bigrams weigh ``bigram_weight``), L2-normalised.
The vector is stateless (no corpus statistics), so exported vectors stay valid
while the index changes; IDF is applied by the index at query time instead.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .config import EncoderIdentity

ENCODER_NAME = "memosd-hash"
# Bump whenever tokenisation, stopwords, hashing or weighting changes.
ENCODER_VERSION = "1"

SparseVector = tuple[list[int], list[float]]


class HashEncoder:
    """Maps term sequences to sparse or dense L2-normalised hashed vectors."""

    def __init__(self, dim: int, bigram_weight: float) -> None:
        self.dim = dim
        self.bigram_weight = bigram_weight
        self.identity = EncoderIdentity(ENCODER_NAME, ENCODER_VERSION, dim)
        self._unigram_cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, feature: str) -> tuple[int, float]:
        # crc32 is stable across processes, unlike the salted built-in hash();
        # the top bit picks a sign so colliding features cancel in expectation.
        h = zlib.crc32(feature.encode())
        return h % self.dim, (-1.0 if h >> 31 else 1.0)

    def sparse(self, terms: Sequence[str]) -> SparseVector:
        """Return (buckets, weights) of the normalised vector; empty when no terms."""
        acc: dict[int, float] = {}
        cache = self._unigram_cache
        for term, tf in Counter(terms).items():
            hit = cache.get(term)
            if hit is None:
                if len(cache) >= 200_000:
                    cache.clear()
                cache[term] = hit = self._bucket(term)
            bucket, sign = hit
            acc[bucket] = acc.get(bucket, 0.0) + sign * (1.0 + math.log(tf))
        if self.bigram_weight:
            for (left, right), tf in Counter(zip(terms, terms[1:])).items():
                bucket, sign = self._bucket(f"{left} {right}")
                weight = sign * self.bigram_weight * (1.0 + math.log(tf))
                acc[bucket] = acc.get(bucket, 0.0) + weight
        norm = math.sqrt(sum(w * w for w in acc.values()))
        if norm == 0.0:
            return [], []
        return list(acc), [w / norm for w in acc.values()]

    def dense(self, term_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Stack the vectors of ``term_lists`` into a (n, dim) float32 matrix."""
        out = np.zeros((len(term_lists), self.dim), dtype=np.float32)
        for row, terms in enumerate(term_lists):
            buckets, weights = self.sparse(terms)
            out[row, buckets] = weights
        return out

    def cache_bytes(self) -> int:
        """Rough memory held by the unigram bucket cache."""
        return len(self._unigram_cache) * 200
