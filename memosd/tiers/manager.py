"""The tiers of every namespace: loading them, keeping them consistent with purges, the budget.

The scheduler (scheduler.py) drives page formation, consolidation, heat and
eviction through this object; the engine calls it on load, purge and recall.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

import lmdb
import numpy as np
import psutil

from ..config import TiersConfig
from ..logs import get_logger
from ..retrieval import RetrievalConfig
from ..store import keys
from ..store.environment import Environment
from . import records
from .fine import Featurizer
from .heat import heat
from .records import FactRecord, PageRecord
from .state import TIER_LTM, TIER_MTM, TierState

log = get_logger("memosd.tiers")


class TierManager:
    """Owns one TierState per namespace and the shared residency budget."""

    def __init__(self, env: Environment, cfg: TiersConfig, retrieval: RetrievalConfig | None = None):
        self.env = env
        self.cfg = cfg
        retrieval = retrieval or RetrievalConfig()
        self.featurizer = Featurizer(retrieval.hash_dim, retrieval.bigram_weight, retrieval.hash_norm_exponent)
        self.states: dict[int, TierState] = {}
        self._pages = env.dbs["pages"]
        self._knowledge = env.dbs["knowledge"]
        self._memories = env.dbs["memories"]
        self.load_room = [cfg.budget_bytes if cfg.budget_bytes > 0 else 1 << 62]
        self.evict_heap: list[tuple[float, int, int]] = []
        """Resident pages by eviction key (heat.py), all namespaces together; see TierState.evict_heap."""

    # ------------------------------------------------------------------ namespaces

    def create(self, name: str, ns_id: int, table, slot_of, sessions, speakers) -> TierState:
        state = TierState(name, ns_id, table, slot_of, sessions, self.cfg, self.featurizer, self._text_loader(ns_id))
        state.speakers = speakers
        return self.attach(state)

    def attach(self, state: TierState) -> TierState:
        """Give a namespace's tiers what the manager shares (configuration, featurizer, budget, eviction
        heap, text loader): at creation, and when they come back from a snapshot (TierState.__getstate__)."""
        state.cfg = self.cfg
        state.feat = self.featurizer
        state.load_texts = self._text_loader(state.ns_id)
        state.load_room = self.load_room
        state.evict_heap = self.evict_heap
        self.states[state.ns_id] = state
        return state

    def _text_loader(self, ns_id: int):
        def load_texts(ids: Sequence[int]) -> dict[int, str]:
            return self.read_texts(ns_id, ids)

        return load_texts

    def forget_namespace(self, ns_id: int) -> None:
        self.states.pop(ns_id, None)

    def read_texts(self, ns_id: int, ids: Sequence[int]) -> dict[int, str]:
        from ..engine.records import decode_memory

        out = {}
        with self.env.read() as txn:
            for memory_id in ids:
                raw = txn.get(keys.memory_key(ns_id, memory_id), db=self._memories)
                if raw is not None:
                    out[memory_id] = decode_memory(raw).text
        return out

    def read_pages(self, txn: lmdb.Transaction, ns_id: int) -> tuple[list[PageRecord], dict[int, list[FactRecord]]]:
        """A namespace's stored pages and facts (an unreadable record is skipped and logged)."""
        pages, facts = [], {}
        prefix = keys.ns_prefix(ns_id)
        for db, decode, sink in ((self._pages, records.decode_page, pages), (self._knowledge, records.decode_fact, None)):
            for key, raw in keys.items_with_prefix(txn, db, prefix):
                try:
                    record = decode(raw)
                except Exception as exc:  # noqa: BLE001 - a damaged record must not stop the daemon
                    log.error("unreadable tier record skipped", key=key.hex(), error=str(exc))
                    continue
                if sink is not None:
                    sink.append(record)
                else:
                    facts.setdefault(record.page, []).append(record)
        return pages, facts

    def read_page(self, ns_id: int, page_id: int) -> PageRecord | None:
        """A page as stored, with the summary, keywords and entities its RAM copy leaves out."""
        with self.env.read() as txn:
            raw = txn.get(records.page_key(ns_id, page_id), db=self._pages)
        return None if raw is None else records.decode_page(raw)

    def read_facts(self, ns_id: int, page_id: int) -> list[FactRecord]:
        with self.env.read() as txn:
            return [records.decode_fact(raw)
                    for _, raw in keys.items_with_prefix(txn, self._knowledge, records.fact_prefix(ns_id, page_id))]

    # ------------------------------------------------------------------ purge, inside the write transaction

    def purge_in_txn(self, txn: lmdb.Transaction, state: TierState | None, ns_id: int, ids: Sequence[int]) -> None:
        """Remove purged memories from the stored pages that hold them and drop those pages' knowledge
        (it may quote them); the scheduler consolidates the pages again."""
        if state is None:
            return
        purged = set(ids)
        for page_id in sorted(state.pages_holding(ids, state.slot_of)):
            key = records.page_key(ns_id, page_id)
            raw = txn.get(key, db=self._pages)
            if raw is None:
                continue
            page = records.decode_page(raw)
            keys.delete_prefix(txn, self._knowledge, records.fact_prefix(ns_id, page_id))
            page.members = [i for i in page.members if i not in purged]
            page.consolidated, page.policy, page.summary, page.keywords, page.entities, page.facts = (
                False, "", "", [], [], 0)
            if page.members:
                txn.put(key, records.encode(page), db=self._pages)
            else:
                txn.delete(key, db=self._pages)

    def drop_namespace_in_txn(self, txn: lmdb.Transaction, ns_id: int) -> None:
        prefix = keys.ns_prefix(ns_id)
        keys.delete_prefix(txn, self._pages, prefix)
        keys.delete_prefix(txn, self._knowledge, prefix)

    # ------------------------------------------------------------------ residency

    def resident_bytes(self) -> int:
        """Bytes of page vectors resident over all namespaces (what the budget limits)."""
        return sum(state.block_bytes for state in self.states.values())

    def target_bytes(self) -> int | None:
        """How far eviction must go now: the budget, or half of it under memory pressure; None = no limit."""
        budget = self.cfg.budget_bytes
        if self.cfg.min_available_bytes > 0 and psutil.virtual_memory().available < self.cfg.min_available_bytes:
            return (budget or self.resident_bytes()) // 2
        return budget if budget > 0 else None

    def enforce_budget(self, target: int | None = None, deadline: float | None = None) -> int:
        """When over ``target`` (default: target_bytes()), evict the coldest resident pages down to 90% of it;
        returns the number of pages evicted. With a ``deadline`` (a ``time.perf_counter()`` value: the
        scheduler's step), at least one page and then only as many as fit before it; the next step goes on."""
        target = self.target_bytes() if target is None else target
        if target is None:
            return 0
        excess = self.resident_bytes() - target
        if excess <= 0:
            return 0
        excess += target // 10  # evict a tenth below the target, so the next faults do not evict again at once
        heap, evicted = self.evict_heap, 0
        while excess > 0 and heap:
            if evicted and deadline is not None and time.perf_counter() >= deadline:
                return evicted
            key, ns_id, page_id = heapq.heappop(heap)
            state = self.states.get(ns_id)
            page = None if state is None or page_id not in state.blocks else state.pages.get(page_id)
            if page is None or state.eviction_key(page) != key:
                continue  # evicted, purged or hit since this entry was pushed (a fresher one exists)
            excess -= state.evict(page_id)
            evicted += 1
        resident = sum(len(state.blocks) for state in self.states.values())
        if len(heap) > 4 * resident + 1024:  # mostly stale entries: rebuild from the resident pages
            heap[:] = [(state.eviction_key(state.pages[p]), state.ns_id, p)
                       for state in self.states.values() for p in state.blocks]
            heapq.heapify(heap)
        return evicted

    # ------------------------------------------------------------------ heat and tiers

    def retier(self, now: float, chunk: int = 256) -> None:
        """Demote consolidated pages that went cold to long-term memory, and promote hot ones back, for the
        next ``chunk`` pages of each namespace (round robin: bounded work per scheduler tick)."""
        cfg = self.cfg
        for state in self.states.values():
            ids = state.page_order
            if len(ids) > 2 * len(state.pages) + 1024:  # purged pages pile up: drop them from the orders
                ids[:] = [i for i in ids if i in state.pages]
                for session, order in list(state.session_pages.items()):
                    order[:] = [i for i in order if i in state.pages]
                    if not order:
                        del state.session_pages[session]
            if not ids:
                continue
            start = state.retier_cursor % len(ids)
            batch = [i for i in ids[start:start + chunk]
                     if i in state.pages and state.pages[i].consolidated and state.page_slots.get(i)]
            state.retier_cursor = start + chunk
            if not batch:
                continue
            pages = [state.pages[i] for i in batch]
            values = heat([p.hits for p in pages], [p.touched_at for p in pages], [len(p.members) for p in pages],
                          now, cfg.heat_half_life_s, cfg.heat_size_weight)
            current = state.table.tier[np.asarray([state.page_slots[i][0] for i in batch], dtype=np.int64)]
            for page_id, value, tier in zip(batch, values.tolist(), current.tolist()):
                if value < cfg.cold_heat and tier != TIER_LTM:
                    state.set_tier(page_id, TIER_LTM)
                    state.counters.demotions += 1
                elif value >= cfg.hot_heat and tier == TIER_LTM:
                    state.set_tier(page_id, TIER_MTM)
                    state.counters.promotions += 1

    def heat_percentiles(self, state: TierState, now: float) -> list[float]:
        """Heat at the 50th, 90th and 99th percentiles of a namespace's pages (empty without pages)."""
        pages = list(state.pages.values())
        if not pages:
            return []
        values = heat([p.hits for p in pages], [p.touched_at for p in pages], [len(p.members) for p in pages],
                      now, self.cfg.heat_half_life_s, self.cfg.heat_size_weight)
        return [round(float(v), 4) for v in np.percentile(values, [50, 90, 99])]
