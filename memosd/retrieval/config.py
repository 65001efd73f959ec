"""Tunables of the hybrid index and the identity of its built-in encoder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Retrieval parameters; defaults were chosen on LoCoMo (see bench/tune_retrieval.py)."""

    k1: float = 0.8
    """BM25 term-frequency saturation."""
    b: float = 0.2
    """BM25 document-length normalisation strength (turns are short; longer ones carry more)."""
    hash_dim: int = 4096
    """Number of buckets of the hash encoder."""
    bigram_weight: float = 1.0
    """Weight of a bigram feature relative to a unigram in the hash encoder."""
    hash_norm_exponent: float = 0.0
    """Hash-channel documents are divided by their L2 norm to this power (1 = cosine)."""
    bm25_weight: float = 1.0
    """Fusion weight of the BM25 channel (scores scaled to max 1); 0 disables it."""
    hash_weight: float = 0.5
    """Fusion weight of the hash channel (scores scaled to max 1); 0 disables it."""

    def __post_init__(self) -> None:
        if self.hash_dim <= 0:
            raise ValueError("hash_dim must be positive")
        if min(self.bm25_weight, self.hash_weight) < 0 or not self.bm25_weight + self.hash_weight:
            raise ValueError("channel weights must be non-negative and not all zero")


@dataclass(frozen=True, slots=True)
class EncoderIdentity:
    """Names the vector space produced by ``HybridIndex.encode``."""

    name: str
    version: str
    dim: int
