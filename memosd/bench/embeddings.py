"""Vectors shaped like text embeddings, and exact search over them, for the peer comparison.

Uniform random 384-d vectors are the worst case for graph indexes (their
neighbours are barely nearer than anyone else), so they understate what an
ANN store gets right on real embeddings. Real sentence embeddings concentrate
near a low-dimensional subspace; these do too: a point of a ``latent``-d
subspace plus isotropic noise, normalised to unit length. Queries are fresh
points of the same distribution, not copies of stored ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 8_192
"""Rows generated (and queries scored) at a time, to bound the temporary arrays."""


@dataclass(frozen=True)
class VectorSet:
    """Memories and queries as unit float32 rows, with each query's exact top-k memories."""

    memories: np.ndarray
    """(n, dim) float32, unit rows."""
    queries: np.ndarray
    """(q, dim) float32, unit rows."""
    truth: np.ndarray
    """(q, k) int64: indices into ``memories`` of each query's exact top k by inner product."""

    @property
    def dim(self) -> int:
        return int(self.memories.shape[1])


def embedding_like(count: int, dim: int, rng: np.random.Generator, basis: np.ndarray,
                   noise: float) -> np.ndarray:
    """``count`` unit rows: a random point of ``basis``'s span plus Gaussian noise of scale ``noise``."""
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        rows = rng.standard_normal((n, basis.shape[0])) @ basis + noise * rng.standard_normal((n, dim))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start:start + n] = rows
    return out


def exact_top_k(memories: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Each query's top ``k`` memory indices by inner product, best first (ties: lower index first)."""
    k = min(k, len(memories))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ memories.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        out[start:start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def make_vector_set(count: int, queries: int, dim: int = 384, k: int = 10, seed: int = 0,
                    latent: int = 32, noise: float = 0.1) -> VectorSet:
    """A reproducible set: the same ``seed`` gives the same vectors and queries on every machine.

    With ``noise`` 0.1 the noise carries about a tenth of each row's energy (384 * 0.01 against 32),
    enough that no two rows coincide and nearest neighbours are still well separated.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, latent)))  # orthonormal columns
    basis = basis.T  # (latent, dim)
    memories = embedding_like(count, dim, rng, basis, noise)
    asked = embedding_like(queries, dim, rng, basis, noise)
    return VectorSet(memories, asked, exact_top_k(memories, asked, k))


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact top-k| / k (``found[i]`` are memory indices, best first)."""
    if not found:
        return 0.0
    k = truth.shape[1]
    hits = sum(len(set(row[:k]) & set(truth[i].tolist())) for i, row in enumerate(found))
    return round(hits / (k * len(found)), 4)
