"""Fine structures: the hashed n-gram vectors of turns, kept per page so pages can leave RAM.

A turn's vector is the hash encoder's (bucket, weight) cells divided by
``norm ** norm_exponent`` (the flat index's hash channel stores exactly the
same numbers). A query scores sum_b q_b * idf_b * d_b, with IDF from document
frequencies over *all* turns of the namespace (resident or not), so a page's
scores do not depend on what else happens to be in RAM: evicting pages never
changes an answer, it only makes the next query that needs them fault them in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..retrieval.hashing import HashEncoder
from ..retrieval.query import AnalyzedQuery, hashed_of, terms_of
from ..retrieval.term_batch import TermBatch
from ..retrieval.tokenizer import Tokenizer

_BLOCK_OVERHEAD = 3 * 112 + 64
"""Bytes of Python and numpy headers per block, counted so many tiny blocks are not undercounted."""

Row = tuple[np.ndarray, np.ndarray]
"""One turn's (buckets int32, stored weights float32)."""

_SCATTER_BATCH = 16
"""Past this many rows, document frequencies are updated in one scatter-add (a loop below it)."""

_SMALL_BATCH = 16
"""Up to this many texts are featurised one by one: numpy's per-call costs outweigh batching below it."""


@dataclass(frozen=True, slots=True)
class FineBlock:
    """The vectors of one unit's turns as flat cells: cell i belongs to slot ``slots[i]``."""

    slots: np.ndarray
    buckets: np.ndarray
    weights: np.ndarray

    @staticmethod
    def of(slots: Sequence[int], rows: Sequence[Row]) -> "FineBlock":
        if not rows:
            empty = np.zeros(0, dtype=np.int32)
            return FineBlock(empty, empty, np.zeros(0, dtype=np.float32))
        return FineBlock(
            np.repeat(np.asarray(slots, dtype=np.int32), [len(b) for b, _ in rows]),
            np.concatenate([b for b, _ in rows]),
            np.concatenate([w for _, w in rows]),
        )

    @property
    def nbytes(self) -> int:
        return self.slots.nbytes + self.buckets.nbytes + self.weights.nbytes + _BLOCK_OVERHEAD

    @staticmethod
    def nbytes_of(rows: Sequence[Row]) -> int:
        """``FineBlock.of(slots, rows).nbytes``, without building it (int32 slot and bucket, float32 weight)."""
        return 12 * sum(len(buckets) for buckets, _ in rows) + _BLOCK_OVERHEAD


class Featurizer:
    """Text -> stored hash-channel rows, with the same tokenizer and encoder as the flat index."""

    def __init__(self, hash_dim: int, bigram_weight: float, norm_exponent: float):
        self.tokenizer = Tokenizer()
        self.encoder = HashEncoder(hash_dim, bigram_weight)
        self.dim = hash_dim
        self.norm_exponent = norm_exponent

    def rows(self, texts: Sequence[str], terms: Sequence[list[str]] | None = None) -> list[Row]:
        """Stored rows of ``texts`` (a text without terms gets an empty row); ``terms``: their
        tokens when the caller has them already."""
        if not texts:
            return []
        terms = list(terms) if terms is not None else [self.tokenizer.terms(t) for t in texts]
        if len(terms) <= _SMALL_BATCH:
            return [self._row(doc_terms) for doc_terms in terms]
        batch = TermBatch(terms)
        rows, buckets, weights = self.encoder.features(batch)
        norms = np.sqrt(np.bincount(rows, weights * weights, minlength=len(texts)))
        stored = (weights / np.where(norms[rows] > 0, norms[rows], 1.0) ** self.norm_exponent).astype(np.float32)
        bounds = np.searchsorted(rows, np.arange(len(texts) + 1))
        buckets = buckets.astype(np.int32)
        return [(buckets[a:b], stored[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def _row(self, terms: list[str]) -> Row:
        """One text's row without batch overhead; the same numbers as a batch gives it (the norm is
        summed in the same order, as bincount does)."""
        buckets, weights = self.encoder.query(terms)
        norm = math.sqrt(sum(w * w for w in weights.tolist()))
        scale = norm ** self.norm_exponent if norm > 0 else 1.0
        return buckets.astype(np.int32), (weights / scale).astype(np.float32)

    def query(self, text: str | AnalyzedQuery) -> tuple[np.ndarray, np.ndarray]:
        """(buckets, weights) of a query, unnormalised (as the flat hash channel queries)."""
        return hashed_of(text, terms_of(text, self.tokenizer), self.encoder)

    def forget(self, texts: Iterable[str]) -> None:
        """Drop purged texts' words from the caches."""
        for text in texts:
            terms = self.tokenizer.terms(text)
            self.tokenizer.forget(text)
            self.encoder.forget(terms)


class DocumentFrequencies:
    """Per-bucket document counts over every turn of a namespace, for the IDF of fine scores."""

    def __init__(self, dim: int):
        self.df = np.zeros(dim, dtype=np.int64)
        self.n_docs = 0

    def add(self, rows: Sequence[Row], sign: int = 1) -> None:
        if len(rows) > _SCATTER_BATCH:  # a row's buckets are distinct, so a batch is one scatter-add
            np.add.at(self.df, np.concatenate([buckets for buckets, _ in rows]), sign)
            self.n_docs += sign * len(rows)
            return
        for buckets, _ in rows:
            self.df[buckets] += sign
            self.n_docs += sign

    def query_vector(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense q_b * idf_b over all buckets (zero where the query has no weight)."""
        out = np.zeros(len(self.df), dtype=np.float32)
        if len(buckets):
            df = self.df[buckets].astype(np.float64)
            idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))
            # A bucket no resident or evicted turn has contributes nothing either way.
            out[buckets] = (weights * np.where(df > 0, idf, 0.0)).astype(np.float32)
        return out

    @property
    def nbytes(self) -> int:
        return self.df.nbytes


@dataclass(frozen=True, slots=True)
class BucketIndex:
    """A block's cells grouped by bucket, so that a query (a few dozen buckets) is scored by touching
    only the cells of its buckets instead of every cell (kept for the short-term block, which every
    query scores and which only changes when a ring does)."""

    order: np.ndarray
    """Cell positions sorted by bucket (stably)."""
    starts: np.ndarray
    """The cells of bucket b are ``order[starts[b]:starts[b + 1]]``."""

    @staticmethod
    def of(block: FineBlock, dim: int) -> "BucketIndex":
        # Order within a bucket does not matter (add_indexed sorts the cells it takes); 16-bit keys let
        # numpy use a radix sort, several times faster than sorting the int32 buckets.
        keys = block.buckets.astype(np.uint16) if dim <= 1 << 16 else block.buckets
        order = np.argsort(keys, kind="stable")
        return BucketIndex(order, np.searchsorted(block.buckets[order], np.arange(dim + 1)))

    @property
    def nbytes(self) -> int:
        return self.order.nbytes + self.starts.nbytes


def add_indexed(scores: np.ndarray, block: FineBlock, index: BucketIndex, qvec: np.ndarray) -> None:
    """Add q·d per slot of ``block`` to ``scores``: the same sums, in the same order, as score_blocks
    (cells whose bucket the query lacks add exactly zero there)."""
    buckets = np.flatnonzero(qvec)
    lo, hi = index.starts[buckets], index.starts[buckets + 1]
    counts = hi - lo
    total = int(counts.sum())
    if not total:
        return
    offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)
    cells = np.sort(index.order[offsets])  # each slot's cells in their stored order, as score_blocks adds them
    np.add.at(scores, block.slots[cells], qvec[block.buckets[cells]] * block.weights[cells])


def score_blocks(blocks: Iterable[FineBlock], qvec: np.ndarray, size: int) -> np.ndarray:
    """Sum of q·d per slot over the given blocks, as a float32 array of ``size`` slots."""
    scores = np.zeros(size, dtype=np.float32)
    blocks = [b for b in blocks if len(b.slots)]
    if blocks:
        slots = np.concatenate([b.slots for b in blocks])
        buckets = np.concatenate([b.buckets for b in blocks])
        weights = np.concatenate([b.weights for b in blocks])
        np.add.at(scores, slots, qvec[buckets] * weights)
    return scores


def row_nbytes(row: Row) -> int:
    return row[0].nbytes + row[1].nbytes + 2 * 112


__all__ = ["BucketIndex", "DocumentFrequencies", "Featurizer", "FineBlock", "Row", "add_indexed", "row_nbytes",
           "score_blocks"]
