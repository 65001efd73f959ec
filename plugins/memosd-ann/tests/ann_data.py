"""Test data shaped like real embeddings (a plain module, not a conftest: its name must not collide across test roots)."""

from __future__ import annotations

import numpy as np


def subspace_vectors(n: int, dim: int = 256, subspace: int = 32, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """Unit float32 vectors near a fixed random low-dimensional subspace: shaped like real embeddings."""
    basis = np.random.default_rng(1234).standard_normal((subspace, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, subspace)).astype(np.float32) @ basis
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x += (noise / np.sqrt(dim)) * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)
