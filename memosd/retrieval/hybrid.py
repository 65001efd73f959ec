"""HybridIndex: incremental BM25 + hashed n-gram index fused by reciprocal rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bm25 import BM25Channel
from .config import EncoderIdentity, RetrievalConfig
from .fusion import reciprocal_rank_fusion, top_slots
from .hash_channel import HashChannel
from .hashing import HashEncoder
from .postings import grown
from .tokenizer import Tokenizer


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result."""

    slot: int
    score: float
    """Fused score for ``search``, raw similarity for ``search_vector``; higher is better."""
    channels: tuple[str, ...]
    """Channels that ranked this slot among their candidates, e.g. ("bm25", "hash")."""


class HybridIndex:
    """Per-namespace lexical index over documents identified by integer slots.

    Not thread-safe: the owner serialises calls. Documents are searchable as
    soon as ``add`` returns and fully purged by ``remove``.
    """

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        self.config = config or RetrievalConfig()
        self._tokenizer = Tokenizer()
        self._encoder = HashEncoder(self.config.hash_dim, self.config.bigram_weight)
        self._bm25 = BM25Channel(self.config.k1, self.config.b)
        self._hash = HashChannel(self.config.hash_dim)
        self._live = np.zeros(1024, dtype=bool)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def encoder_identity(self) -> EncoderIdentity:
        """Identity of the vector space of ``encode`` and ``search_vector``."""
        return self._encoder.identity

    def add(self, slot: int, text: str) -> None:
        """Index one document; raises ValueError if ``slot`` is negative or already indexed."""
        self.add_many([slot], [text])

    def add_many(self, slots: Sequence[int], texts: Sequence[str]) -> None:
        """Index several documents at once (much faster than repeated ``add``)."""
        if len(slots) != len(texts):
            raise ValueError("slots and texts differ in length")
        slots = [int(slot) for slot in slots]
        if not slots:
            return
        if min(slots) < 0 or len(set(slots)) != len(slots):
            raise ValueError("slots must be distinct non-negative integers")
        self._live = grown(self._live, max(slots) + 1)
        if self._live[slots].any():
            raise ValueError("slot already indexed")
        term_lists = [self._tokenizer.terms(text) for text in texts]
        self._bm25.add_batch(zip(slots, term_lists))
        self._hash.add_batch((s, self._encoder.sparse(t)) for s, t in zip(slots, term_lists))
        self._live[slots] = True
        self._count += len(slots)

    def remove(self, slot: int, text: str) -> None:
        """Purge a document from every structure; ``text`` must be the text it was added with.

        Raises KeyError if ``slot`` is not indexed.
        """
        if not 0 <= slot < len(self._live) or not self._live[slot]:
            raise KeyError(slot)
        terms = self._tokenizer.terms(text)
        self._bm25.remove(slot, terms)
        self._hash.remove(slot, self._encoder.sparse(terms)[0])
        self._live[slot] = False
        self._count -= 1

    def search(self, query: str, limit: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """Top ``limit`` documents for ``query`` by weighted RRF of the enabled channels.

        ``allowed`` is an optional bool mask indexed by slot; slots past its end
        are excluded. Equal scores are ordered by slot ascending.
        """
        masks = self._masks(allowed)
        terms = self._tokenizer.terms(query)
        if limit <= 0 or not terms or not self._count:
            return []
        config = self.config
        depth = max(config.candidate_depth, limit)
        rankings = []
        if config.bm25_weight:
            scores = np.zeros(len(self._live), dtype=np.float32)
            self._bm25.accumulate(terms, scores)
            rankings.append(("bm25", config.bm25_weight, top_slots(scores, depth, masks)[0]))
        if config.hash_weight:
            scores = np.zeros(len(self._live), dtype=np.float32)
            self._hash.accumulate(self._encoder.sparse(terms), scores)
            rankings.append(("hash", config.hash_weight, top_slots(scores, depth, masks)[0]))
        fused = reciprocal_rank_fusion(rankings, config.rrf_k, limit)
        return [Hit(slot, score, channels) for slot, score, channels in fused]

    def search_vector(
        self, vector: np.ndarray, limit: int, allowed: np.ndarray | None = None
    ) -> list[Hit]:
        """Top ``limit`` documents on the hash channel for a vector in ``encode``'s space.

        Scores are the channel's raw similarity; ranking matches ``search``'s
        hash channel for ``encode([query])[0]``.
        """
        masks = self._masks(allowed)
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.config.hash_dim,):
            raise ValueError(f"vector must have shape ({self.config.hash_dim},)")
        if limit <= 0 or not self._count:
            return []
        buckets = np.flatnonzero(vector)
        scores = np.zeros(len(self._live), dtype=np.float32)
        self._hash.accumulate((buckets.tolist(), vector[buckets].tolist()), scores)
        slots, values = top_slots(scores, limit, masks)
        return [Hit(s, v, ("hash",)) for s, v in zip(slots.tolist(), values.tolist())]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense L2-normalised float32 vectors (len(texts), hash_dim); all-zero for texts without terms."""
        return self._encoder.dense([self._tokenizer.terms(text) for text in texts])

    def resident_bytes(self) -> int:
        """Approximate RAM held by the index structures and caches."""
        return (
            self._bm25.nbytes()
            + self._hash.nbytes()
            + self._live.nbytes
            + self._tokenizer.cache_bytes()
            + self._encoder.cache_bytes()
        )

    def _masks(self, allowed: np.ndarray | None) -> list[np.ndarray]:
        if allowed is None:
            return [self._live]
        allowed = np.asarray(allowed)
        if allowed.dtype != np.bool_ or allowed.ndim != 1:
            raise TypeError("allowed must be a 1-D bool array")
        return [self._live, allowed]
