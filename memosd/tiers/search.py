"""Two-stage retrieval across the tiers.

Stage 1 (coarse, always resident) picks the units worth a close look:
the ``candidate_pages`` best units of the coarse index (pages and short-term
rings, each one document of its turns), the units of the ``candidate_lexical``
best lexical (BM25) hits, the pages of the best knowledge facts (when
``knowledge_candidates`` or ``knowledge_weight`` is set), and every short-term
ring (STM is always searched: each ring's newest turns, see TierState.stm_block).

Stage 2 (fine) fuses the scores of the turns of those units, per turn (with a ``fine_weight`` above
0, the default being 0, it first scores their hashed n-gram vectors, faulting non-resident pages in):

    final = bm25_n + fine_weight * hash_n
          + page_weight * unit_n                      (the coarse score of the turn's page or ring)
          + neighbor_weight * (base of the previous + base of the next turn of its unit)
          + knowledge_weight * fact_n                 (best fact citing the turn)
          + time_weight   [the question asks when / how long, and the turn says a time]
          + period_weight [the question names a period, and the turn was said in it or talks about it]
          + speaker_weight [the question names the turn's speaker]

where ``_n`` means scaled to a maximum of 1 over what the query may see and
``base`` is the first line. Turns outside the candidates keep their BM25 part.
Which units are candidates never depends on what is resident, so eviction
cannot change an answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..retrieval import Hit
from ..retrieval.query import AnalyzedQuery
from ..retrieval.ranking import GROUP_ROWS, restrict, top_fused
from .fine import add_indexed, score_blocks
from .state import RingLayout, TierState
from .speaking import speaker_boost
from .timing import period_units, time_boost

COARSE_FULL_MATCH = 1.0
"""A unit document's fused coarse score when it holds the query's best BM25 match (the lexical channel's
weight: each channel is scaled to a maximum of 1, then weighted, BM25 by 1.0)."""

KNOWLEDGE_FACTS = 10
"""Fewest facts taken from the knowledge index per query when the knowledge lookup is on."""

_CHANNELS = {(True, True): ("bm25", "hash"), (True, False): ("bm25",),
             (False, True): ("hash",), (False, False): ("page",)}
"""A hit's matched channels by (BM25 above 0, fine score above 0); "page" when it came by its unit alone."""


def _unit_scores(coarse: np.ndarray, docs: np.ndarray, top: float) -> np.ndarray:
    """Coarse scores of the units whose documents are ``docs`` (-1: none yet), scaled by ``top``."""
    scores = np.zeros(len(docs), dtype=np.float32)
    if top > 0 and len(docs):
        found = docs >= 0
        scores[found] = coarse[docs[found]] / top
    return scores


def _units_at_least_their_best_turn(unit_scores: np.ndarray, base: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Unit scores where a unit (ring or page) scores at least as its best turn's base score.

    A unit's coarse document holds its turns, so it matches the query at least as well as its best turn
    does. The scheduler re-indexes a coarse document after the write that changed its unit: until then
    a turn written a moment ago could have no unit score at all, and the page term (page_weight) would put
    it behind older turns whose pages match only through other words (or hashed n-grams that collide).
    The turn's own score is there at once."""
    best = np.maximum.reduceat(base, np.cumsum(lengths) - lengths)
    return np.maximum(unit_scores, best).astype(np.float32)


def _top_keys(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the best ``limit`` positive scores (ties: lowest index)."""
    if len(scores) and len(scores) % GROUP_ROWS == 0:  # a padded array: the grouped top-k pass is faster
        return top_fused([(1.0, scores)], limit, normalise=False)[0]
    positive = np.flatnonzero(scores > 0)
    if len(positive) > limit:
        values = scores[positive]
        floor = np.partition(values, len(values) - limit)[len(values) - limit]
        positive = positive[values >= floor]  # the limit-th value and everything tied with it
        positive = positive[np.lexsort((positive, -scores[positive]))[:limit]]
    return positive


def _top_among(idx: np.ndarray, fused: np.ndarray, k: int, lexical: tuple[np.ndarray, np.ndarray], top: float,
               depth: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The best ``k`` of all turns, chosen among the candidates' turns alone (slots ``idx``, fused scores
    ``fused``); None when that cannot be shown to equal the top k over every slot.

    A turn outside the candidates scores its scaled BM25 alone. The best ``depth`` BM25 hits are all
    candidates (their units are) when each is in ``idx``, so every other turn scores at most the
    ``depth + 1``-th BM25 score, ``bound``. If the candidates hold ``k`` turns scoring above ``bound``,
    no other turn can enter the top k, nor tie with it: the answer is the one a pass over the whole
    namespace would give, at a cost that does not grow with it."""
    lex_slots, lex_values = lexical
    if k > depth or not len(idx) or not _all_in(lex_slots[:depth], idx):
        return None
    bound = float(lex_values[depth]) / top if len(lex_values) > depth and top > 0 else 0.0
    above = np.flatnonzero(fused > bound)  # a turn is in one unit, so each slot is in idx once
    if len(above) < k:
        return None
    values = fused[above]
    if len(values) > 4 * k:  # cut to the k-th value (keeping its ties) before sorting
        keep = values >= np.partition(values, len(values) - k)[len(values) - k]
        above, values = above[keep], values[keep]
    slots = idx[above]
    order = np.lexsort((slots, -values))[:k]
    return slots[order], values[order]


def _all_in(few: np.ndarray, many: np.ndarray) -> bool:
    """Whether every slot of ``few`` is in ``many`` (np.isin sorts both: ten times slower here)."""
    if not len(few):
        return True
    if few.max() > many.max() or few.min() < many.min():
        return False
    marks = np.zeros(int(many.max()) + 1, dtype=bool)
    marks[many] = True
    return bool(marks[few].all())


@dataclass(slots=True)
class Candidates:
    """What the fine stage scores: candidate pages and every short-term ring, with coarse scores."""

    pages: np.ndarray
    """Candidate page ids (int64, ascending)."""
    page_scores: np.ndarray
    """Their coarse scores (float32), scaled to the best unit's."""
    rings: RingLayout
    """Every ring of the namespace (TierState.ring_layout) when the candidates were taken."""
    ring_scores: np.ndarray
    """The rings' coarse scores, aligned with ``rings.units``."""
    lexical: tuple[np.ndarray, np.ndarray] | None = None
    """The best ``candidate_lexical + 1`` BM25 hits (slots, raw scores; best first) when stage one took
    them for this query; lets stage two pick its top k among the candidates alone (see ``_top_among``)."""


class TwoStage:
    """Runs one query against one namespace's tiers."""

    def __init__(self, tiers: TierState, fine_weight: float):
        self.tiers = tiers
        self.fine_weight = fine_weight

    def candidate_pages(self, coarse: np.ndarray, lexical: np.ndarray, fact_units: set[int]) -> np.ndarray:
        """The pages among the best coarse units, the units of the best lexical hits (``lexical``: their
        slots) and the facts' pages (rings need no choosing: every ring is a candidate)."""
        tiers, cfg = self.tiers, self.tiers.cfg
        key_of = tiers.coarse.key_of
        units = {key_of[d] for d in _top_keys(coarse, cfg.candidate_pages).tolist() if d in key_of} | fact_units
        units.update(tiers.unit_of[lexical].tolist())
        return np.asarray(sorted(u for u in units if u > 0 and u in tiers.pages), dtype=np.int64)

    def lexical_top(self, bm25: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The best ``candidate_lexical + 1`` BM25 hits: the units of all but the last become candidates,
        and the last bounds what any turn outside the candidates can score."""
        if not len(bm25):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return top_fused([(1.0, bm25)], self.tiers.cfg.candidate_lexical + 1, normalise=False)

    def can_score(self, query: AnalyzedQuery) -> bool:
        """Whether any turn can score above zero for ``query``.

        Each part of the final score needs an index term of the query, a time intent or a speaker it
        names (the module docstring), and a hit needs a positive score. A query with none of them
        (punctuation alone, say) finds nothing here, so it need not cost a pass over the tiers."""
        if query.terms or query.time_intent().any:
            return True
        speakers = self.tiers.speakers
        return speakers is not None and bool(speakers.named_in(query.text))

    def search(self, query: str | AnalyzedQuery, k: int, allowed: np.ndarray, bm25: np.ndarray) -> list[Hit]:
        """Best ``k`` turns for a text query; ``bm25`` is the lexical index's raw scores (padded)."""
        candidates, fact_boost = self.stage_one(query, bm25)
        return self.stage_two(query, k, allowed, bm25, candidates, fact_boost)

    def stage_one(self, query: str | AnalyzedQuery, bm25: np.ndarray) -> tuple[Candidates, np.ndarray | None]:
        """Candidate units with their coarse scores (scaled to the best unit's), and the knowledge boost."""
        tiers = self.tiers
        coarse = self._coarse_scores(query)
        fact_boost, fact_units = self._knowledge(query, len(bm25))
        # The top lexical hits rank alike scaled or not.
        lexical = self.lexical_top(bm25)
        pages = self.candidate_pages(coarse, lexical[0][: tiers.cfg.candidate_lexical],
                                     fact_units | period_units(query, tiers))
        # Scaled to the best unit's score, but never past what a match of the query's words gives: when no
        # unit holds any of them (a rare word, in a unit whose coarse document the scheduler has not
        # re-indexed yet), the best unit matches only through colliding hashed n-grams, and that noise
        # must not count as a full page score.
        top = max(float(coarse.max()), COARSE_FULL_MATCH) if len(coarse) else 0.0
        slot_of = tiers.coarse.slot_of
        page_docs = np.asarray([slot_of.get(p, -1) for p in pages.tolist()], dtype=np.int64)
        ring_docs = tiers.ring_docs()
        return Candidates(pages, _unit_scores(coarse, page_docs, top), tiers.ring_layout(),
                          _unit_scores(coarse, ring_docs, top), lexical), fact_boost

    def stage_two(self, query: str | AnalyzedQuery, k: int, allowed: np.ndarray, bm25: np.ndarray,
                  candidates: Candidates, fact_boost: np.ndarray | None = None) -> list[Hit]:
        """Fine scores over the candidates, fused as the module docstring says.

        Only the candidates' turns get more than their BM25 part, so the fusion runs on them alone (the
        rest of ``final`` is the scaled BM25 array): the same numbers as fusing every slot, without a
        dozen passes over arrays the size of the namespace."""
        tiers, cfg = self.tiers, self.tiers.cfg
        tiers.counters.queries += 1
        size = len(bm25)
        page_ids = candidates.pages.tolist()
        # With no weight on the fine vectors, they would change no score: they are neither scored nor
        # faulted in (text recall then never waits on a page fault).
        fine = self._fine_scores(query, page_ids, size) if self.fine_weight else None

        page_arrays = [tiers.unit_array(p) for p in page_ids]
        lengths = np.concatenate([candidates.rings.lengths, np.asarray([len(a) for a in page_arrays], dtype=np.int64)])
        unit_scores = np.concatenate([candidates.ring_scores, candidates.page_scores])
        keep = lengths > 0
        lengths, unit_scores = lengths[keep], unit_scores[keep]
        idx = np.concatenate([candidates.rings.slots, *page_arrays]).astype(np.int64, copy=False)
        visible = np.zeros(len(idx), dtype=bool)
        inside = idx < min(len(allowed), size)
        visible[inside] = allowed[idx[inside]]

        # bm25 is zero where not allowed.
        lexical = candidates.lexical if candidates.lexical is not None else self.lexical_top(bm25)
        top = lexical[1][0] if len(lexical[1]) else np.float32(0.0)
        base = bm25[idx] / top if top > 0 else bm25[idx]
        if fine is not None:
            cand_fine = fine[idx] * visible
            fine_top = cand_fine.max() if len(cand_fine) else 0.0
            if fine_top > 0:
                base = base + self.fine_weight * (cand_fine / fine_top)
        fused = base.copy()
        if len(idx):
            unit_scores = _units_at_least_their_best_turn(unit_scores, base, lengths)
            self._context(fused, base, lengths, unit_scores)
            for boost in (time_boost(query, tiers.table, idx, cfg), speaker_boost(query, tiers, idx)):
                if boost is not None:
                    fused += boost
        picked = None
        if fact_boost is None:
            fused *= visible
            picked = _top_among(idx, fused, k, lexical, top, cfg.candidate_lexical)
        if picked is None:
            # Every slot keeps its scaled BM25 part; the candidates' turns get their fused scores (a copy:
            # the caller may use bm25 again).
            final = bm25 / top if top > 0 else bm25.copy()
            final[idx] = fused
            if fact_boost is not None:
                final += cfg.knowledge_weight * fact_boost
                restrict(final, allowed)
            picked = top_fused([(1.0, final)], k, normalise=False)
        slots, values = picked
        lexical_hit = (bm25[slots] > 0).tolist()
        fine_hit = (fine[slots] > 0).tolist() if fine is not None else [False] * len(lexical_hit)
        return [Hit(slot, value, _CHANNELS[lex, fin])
                for slot, value, lex, fin in zip(slots.tolist(), values.tolist(), lexical_hit, fine_hit)]

    def _fine_scores(self, query: str | AnalyzedQuery, page_ids: list[int], size: int) -> np.ndarray:
        """q·d of the hashed n-gram vectors over short-term memory and the candidate pages (faulting them in),
        as a padded array that is zero elsewhere."""
        tiers = self.tiers
        faults = tiers.counters.faults
        blocks = tiers.blocks_for([p for p in page_ids if p in tiers.pages])
        if tiers.counters.faults != faults:
            tiers.counters.fault_queries += 1
        qvec = tiers.df.query_vector(*tiers.feat.query(query))
        stm, stm_index = tiers.stm_block(), tiers.stm_index()
        fine = score_blocks(blocks if stm_index is not None else [stm, *blocks], qvec, size)  # candidates' turns only
        if stm_index is not None:
            add_indexed(fine, stm, stm_index, qvec)
        return fine

    def _context(self, fused: np.ndarray, base: np.ndarray, lengths: np.ndarray, unit_scores: np.ndarray) -> None:
        """Add the page term and the neighbour term to the candidates' ``fused`` scores, laid out unit after
        unit (``lengths``) like ``base`` (vectorised over all units at once)."""
        cfg = self.tiers.cfg
        if cfg.page_weight:
            fused += (cfg.page_weight * np.repeat(unit_scores, lengths)).astype(np.float32)
        if cfg.neighbor_weight:
            ends = np.cumsum(lengths)
            first = np.zeros(len(base), dtype=bool)
            first[ends - lengths] = True
            last = np.zeros(len(base), dtype=bool)
            last[ends - 1] = True
            around = np.zeros(len(base), dtype=np.float32)
            around[1:] += np.where(first[1:], 0.0, base[:-1])
            around[:-1] += np.where(last[:-1], 0.0, base[1:])
            fused += cfg.neighbor_weight * around

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
        pages = self.candidate_pages(coarse, np.zeros(0, dtype=np.int64), set())
        faults = tiers.counters.faults
        blocks = [tiers.stm_block()] + tiers.blocks_for(pages.tolist())
        if tiers.counters.faults != faults:
            tiers.counters.fault_queries += 1
        qvec = tiers.df.query_vector(buckets, vector[buckets].astype(np.float64))
        scores = score_blocks(blocks, qvec, size)
        mask = np.zeros(size, dtype=bool)
        mask[: len(allowed)] = allowed[:size]
        restrict(scores, mask)
        slots, values = top_fused([(1.0, scores)], k, normalise=False)
        return [Hit(s, v, ("hash",)) for s, v in zip(slots.tolist(), values.tolist())]

    def _coarse_scores(self, query: str | AnalyzedQuery) -> np.ndarray:
        """Fused coarse score of every unit document (indexed by document slot)."""
        coarse = self.tiers.coarse
        if not len(coarse):
            return np.zeros(0, dtype=np.float32)
        return coarse.index.fused_scores(query, hash_weight=self.tiers.cfg.coarse_hash_weight)

    def _knowledge(self, query: str | AnalyzedQuery, size: int) -> tuple[np.ndarray | None, set[int]]:
        tiers, cfg = self.tiers, self.tiers.cfg
        if not len(tiers.knowledge) or not cfg.searches_knowledge:
            return None, set()
        hits = tiers.knowledge.index.search(query, max(cfg.knowledge_candidates, KNOWLEDGE_FACTS))
        if not hits:
            return None, set()
        boost = np.zeros(size, dtype=np.float32) if cfg.knowledge_weight else None
        units: set[int] = set()
        top = hits[0].score
        for hit in hits:
            page_id, sources = tiers.fact_source(tiers.knowledge.key_of[hit.slot])
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
        units = tiers.unit_of[np.fromiter((h.slot for h in hits), dtype=np.int64, count=len(hits))].tolist()
        pages = [p for p in dict.fromkeys(units) if p > 0]
        tiers.touch(pages, time.time())
        return pages
