"""Tunables of the hybrid index and the identity of its built-in encoder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Retrieval parameters; defaults were chosen on LoCoMo (see bench/tune_retrieval.py)."""

    k1: float = 1.2
    """BM25 term-frequency saturation."""
    b: float = 0.75
    """BM25 document-length normalisation strength."""
    hash_dim: int = 4096
    """Number of buckets of the hash encoder."""
    bigram_weight: float = 1.0
    """Weight of a bigram feature relative to a unigram in the hash encoder."""
    rrf_k: float = 60.0
    """Reciprocal-rank-fusion damping constant."""
    candidate_depth: int = 100
    """Candidates each channel contributes to fusion (at least ``limit``)."""
    bm25_weight: float = 1.0
    """Fusion weight of the BM25 channel; 0 disables it."""
    hash_weight: float = 1.0
    """Fusion weight of the hash channel; 0 disables it."""

    def __post_init__(self) -> None:
        if self.hash_dim <= 0 or self.candidate_depth <= 0:
            raise ValueError("hash_dim and candidate_depth must be positive")
        if self.bm25_weight < 0 or self.hash_weight < 0:
            raise ValueError("channel weights must be non-negative")


@dataclass(frozen=True, slots=True)
class EncoderIdentity:
    """Names the vector space produced by ``HybridIndex.encode``."""

    name: str
    version: str
    dim: int
