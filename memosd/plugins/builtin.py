"""memosd's built-in plugins, registered through memosd's own entry points.

- ``hash-dense`` (``memosd.encoders``): a fixed random projection of the
  built-in hashed n-gram features to 256 dimensions. Offline, deterministic,
  no downloads; weak as semantics go, but a real dense encoder for tests and a
  template for authors.
- ``numpy`` (``memosd.backends``): exact brute-force inner-product search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..retrieval import RetrievalConfig
from ..retrieval.hashing import HashEncoder
from ..retrieval.term_batch import TermBatch
from ..retrieval.tokenizer import Tokenizer

_PROJECTION_SEED = 20240611


class HashDenseEncoder:
    """Dense random projection of the hash encoder's features (dim 256)."""

    name = "hash-dense"
    version = "1"
    dim = 256

    def __init__(self) -> None:
        rng = np.random.default_rng(_PROJECTION_SEED)
        # Gaussian projection: inner products are preserved in expectation (Johnson-Lindenstrauss).
        config = RetrievalConfig()
        self._hash_dim, self._bigram_weight = config.hash_dim, config.bigram_weight
        self._projection = rng.standard_normal((config.hash_dim, self.dim), dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), 256), rows L2-normalised; texts without terms give zero rows."""
        # Fresh tokenizer and hasher per call: their word caches must not outlive a purged memory.
        tokenizer = Tokenizer()
        batch = TermBatch([tokenizer.terms(text) for text in texts])
        rows, buckets, weights = HashEncoder(self._hash_dim, self._bigram_weight).features(batch)
        # The features are sparse: project only the buckets present (a dense matmul would cost 4096 x 256 per row).
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, rows, self._projection[buckets] * weights[:, None].astype(np.float32))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


class NumpyBackend:
    """Exact inner-product search over a dense float32 matrix (swap-remove keeps it compact)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix = np.zeros((64, dim), dtype=np.float32)
        self._keys = np.zeros(64, dtype=np.int64)
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._row_of)

    @property
    def nbytes(self) -> int:
        return self._matrix.nbytes + self._keys.nbytes + 100 * len(self._row_of)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace rows."""
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32)
        for key, vector in zip(keys.tolist(), vectors):
            row = self._row_of.get(key)
            if row is None:
                row = len(self._row_of)
                if row == len(self._keys):
                    self._grow()
                self._row_of[key] = row
                self._keys[row] = key
            self._matrix[row] = vector

    def _grow(self) -> None:
        size = 2 * len(self._keys)
        matrix = np.zeros((size, self.dim), dtype=np.float32)
        matrix[: len(self._keys)] = self._matrix
        keys = np.zeros(size, dtype=np.int64)
        keys[: len(self._keys)] = self._keys
        self._matrix, self._keys = matrix, keys

    def remove(self, keys: np.ndarray) -> None:
        """Drop keys by moving the last row into the freed one."""
        for key in np.asarray(keys, dtype=np.int64).tolist():
            row = self._row_of.pop(key, None)
            if row is None:
                continue
            last = len(self._row_of)
            if row != last:
                moved = int(self._keys[last])
                self._matrix[row] = self._matrix[last]
                self._keys[row] = moved
                self._row_of[moved] = row

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` by inner product; ties by key ascending."""
        n = len(self._row_of)
        keys = self._keys[:n]
        scores = self._matrix[:n] @ np.asarray(vector, dtype=np.float32)
        if allowed is not None:
            ok = keys < len(allowed)
            ok[ok] = allowed[keys[ok]]
            keys, scores = keys[ok], scores[ok]
        if len(scores) > k:
            # Keep every score tied with the k-th so the key tie-break below is exact.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            keys, scores = keys[keep], scores[keep]
        order = np.lexsort((keys, -scores))[:k]
        return keys[order], scores[order]
