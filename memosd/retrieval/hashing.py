"""Offline feature-hashing encoder: stemmed unigrams and bigrams into fixed buckets.

A unigram hashes to ``crc32(term)``; a bigram (a, b) to ``mix(crc32(a), crc32(b))``
(a 64-bit multiply-xorshift, so bigrams are hashed in numpy without building
strings). Each distinct feature of a text adds ``(1 + ln tf) * type_weight``
to bucket ``hash % dim``; bigrams weigh ``bigram_weight``, unigrams 1.
Encodings use no corpus statistics, so exported vectors stay valid while an
index changes; IDF is applied by the index at query time.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter

import numpy as np

from .config import EncoderIdentity
from .term_batch import TermBatch

ENCODER_NAME = "memosd-hash"
# Bump whenever tokenisation, stopwords, hashing or weighting changes.
ENCODER_VERSION = "1"

_CACHE_LIMIT = 200_000
_GOLDEN = 0x9E3779B97F4A7C15
_MIXER = 0xBF58476D1CE4E5B9
_MASK64 = (1 << 64) - 1

SparseRows = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(row, bucket, weight) cells of unnormalised vectors, sorted by row then bucket."""


def mix(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Order-sensitive 64-bit combination of two uint64 hash arrays (wrapping arithmetic)."""
    h = left * np.uint64(_GOLDEN) + right
    h ^= h >> np.uint64(29)
    h *= np.uint64(_MIXER)
    h ^= h >> np.uint64(32)
    return h


def mix_one(left: int, right: int) -> int:
    """``mix`` for a single pair of Python ints (same result)."""
    h = (left * _GOLDEN + right) & _MASK64
    h ^= h >> 29
    h = (h * _MIXER) & _MASK64
    return h ^ (h >> 32)


class HashEncoder:
    """Maps batches of terms to hashed bag-of-n-gram vectors."""

    def __init__(self, dim: int, bigram_weight: float) -> None:
        self.dim = dim
        self.bigram_weight = bigram_weight
        self.identity = EncoderIdentity(ENCODER_NAME, f"{ENCODER_VERSION}-b{bigram_weight:g}", dim)
        self._crc: dict[str, int] = {}

    def _crc32(self, term: str) -> int:
        # crc32 is stable across processes, unlike the salted built-in hash().
        value = self._crc.get(term)
        if value is None:
            if len(self._crc) >= _CACHE_LIMIT:
                self._crc.clear()
            self._crc[term] = value = zlib.crc32(term.encode())
        return value

    def forget(self, terms: list[str]) -> None:
        """Drop ``terms`` from the hash cache (part of a hard purge)."""
        for term in terms:
            self._crc.pop(term, None)

    def query(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(buckets, weights) of one text's unnormalised vector, without numpy overhead.

        Equal to the single row of ``features(TermBatch([terms]))``.
        """
        hashes = {term: self._crc32(term) for term in terms}
        vector: dict[int, float] = {}
        for term, tf in Counter(terms).items():
            bucket = hashes[term] % self.dim
            vector[bucket] = vector.get(bucket, 0.0) + 1.0 + math.log(tf)
        if self.bigram_weight:
            for (left, right), tf in Counter(zip(terms, terms[1:])).items():
                bucket = mix_one(hashes[left], hashes[right]) % self.dim
                weight = self.bigram_weight * (1.0 + math.log(tf))
                vector[bucket] = vector.get(bucket, 0.0) + weight
        buckets = sorted(vector)
        return np.asarray(buckets, dtype=np.int64), np.asarray([vector[b] for b in buckets])

    def features(self, batch: TermBatch) -> SparseRows:
        """Unnormalised vectors of every row of ``batch``; rows without terms have no cells."""
        dim = np.uint64(self.dim)
        hashes = np.fromiter(map(self._crc32, batch.terms), np.uint64, len(batch.terms))
        rows, ids, tf = batch.term_counts()
        cells = [rows * self.dim + (hashes[ids] % dim).astype(np.int64)]
        weights = [1.0 + np.log(tf)]
        bigram_rows, left, right = batch.bigrams()
        if self.bigram_weight and len(bigram_rows):
            width = len(batch.terms)
            pairs, pair_ids = np.unique(left * width + right, return_inverse=True)
            keys, tf = np.unique(bigram_rows * len(pairs) + pair_ids, return_counts=True)
            pair = pairs[keys % len(pairs)]
            buckets = mix(hashes[pair // width], hashes[pair % width]) % dim
            cells.append(keys // len(pairs) * self.dim + buckets.astype(np.int64))
            weights.append(self.bigram_weight * (1.0 + np.log(tf)))
        unique, inverse = np.unique(np.concatenate(cells), return_inverse=True)
        summed = np.bincount(inverse, np.concatenate(weights), minlength=len(unique))
        return unique // self.dim, unique % self.dim, summed

    def dense(self, batch: TermBatch) -> np.ndarray:
        """L2-normalised float32 vectors (one per row; zero rows for rows without terms)."""
        out = np.zeros((len(batch.lengths), self.dim), dtype=np.float32)
        rows, buckets, weights = self.features(batch)
        norms = np.sqrt(np.bincount(rows, weights * weights, minlength=len(out)))
        out[rows, buckets] = weights / norms[rows]
        return out

    def cache_bytes(self) -> int:
        """Rough memory held by the term hash cache."""
        return len(self._crc) * 150
