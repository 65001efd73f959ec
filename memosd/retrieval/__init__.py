"""Per-namespace hybrid lexical retrieval: BM25 and hashed n-grams, scores fused."""

from .config import EncoderIdentity, RetrievalConfig
from .hybrid import Hit, HybridIndex

__all__ = ["EncoderIdentity", "Hit", "HybridIndex", "RetrievalConfig"]
