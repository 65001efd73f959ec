"""The semantic lookaside buffer: recent recalls, keyed by their query vector, reused when a new query
is close enough — without ever returning an answer the store would not give now.

Two levels: one per (namespace, session filter) of ``session_entries`` entries and one per namespace
of ``shared_entries``, both replaced least recently used. A query hits when its hashed n-gram vector
(the same space as recall by vector) has cosine >= ``threshold`` with an entry of the same namespace
and the same filters, k, as_of and include_forgotten.

What an entry keeps is the *candidate set* of the recall that made it: the pages and rings the
two-stage search looked at, with their coarse scores. A hit re-runs the fine stage over those
pages, every page formed since and every short-term ring as it is now (so anything written since
is scored), under the current filters mask (so anything forgotten or purged since is excluded). It
skips the coarse stage, the knowledge lookup and candidate selection.

Invalidation: a namespace's generation counter is bumped by every update, forget, unforget and purge;
an entry made at an older generation is dropped on lookup. New writes need no invalidation (they are
in short-term memory, which a hit always re-scores). Eviction and faults need none either: an answer
never depends on what is resident (docs/tiers.md).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..tiers.search import Candidates
from ..tiers.state import TierState

Signature = tuple
"""What must be equal besides the query for an entry to apply: (filters, k, as_of, include_forgotten)."""


@dataclass(slots=True)
class Entry:
    """One cached recall: its query vector and the candidate units with their coarse scores."""

    buckets: np.ndarray
    weights: np.ndarray
    """The query's hashed n-gram vector, L2-normalised (sparse)."""
    signature: Signature
    generation: int
    pages: np.ndarray
    """Candidate pages of the recall that made the entry."""
    page_scores: np.ndarray
    """Their coarse scores, scaled to the maximum over all units at the time."""
    rings: np.ndarray
    """The rings (units < 0) then, and their coarse scores: ``ring_scores``."""
    ring_scores: np.ndarray
    next_page: int = 0
    """The namespace's next page id then: pages from this id on were formed later and are re-scored too."""
    uses: int = 0

    def candidates(self, tiers: TierState) -> Candidates:
        """The entry's candidates as of now: its pages and every page formed since (coarse score 0), and
        every ring there is now (with its score then if it was a ring then, else 0)."""
        formed = [p for p in range(self.next_page, tiers.next_page_id) if p in tiers.pages]
        pages = np.union1d(self.pages, np.asarray(formed, dtype=np.int64))
        page_scores = np.zeros(len(pages), dtype=np.float32)
        page_scores[np.searchsorted(pages, self.pages)] = self.page_scores
        rings = tiers.ring_layout()
        ring_scores = np.zeros(len(rings.units), dtype=np.float32)
        if len(rings.units) and len(self.rings):
            pos = np.minimum(np.searchsorted(rings.units, self.rings), len(rings.units) - 1)
            still = rings.units[pos] == self.rings
            ring_scores[pos[still]] = self.ring_scores[still]
        return Candidates(pages, page_scores, rings, ring_scores)


CELLS = 64
"""Largest components of a query vector an entry keeps for matching (queries have far fewer)."""


class Level:
    """Entries of one scope in a fixed ring of rows, matched in one vectorised pass.

    Scanning a cache entry by entry costs more than the recall it saves once the cache holds a few
    hundred entries; here every row's cosine with the query is one gather and one row sum.
    """

    def __init__(self, capacity: int, dim: int):
        self.capacity = max(capacity, 0)
        self.buckets = np.zeros((self.capacity, CELLS), dtype=np.int32)
        self.weights = np.zeros((self.capacity, CELLS), dtype=np.float32)
        self.signature = np.full(self.capacity, -1, dtype=np.int64)
        self.generation = np.full(self.capacity, -1, dtype=np.int64)
        self.used = np.zeros(self.capacity, dtype=np.int64)
        self.entries: list[Entry | None] = [None] * self.capacity
        self.dim = dim
        self._clock = 0

    def find(self, qdense: np.ndarray, signature: int, threshold: float, generation: int) -> Entry | None:
        if not self.capacity:
            return None
        eligible = (self.signature == signature) & (self.generation == generation)
        if not eligible.any():
            return None
        sims = (qdense[self.buckets] * self.weights).sum(axis=1)
        sims[~eligible] = -1.0
        row = int(np.argmax(sims))
        if sims[row] < threshold:
            return None
        self._clock += 1
        self.used[row] = self._clock
        return self.entries[row]

    def add(self, entry: Entry, signature: int) -> None:
        if not self.capacity:
            return
        row = int(np.argmin(self.used))  # an empty row (0) or the least recently used
        n = min(len(entry.buckets), CELLS)
        top = np.argsort(-np.abs(entry.weights), kind="stable")[:n]
        self.buckets[row] = 0
        self.weights[row] = 0.0
        self.buckets[row, :n] = entry.buckets[top]
        self.weights[row, :n] = entry.weights[top]
        self.signature[row] = signature
        self.generation[row] = entry.generation
        self._clock += 1
        self.used[row] = self._clock
        self.entries[row] = entry

    def __len__(self) -> int:
        return sum(e is not None for e in self.entries)


@dataclass
class SlbStats:
    """Counters for `stats`, `memosd tiers` and the metrics endpoint."""

    lookups: int = 0
    hits: int = 0
    hit_seconds: float = 0.0
    miss_seconds: float = 0.0
    verified: int = 0
    agreement_sum: float = 0.0
    """Sum over verified hits of |top-k of the hit ∩ top-k of the full search| / k."""
    invalidations: int = 0


class SemanticLookasideBuffer:
    """The per-session and shared levels of every namespace."""

    def __init__(self, cfg, dim: int = 4096):
        self.cfg = cfg
        self.dim = dim
        self.session_levels: OrderedDict[tuple[int, str | None], Level] = OrderedDict()
        self.shared_levels: dict[int, Level] = {}
        self.generations: dict[int, int] = {}
        self.signatures: dict[Signature, int] = {}
        self.stats = SlbStats()

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def generation(self, ns_id: int) -> int:
        return self.generations.get(ns_id, 0)

    def invalidate(self, ns_id: int) -> None:
        """Something that can change or remove stored memories happened in the namespace."""
        self.generations[ns_id] = self.generation(ns_id) + 1
        self.stats.invalidations += 1

    def drop_namespace(self, ns_id: int) -> None:
        self.invalidate(ns_id)
        self.shared_levels.pop(ns_id, None)
        for key in [k for k in self.session_levels if k[0] == ns_id]:
            del self.session_levels[key]

    def lookup(self, ns_id: int, session: str | None, buckets: np.ndarray, weights: np.ndarray,
               signature: Signature) -> Entry | None:
        """The closest valid entry, the session level first; None on a miss."""
        self.stats.lookups += 1
        generation = self.generation(ns_id)
        sig = self.signatures.get(signature)
        if sig is None:
            return None
        qdense = np.zeros(self.dim + 1, dtype=np.float32)  # the last bucket is always 0 (padding cells)
        qdense[buckets % self.dim] = weights
        for level in (self.session_levels.get((ns_id, session)), self.shared_levels.get(ns_id)):
            if level is None:
                continue
            entry = level.find(qdense, sig, self.cfg.threshold, generation)
            if entry is not None:
                entry.uses += 1
                self.stats.hits += 1
                return entry
        return None

    def insert(self, ns_id: int, session: str | None, entry: Entry) -> None:
        sig = self.signatures.get(entry.signature)
        if sig is None:
            if len(self.signatures) > 100_000:  # unbounded filter variety: start over rather than grow
                self.signatures.clear()
                self.session_levels.clear()
                self.shared_levels.clear()
            sig = self.signatures[entry.signature] = len(self.signatures)
        key = (ns_id, session)
        level = self.session_levels.get(key)
        if level is None:
            level = self.session_levels[key] = Level(self.cfg.session_entries, self.dim)
            while len(self.session_levels) > self.cfg.max_sessions:
                self.session_levels.popitem(last=False)
        else:
            self.session_levels.move_to_end(key)
        level.add(entry, sig)
        shared = self.shared_levels.get(ns_id)
        if shared is None:
            shared = self.shared_levels[ns_id] = Level(self.cfg.shared_entries, self.dim)
        shared.add(entry, sig)

    def info(self, prefetch: dict | None = None):
        """The counters as the protocol's SlbInfo (for stats, `memosd tiers` and metrics), with the
        prefetcher's (Prefetcher.info) when given."""
        from memosd_client.protocol.messages import SlbInfo

        st = self.stats
        p = prefetch or {}
        misses = st.lookups - st.hits
        return SlbInfo(
            enabled=self.enabled, lookups=st.lookups, hits=st.hits,
            hit_rate=round(st.hits / st.lookups, 4) if st.lookups else 0.0,
            hit_mean_us=round(st.hit_seconds / st.hits * 1e6, 1) if st.hits else 0.0,
            miss_mean_us=round(st.miss_seconds / misses * 1e6, 1) if misses else 0.0,
            verified=st.verified, agreement=round(st.agreement_sum / st.verified, 4) if st.verified else None,
            entries=self.entries(), invalidations=st.invalidations,
            prefetch=self.cfg.prefetch, prefetched=p.get("prefetched", 0), prefetch_used=p.get("used", 0),
            prefetch_wasted=p.get("wasted", 0), prefetch_usefulness=p.get("usefulness"),
        )

    def entries(self) -> int:
        return len({id(e) for lvl in (*self.session_levels.values(), *self.shared_levels.values())
                    for e in lvl.entries if e is not None})
