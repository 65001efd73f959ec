"""The in-RAM state of one namespace: its slot table, tag sets and hybrid index.

A namespace is a storage boundary: each one owns separate structures, and every
engine operation reaches exactly one of them by name, so no lookup can cross into
another namespace's data.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from memosd_client.protocol.messages import Filters, Memory

from ..retrieval import HybridIndex, RetrievalConfig
from ..retrieval.speakers import SpeakerIndex
from .analysis import Analyzer, TextAnalysis
from .id_slots import IdSlots
from .slots import INF, Interner, SlotTable

TIERS = {"stm": 0, "mtm": 1, "ltm": 2}
TIER_NAMES = tuple(TIERS)


class NamespaceState:
    """Everything the engine keeps in RAM for one namespace."""

    def __init__(self, name: str, ns_id: int, tiers, retrieval: RetrievalConfig | None = None):
        """``tiers`` is the TierManager that gives this namespace its TierState."""
        self.name = name
        self.ns_id = ns_id
        self.table = SlotTable()
        # The lexical index keeps BM25 over every turn; the hashed n-gram vectors live with the
        # tiers, per page, under the residency budget.
        self.index = HybridIndex(dataclasses.replace(retrieval or RetrievalConfig(), hash_weight=0.0))
        self.analyzer = Analyzer(self.index.tokenizer)
        self.slot_of = IdSlots()
        self.sessions = Interner()
        self.sources = Interner()
        self.speakers = SpeakerIndex()
        self.tag_slots: dict[str, set[int]] = {}
        self.tiers = tiers.create(name, ns_id, self.table, self.slot_of, self.sessions, self.speakers)
        self._bytes: int | None = None
        self._bytes_at = 0.0

    # ------------------------------------------------------------------ writes

    def add(self, mem: Memory, analysis: TextAnalysis | None = None) -> None:
        """Index one stored version (new, imported or loaded at start)."""
        self.add_many([mem], analyses=None if analysis is None else [analysis])

    def add_many(self, mems: list[Memory], page_of_id: dict[int, int] | None = None,
                 analyses: list[TextAnalysis] | None = None) -> None:
        """Index stored versions together: the hybrid index is much cheaper per document in batches.

        ``page_of_id`` (at load) places memories in their stored pages; new ones join short-term memory.
        ``analyses``: the texts already read (engine/analysis.py, done off the event loop for writes).
        """
        if not mems:
            return
        if analyses is None:
            analyses = self.analyzer.analyze(mems)
        slots = [self._add_row(mem, analysis) for mem, analysis in zip(mems, analyses)]
        terms = [analysis.terms for analysis in analyses]
        self.index.add_many(slots, [mem.text for mem in mems], terms)
        self.tiers.add(slots, mems, page_of_id, terms)

    def _add_row(self, mem: Memory, analysis: TextAnalysis) -> int:
        t = self.table
        slot = t.append()
        t.ids[slot] = mem.id
        t.valid_from[slot] = mem.valid_from
        t.valid_to[slot] = INF if mem.valid_to is None else mem.valid_to
        t.event_time[slot] = np.nan if mem.event_time is None else mem.event_time
        t.session[slot] = self.sessions.code(mem.session)
        t.source[slot] = self.sources.code(mem.source)
        t.speaker[slot] = self.speakers.code(analysis.speaker)
        t.tier[slot] = TIERS.get(mem.tier, 0)
        t.forgotten_at[slot] = INF if mem.forgotten_at is None else mem.forgotten_at
        t.present[slot] = True
        t.refresh_current(slot)
        t.time_mentions[slot] = analysis.time_mentions
        t.talks_from[slot] = analysis.talks_from
        t.talks_to[slot] = analysis.talks_to
        t.months[slot] = analysis.months
        self.slot_of[mem.id] = slot
        for tag in mem.tags:
            self.tag_slots.setdefault(tag, set()).add(slot)
        return slot

    def supersede(self, memory_id: int, valid_to: float) -> None:
        slot = self.slot_of.get(memory_id)
        if slot is not None:
            self.table.valid_to[slot] = valid_to
            self.table.refresh_current(slot)

    def set_forgotten(self, memory_id: int, forgotten_at: float | None) -> None:
        """Mark a version forgotten at a time, or not forgotten (None)."""
        slot = self.slot_of.get(memory_id)
        if slot is not None:
            self.table.forgotten_at[slot] = INF if forgotten_at is None else forgotten_at
            self.table.refresh_current(slot)

    def remove(self, mem: Memory) -> None:
        """Hard purge: drop the version from every in-RAM structure."""
        self.remove_many([mem])

    def remove_many(self, mems: list[Memory]) -> None:
        """Hard purge of several versions; the index is updated in one pass."""
        slots, texts = [], []
        t = self.table
        known = [mem for mem in mems if mem.id in self.slot_of]
        if known:
            self.tiers.remove([self.slot_of[mem.id] for mem in known], known)
        for mem in mems:
            slot = self.slot_of.pop(mem.id, None)
            if slot is None:
                continue
            t.present[slot] = False
            t.refresh_current(slot)
            for tag in mem.tags:
                members = self.tag_slots.get(tag)
                if members is not None:
                    members.discard(slot)
                    if not members:
                        del self.tag_slots[tag]
            slots.append(slot)
            texts.append(mem.text)
        if slots:
            self.index.remove_many(slots, texts)
            for slot in slots:
                t.release(slot)

    # ------------------------------------------------------------------ reads

    def mask(
        self,
        filters: Filters,
        *,
        as_of: float | None = None,
        include_forgotten: bool = False,
        include_superseded: bool = False,
    ) -> np.ndarray:
        """Boolean mask over slots for the given filters (a view of the cached mask when possible)."""
        t = self.table
        n = t.size
        plain = (
            as_of is None
            and not include_forgotten
            and not include_superseded
            and filters.session is None
            and filters.source is None
            and not filters.tags
            and filters.tier is None
            and filters.after is None
            and filters.before is None
        )
        if plain:
            return t.current[:n]
        mask = t.present[:n].copy()
        if not include_forgotten:
            # As of a time, a memory forgotten later was still there then.
            mask &= t.forgotten_at[:n] > as_of if as_of is not None else t.forgotten_at[:n] == INF
        if as_of is not None:
            mask &= (t.valid_from[:n] <= as_of) & (t.valid_to[:n] > as_of)
        elif not include_superseded:
            mask &= t.valid_to[:n] == INF
        if filters.session is not None:
            mask &= t.session[:n] == self._code_or_none(self.sessions, filters.session)
        if filters.source is not None:
            mask &= t.source[:n] == self._code_or_none(self.sources, filters.source)
        if filters.tier is not None:
            mask &= t.tier[:n] == TIERS[filters.tier]
        if filters.after is not None:
            mask &= t.event_time[:n] >= filters.after  # NaN (no event time) compares False
        if filters.before is not None:
            mask &= t.event_time[:n] < filters.before
        for tag in filters.tags:
            members = self.tag_slots.get(tag)
            tag_mask = np.zeros(n, dtype=np.bool_)
            if members:
                tag_mask[np.fromiter(members, dtype=np.int64, count=len(members))] = True
            mask &= tag_mask
        return mask

    @staticmethod
    def _code_or_none(interner: Interner, value: str) -> int:
        code = interner.lookup(value)
        return -2 if code is None else code  # -2 matches no slot

    def ids_in_order(self, mask: np.ndarray, cursor: int | None, limit: int) -> tuple[list[int], int | None]:
        """Ids selected by ``mask`` in ascending id order from ``cursor``; returns (ids, next_cursor)."""
        ids = self.table.ids[: mask.shape[0]][mask]
        if cursor is not None:
            ids = ids[ids >= cursor]
        if ids.shape[0] > limit:
            part = np.partition(ids, limit)[: limit + 1]
            part.sort()
            return part[:limit].tolist(), int(part[limit])
        ids = np.sort(ids)
        return ids.tolist(), None

    def counts(self) -> dict[str, int]:
        t = self.table
        n = t.size
        present = t.present[:n]
        return {
            "memories": int(present.sum()),
            "current": int(t.current[:n].sum()),
            "superseded": int((present & (t.valid_to[:n] != INF)).sum()),
            "forgotten": int((present & (t.forgotten_at[:n] != INF)).sum()),
        }

    BYTES_REFRESH_S = 5.0
    """Measuring the index walks every posting list (~50 ms at 100k memories): stats, `memosd top`
    and metrics scrapes reuse a measurement this recent instead of stalling the loop each time."""

    def resident_bytes(self) -> int:
        now = time.monotonic()
        if self._bytes is None or now - self._bytes_at > self.BYTES_REFRESH_S:
            self._bytes = (self.table.nbytes() + self.index.resident_bytes() + self.slot_of.nbytes()
                           + self.tiers.always_resident_bytes() + self.tiers.block_bytes)
            self._bytes_at = now
        return self._bytes
