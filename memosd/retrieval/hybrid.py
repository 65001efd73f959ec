"""HybridIndex: incremental BM25 + hashed n-gram index with score fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bm25 import BM25Channel
from .config import EncoderIdentity, RetrievalConfig
from .hash_channel import HashChannel
from .hashing import HashEncoder
from .postings import grown
from .query import AnalyzedQuery, hashed_of, terms_of
from .ranking import Postings, padded_size, restrict, sum_scores, top_fused
from .term_batch import TermBatch
from .tokenizer import Tokenizer

# Below this many documents, per-document Python beats the columnar path's
# fixed numpy overhead; above, documents go in chunks to bound temporaries.
_SMALL_BATCH = 16
_CHUNK = 16384
# Postings store slots as int32.
_MAX_SLOT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result."""

    slot: int
    score: float
    """Fused score for ``search``, raw similarity for ``search_vector``; higher is better."""
    channels: tuple[str, ...]
    """Channels in which the document matched the query, e.g. ("bm25", "hash")."""


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
        self._hash = HashChannel(self.config.hash_norm_exponent)
        self._live = np.zeros(1024, dtype=bool)
        self._count = 0
        self._with_hash = bool(self.config.hash_weight)
        """A zero hash weight skips the hash channel's postings entirely (the memory tiers keep
        hashed vectors per page instead, under the residency budget)."""

    def __len__(self) -> int:
        return self._count

    @property
    def encoder_identity(self) -> EncoderIdentity:
        """Identity of the vector space of ``encode`` and ``search_vector``."""
        return self._encoder.identity

    def add(self, slot: int, text: str) -> None:
        """Index one document; raises ValueError if ``slot`` is out of range or already indexed."""
        self.add_many([slot], [text])

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer that makes this index's terms (and memoises stems)."""
        return self._tokenizer

    def terms(self, text: str) -> list[str]:
        """The index terms of ``text`` (what ``add_many`` indexes it by)."""
        return self._tokenizer.terms(text)

    def add_many(self, slots: Sequence[int], texts: Sequence[str],
                 terms: Sequence[list[str]] | None = None) -> None:
        """Index several documents at once (much faster per document than ``add``).

        ``terms``, when given, are ``terms(text)`` of each text, already computed by the caller."""
        if len(slots) != len(texts):
            raise ValueError("slots and texts differ in length")
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("texts must be str")
        slots = [int(slot) for slot in slots]
        if not slots:
            return
        if min(slots) < 0 or max(slots) > _MAX_SLOT or len(set(slots)) != len(slots):
            raise ValueError(f"slots must be distinct integers in [0, {_MAX_SLOT}]")
        self._live = grown(self._live, max(slots) + 1)
        if self._live[slots].any():
            raise ValueError("slot already indexed")
        if terms is None:
            terms = [self._tokenizer.terms(text) for text in texts]
        if len(slots) <= _SMALL_BATCH:
            for slot, doc_terms in zip(slots, terms):
                self._bm25.add_one(slot, doc_terms)
                if self._with_hash:
                    self._hash.add_one(slot, *self._encoder.query(doc_terms))
        else:
            for start in range(0, len(slots), _CHUNK):
                chunk = slice(start, start + _CHUNK)
                batch = TermBatch(list(terms[chunk]))
                slot_array = np.asarray(slots[chunk], dtype=np.int64)
                self._bm25.add_batch(slot_array, batch)
                if self._with_hash:
                    self._hash.add_batch(slot_array, self._encoder.features(batch))
        self._live[slots] = True
        self._count += len(slots)

    def remove(self, slot: int, text: str) -> None:
        """Purge a document from every structure; raises KeyError if ``slot`` is not indexed.

        ``text`` should be the indexed text (its terms locate the postings); if
        it differs, the index falls back to sweeping every posting list.
        """
        self.remove_many([slot], [text])

    def remove_many(self, slots: Sequence[int], texts: Sequence[str]) -> None:
        """Purge several documents, touching each posting list once (a purge of thousands of
        memories costs about one pass over the postings, not one per memory)."""
        for slot in slots:
            if not 0 <= slot < len(self._live) or not self._live[slot]:
                raise KeyError(slot)
        if len(set(slots)) != len(slots):
            raise ValueError("duplicate slots")
        term_lists = [self._tokenizer.terms(text) for text in texts]
        self._bm25.remove_many(list(zip(slots, term_lists)))
        if self._with_hash:
            self._hash.remove_many([(slot, self._encoder.query(terms)[0]) for slot, terms in zip(slots, term_lists)])
        for slot, text, terms in zip(slots, texts, term_lists):
            # Caches would otherwise keep the purged document's words.
            self._tokenizer.forget(text)
            self._encoder.forget(terms)
            self._live[slot] = False
        self._count -= len(slots)

    def search(self, query: str | AnalyzedQuery, limit: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """Top ``limit`` documents for ``query``.

        Each enabled channel's scores are scaled to a maximum of 1 over the
        allowed documents, weighted and summed. ``allowed`` is an optional bool
        mask indexed by slot; slots past its end are excluded. Equal scores
        are ordered by slot ascending.
        """
        allowed = _checked_mask(allowed)
        terms = terms_of(query, self._tokenizer)
        if limit <= 0 or not terms or not self._count:
            return []
        config = self.config
        channels = []
        if config.bm25_weight:
            postings = self._bm25.contributions(terms)
            channels.append(("bm25", config.bm25_weight, self._scores(postings, allowed)))
        if config.hash_weight:
            postings = self._hash.contributions(*hashed_of(query, terms, self._encoder))
            channels.append(("hash", config.hash_weight, self._scores(postings, allowed)))
        slots, values = top_fused([(weight, scores) for _, weight, scores in channels], limit)
        return [
            Hit(slot, value, tuple(name for name, _, scores in channels if scores[slot] > 0))
            for slot, value in zip(slots.tolist(), values.tolist())
        ]

    def analyze(self, text: str) -> AnalyzedQuery:
        """``text`` tokenised once, to be scored against this and other indexes (see query.py)."""
        return AnalyzedQuery(text, self._tokenizer)

    def fused_scores(self, query: str | AnalyzedQuery, hash_weight: float | None = None) -> np.ndarray:
        """Every slot's fused score for ``query`` as ``search`` ranks them (each channel scaled to
        a maximum of 1, then weighted and summed); padded past the highest slot. ``hash_weight``:
        the hashed channel's weight for this query instead of the configured one (0: BM25 alone)."""
        terms = terms_of(query, self._tokenizer)
        total = np.zeros(padded_size(len(self._live)), dtype=np.float32)
        if not terms or not self._count:
            return total
        hash_weight = self.config.hash_weight if hash_weight is None else hash_weight
        channels = [(self.config.bm25_weight, self._bm25.contributions(terms))]
        if self._with_hash and hash_weight:
            hashed = hashed_of(query, terms, self._encoder)
            channels.append((hash_weight, self._hash.contributions(*hashed)))
        for weight, postings in channels:
            scores = self._scores(postings, None)
            top = scores.max()
            if weight and top > 0:
                total += (weight / top) * scores
        return total

    def bm25_scores(self, query: str | AnalyzedQuery, allowed: np.ndarray | None = None) -> np.ndarray:
        """Raw BM25 score of every slot for ``query`` (float32, zero where disallowed or unmatched).

        The array is padded past the highest slot (see ranking.padded_size).
        """
        allowed = _checked_mask(allowed)
        terms = terms_of(query, self._tokenizer)
        if not terms or not self._count:
            return np.zeros(padded_size(len(self._live)), dtype=np.float32)
        return self._scores(self._bm25.contributions(terms), allowed)

    def search_vector(
        self, vector: np.ndarray, limit: int, allowed: np.ndarray | None = None
    ) -> list[Hit]:
        """Top ``limit`` documents on the hash channel for a vector in ``encode``'s space.

        Scores are the channel's raw similarity; for ``encode([query])[0]`` the
        ranking equals that of ``search``'s hash channel.
        """
        allowed = _checked_mask(allowed)
        if not self._with_hash:
            raise ValueError("this index has no hash channel (hash_weight = 0)")
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.config.hash_dim,):
            raise ValueError(f"vector must have shape ({self.config.hash_dim},)")
        if limit <= 0 or not self._count:
            return []
        buckets = np.flatnonzero(vector)
        postings = self._hash.contributions(buckets, vector[buckets])
        slots, values = top_fused([(1.0, self._scores(postings, allowed))], limit, normalise=False)
        return [Hit(s, v, ("hash",)) for s, v in zip(slots.tolist(), values.tolist())]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense L2-normalised float32 vectors, shape (len(texts), hash_dim).

        Texts without index terms (empty, stopwords only) get all-zero rows.
        """
        return self._encoder.dense(TermBatch([self._tokenizer.terms(text) for text in texts]))

    def trim(self) -> None:
        """Give back the spare capacity of the posting lists (after a bulk load: see InvertedIndex.trim)."""
        self._bm25.index.trim()
        if self._with_hash:
            self._hash.index.trim()

    def resident_bytes(self) -> int:
        """Approximate RAM held by the index structures and caches."""
        return (
            self._bm25.nbytes()
            + self._hash.nbytes()
            + self._live.nbytes
            + self._tokenizer.cache_bytes()
            + self._encoder.cache_bytes()
        )

    def _scores(self, postings: Postings, allowed: np.ndarray | None) -> np.ndarray:
        # Postings hold live slots only (remove purges them), so no live mask is needed.
        scores = sum_scores(postings, padded_size(len(self._live)))
        if allowed is not None:
            restrict(scores, allowed)
        return scores


def _checked_mask(allowed: np.ndarray | None) -> np.ndarray | None:
    if allowed is None:
        return None
    allowed = np.asarray(allowed)
    if allowed.dtype != np.bool_ or allowed.ndim != 1:
        raise TypeError("allowed must be a 1-D bool array")
    return allowed
