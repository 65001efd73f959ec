"""Two-stage retrieval across the tiers.

Stage 1 (coarse, always resident) picks the units worth a close look:
the ``candidate_pages`` best units of the coarse index (pages and short-term
rings, each one document of its turns), the units of the ``candidate_lexical``
best lexical (BM25) hits, the pages of the best knowledge facts (when
``knowledge_candidates`` or ``knowledge_weight`` is set), and every short-term
ring (STM is always searched: each ring's newest turns, see TierState.stm_block).

Stage 2 (fine) scores the turns of those units with the hashed n-gram vectors
(faulting non-resident pages in) and fuses, per turn:

    final = bm25_n + hash_weight * hash_n
          + page_weight * unit_n                      (the coarse score of the turn's page or ring)
          + neighbor_weight * (base of the previous + base of the next turn of its unit)
          + knowledge_weight * fact_n                 (best fact citing the turn)

where ``_n`` means scaled to a maximum of 1 over what the query may see and
``base`` is the first line. Turns outside the candidates keep their BM25 part.
Which units are candidates never depends on what is resident, so eviction
cannot change an answer.
"""

from __future__ import annotations

import time

import numpy as np

from ..retrieval import Hit
from ..retrieval.ranking import restrict, top_fused
from .fine import score_blocks
from .state import TierState

KNOWLEDGE_FACTS = 10
"""Fewest facts taken from the knowledge index per query when the knowledge lookup is on."""


def _scaled(scores: np.ndarray) -> np.ndarray:
    top = scores.max() if len(scores) else 0.0
    return scores / top if top > 0 else scores


def _top_keys(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the best ``limit`` positive scores (ties: lowest index)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > limit:
        values = scores[positive]
        floor = np.partition(values, len(values) - limit)[len(values) - limit]
        positive = positive[values >= floor]  # the limit-th value and everything tied with it
        positive = positive[np.lexsort((positive, -scores[positive]))[:limit]]
    return positive


class TwoStage:
    """Runs one query against one namespace's tiers."""

    def __init__(self, tiers: TierState, hash_weight: float):
        self.tiers = tiers
        self.hash_weight = hash_weight

    def candidates(self, coarse: np.ndarray, lexical: np.ndarray, fact_units: set[int]) -> list[int]:
        tiers, cfg = self.tiers, self.tiers.cfg
        key_of = tiers.coarse.key_of
        units = {key_of[d] for d in _top_keys(coarse, cfg.candidate_pages).tolist() if d in key_of} | fact_units
        for slot in _top_keys(lexical, cfg.candidate_lexical).tolist():
            units.add(int(tiers.unit_of[slot]))
        units.update(-2 - code for code in tiers.rings)
        units.discard(0)
        return sorted(u for u in units if u < 0 or u in tiers.pages)

    def search(self, query: str, k: int, allowed: np.ndarray, bm25: np.ndarray) -> list[Hit]:
        """Best ``k`` turns for a text query; ``bm25`` is the lexical index's raw scores (padded)."""
        units, unit_scores, fact_boost = self.stage_one(query, bm25)
        return self.stage_two(query, k, allowed, bm25, units, unit_scores, fact_boost)

    def stage_one(self, query: str, bm25: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray | None]:
        """Candidate units with their coarse scores (scaled to the best unit's), and the knowledge boost."""
        tiers = self.tiers
        coarse = self._coarse_scores(query)
        fact_boost, fact_units = self._knowledge(query, len(bm25))
        units = self.candidates(coarse, _scaled(bm25), fact_units)
        top = coarse.max() if len(coarse) else 0.0
        docs = np.asarray([tiers.coarse.slot_of.get(u, -1) for u in units], dtype=np.int64)
        scores = np.zeros(len(units), dtype=np.float32)
        if top > 0 and len(units):
            found = docs >= 0
            scores[found] = coarse[docs[found]] / top
        return units, scores, fact_boost

    def stage_two(self, query: str, k: int, allowed: np.ndarray, bm25: np.ndarray, units: list[int],
                  unit_scores: np.ndarray, fact_boost: np.ndarray | None = None) -> list[Hit]:
        """Fine scores over ``units`` and every short-term ring, fused as the module docstring says."""
        tiers, cfg = self.tiers, self.tiers.cfg
        tiers.counters.queries += 1
        size = len(bm25)
        mask = np.zeros(size, dtype=bool)
        mask[: len(allowed)] = allowed[:size]
        lexical = _scaled(bm25)
        faults = tiers.counters.faults
        blocks = [tiers.stm_block()] + tiers.blocks_for([u for u in units if u > 0 and u in tiers.pages])
        if tiers.counters.faults != faults:
            tiers.counters.fault_queries += 1
        qvec = tiers.df.query_vector(*tiers.feat.query(query))
        fine = score_blocks(blocks, qvec, size)
        restrict(fine, mask)
        fine = _scaled(fine)
        base = lexical + self.hash_weight * fine
        final = base.copy()
        self._context(final, base, units, unit_scores)
        if fact_boost is not None:
            final += cfg.knowledge_weight * fact_boost
        restrict(final, mask)
        slots, values = top_fused([(1.0, final)], k, normalise=False)
        hits = []
        for slot, value in zip(slots.tolist(), values.tolist()):
            channels = tuple(name for name, scores in (("bm25", bm25), ("hash", fine)) if scores[slot] > 0)
            hits.append(Hit(slot, value, channels or ("page",)))
        return hits

    def _context(self, final: np.ndarray, base: np.ndarray, units: list[int], unit_scores: np.ndarray) -> None:
        """Add the page term and the neighbour term to ``final`` for every turn of the candidate units
        (vectorised over all units at once; each slot belongs to exactly one unit)."""
        tiers, cfg = self.tiers, self.tiers.cfg
        arrays = [tiers.unit_array(u) for u in units]
        keep = np.asarray([len(a) > 0 for a in arrays], dtype=bool)
        if not keep.any():
            return
        arrays = [a for a in arrays if len(a)]
        lengths = np.asarray([len(a) for a in arrays])
        idx = np.concatenate(arrays)
        if cfg.page_weight:
            final[idx] += (cfg.page_weight * np.repeat(unit_scores[keep], lengths)).astype(np.float32)
        if cfg.neighbor_weight:
            ends = np.cumsum(lengths)
            first = np.zeros(len(idx), dtype=bool)
            first[ends - lengths] = True
            last = np.zeros(len(idx), dtype=bool)
            last[ends - 1] = True
            values = base[idx]
            around = np.zeros(len(idx), dtype=np.float32)
            around[1:] += np.where(first[1:], 0.0, values[:-1])
            around[:-1] += np.where(last[:-1], 0.0, values[1:])
            final[idx] += cfg.neighbor_weight * around

    def search_vector(self, vector: np.ndarray, k: int, allowed: np.ndarray, size: int) -> list[Hit]:
        """Best ``k`` turns for a vector in the hash space: coarse by the units' hash documents, fine exact."""
        tiers, cfg = self.tiers, self.tiers.cfg
        tiers.counters.queries += 1
        buckets = np.flatnonzero(vector)
        coarse = np.zeros(0, dtype=np.float32)
        if len(tiers.coarse):
            hits = tiers.coarse.index.search_vector(vector, cfg.candidate_pages)
            coarse = np.zeros(max((h.slot for h in hits), default=-1) + 1, dtype=np.float32)
            for hit in hits:
                coarse[hit.slot] = hit.score
        units = self.candidates(coarse, np.zeros(0, dtype=np.float32), set())
        faults = tiers.counters.faults
        blocks = [tiers.stm_block()] + tiers.blocks_for([u for u in units if u > 0])
        if tiers.counters.faults != faults:
            tiers.counters.fault_queries += 1
        qvec = tiers.df.query_vector(buckets, vector[buckets].astype(np.float64))
        scores = score_blocks(blocks, qvec, size)
        mask = np.zeros(size, dtype=bool)
        mask[: len(allowed)] = allowed[:size]
        restrict(scores, mask)
        slots, values = top_fused([(1.0, scores)], k, normalise=False)
        return [Hit(s, v, ("hash",)) for s, v in zip(slots.tolist(), values.tolist())]

    def _coarse_scores(self, query: str) -> np.ndarray:
        """Fused coarse score of every unit document (indexed by document slot)."""
        coarse = self.tiers.coarse
        if not len(coarse):
            return np.zeros(0, dtype=np.float32)
        return coarse.index.fused_scores(query)

    def _knowledge(self, query: str, size: int) -> tuple[np.ndarray | None, set[int]]:
        tiers, cfg = self.tiers, self.tiers.cfg
        if not len(tiers.knowledge) or not (cfg.knowledge_candidates or cfg.knowledge_weight):
            return None, set()
        hits = tiers.knowledge.index.search(query, max(cfg.knowledge_candidates, KNOWLEDGE_FACTS))
        if not hits:
            return None, set()
        boost = np.zeros(size, dtype=np.float32) if cfg.knowledge_weight else None
        units: set[int] = set()
        top = hits[0].score
        for hit in hits:
            page_id, sources = tiers.fact_sources[tiers.knowledge.key_of[hit.slot]]
            units.add(page_id)
            if boost is None:
                continue
            for slot in (tiers.slot_of.get(i) for i in sources):
                if slot is not None and slot < size:
                    boost[slot] = max(boost[slot], hit.score / top)
        return boost, units

    def touch(self, hits: list[Hit]) -> list[int]:
        """The pages of the turns a recall returns got a hit (their heat rises); returns them, best hit first."""
        tiers = self.tiers
        pages = list(dict.fromkeys(p for p in (int(tiers.unit_of[h.slot]) for h in hits) if p > 0))
        tiers.touch(pages, time.time())
        return pages
