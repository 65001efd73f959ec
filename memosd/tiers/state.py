"""One namespace's tiers in RAM: short-term rings, pages, their fine vectors, coarse and knowledge indexes.

Every memory (stored version) of a namespace belongs to exactly one *unit*:
its session's short-term ring (STM) or a page (MTM/LTM). Units are what the
coarse index ranks and what the fine stage scores. Unit keys are ints: a page
is its page id (> 0); a session's ring is -(2 + session code) (< 0).

What is always resident: the slot table, the lexical (BM25) index over every
turn, the rings with their vectors, the coarse index over units, the
knowledge index, page records and document frequencies. What the budget
governs: the fine vectors of pages (``blocks``), faulted in from the store on
demand and evicted coldest first.
"""

from __future__ import annotations

import heapq
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import msgspec
import numpy as np

from memosd_client.protocol.messages import Memory

from ..engine.id_slots import IdSlots
from ..retrieval import HybridIndex, RetrievalConfig
from ..retrieval.postings import grown
from .fine import BucketIndex, DocumentFrequencies, Featurizer, FineBlock, Row, row_nbytes
from .entities import EntityIndex
from .heat import eviction_key, page_heat, touched
from .records import FactRecord, PageRecord

TIER_STM, TIER_MTM, TIER_LTM = 0, 1, 2
FINE_OVERFLOW = 128
"""Turns beyond a ring's capacity, waiting to be paged, that recall still scores in full (newest first)."""
DOC_BATCH = 64
"""Coarse and knowledge documents indexed per batch (the index's batch path is several times cheaper per
document)."""
LOAD_DOC_BATCH = 2048
"""Page documents indexed per batch while a namespace loads (bounds the texts held meanwhile)."""

_PAGES = msgspec.msgpack.Encoder()
_PAGES_OF = msgspec.msgpack.Decoder(list[PageRecord])

TextLoader = Callable[[Sequence[int]], dict[int, str]]
"""Memory ids -> their stored texts (read from the store), for faults and coarse documents."""
STM_INDEX_AFTER = 8
"""Queries that score the same short-term block plainly before it is indexed by bucket (see stm_index)."""


def ring_unit(session_code: int) -> int:
    return -(2 + session_code)


class Counters:
    """Lifetime counters of one namespace's tiers (reset at restart)."""

    __slots__ = ("faults", "evictions", "promotions", "demotions", "pages_formed", "consolidated",
                 "policy_failures", "fault_queries", "queries", "prefetched", "prefetch_used", "prefetch_wasted")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class DocTable:
    """Documents of a small HybridIndex keyed by arbitrary ints, with reusable doc slots."""

    def __init__(self, config: RetrievalConfig):
        self.index = HybridIndex(config)
        # Arrays, not dicts: keys (page ids, fact keys) and slots come from counters; the rings' negative
        # unit keys go in the maps' small dicts. For 211k units, two dicts took 30 MiB, these 2 MiB.
        self.slot_of = IdSlots()
        self.key_of = IdSlots(np.int64)
        self._free: list[int] = []
        self.version = 0
        """Bumped whenever a key's slot may change (what caches of slot_of check)."""

    def put(self, key: int, text: str, old_text: str | None) -> None:
        """Index ``text`` under ``key``, replacing its previous document (whose text was ``old_text``)."""
        self.drop(key, old_text)
        self.version += 1
        slot = self._free.pop() if self._free else len(self.slot_of)
        self.index.add(slot, text)
        self.slot_of[key] = slot
        self.key_of[slot] = key

    def add_many(self, items: Sequence[tuple[int, str]]) -> None:
        """Index new keys in one batch (much cheaper per document than ``put``)."""
        if not items:
            return
        self.version += 1
        slots = []
        for key, _ in items:
            slot = self._free.pop() if self._free else len(self.slot_of)
            self.slot_of[key] = slot
            self.key_of[slot] = key
            slots.append(slot)
        self.index.add_many(slots, [text for _, text in items])

    def drop_many(self, items: Sequence[tuple[int, str | None]]) -> None:
        """Drop several keys' documents (``(key, old_text)`` each) in one pass over the postings."""
        slots, texts = [], []
        for key, old_text in items:
            slot = self.slot_of.pop(key, None)
            if slot is not None:
                del self.key_of[slot]
                self._free.append(slot)
                slots.append(slot)
                texts.append(old_text if old_text is not None else "")
        if slots:
            self.version += 1
            self.index.remove_many(slots, texts)

    def drop(self, key: int, old_text: str | None) -> None:
        slot = self.slot_of.pop(key, None)
        if slot is None:
            return
        self.version += 1
        self.index.remove(slot, old_text if old_text is not None else "")
        del self.key_of[slot]
        self._free.append(slot)

    def __len__(self) -> int:
        return len(self.slot_of)


class TierState:
    """The tiers of one namespace. Runs on the event loop thread (the scheduler's decisions too)."""

    def __init__(self, name: str, ns_id: int, table, slot_of: IdSlots, sessions, cfg,
                 featurizer: Featurizer, load_texts: TextLoader):
        self.name = name
        self.ns_id = ns_id
        self.table = table
        self.sessions = sessions
        self.slot_of = slot_of
        """The namespace's memory id -> slot map (shared, owned by NamespaceState)."""
        self.cfg = cfg
        self.feat = featurizer
        self.load_texts = load_texts
        self.speakers = None
        """The namespace's SpeakerIndex (retrieval.speakers), set by TierManager.create."""
        self.df = DocumentFrequencies(featurizer.dim)
        self.unit_of = np.zeros(1024, dtype=np.int64)
        self.rings: dict[int, list[int]] = {}
        self.stm_rows: dict[int, Row] = {}
        self.overflowing: set[int] = set()
        """Session codes of the rings over ``stm_capacity`` (what paging must take, found without a scan)."""
        self.stm_text: dict[int, str] = {}
        self._stm_block: FineBlock | None = None
        self._ring_blocks: dict[int, FineBlock] = {}
        """Session code -> the fine vectors of its ring's searched part (see stm_block)."""
        self._stm_index: BucketIndex | None = None
        self._stm_scored = 0
        self._ring_layout: RingLayout | None = None
        self._ring_docs: tuple[int, RingLayout, np.ndarray] | None = None
        """(coarse index version, layout, each ring's coarse document slot): see ring_docs."""
        self.pages: dict[int, PageRecord] = {}
        self.page_slots: dict[int, array] = {}
        """Page id -> its members' slots in order, as int32 arrays (a list of int objects cost about three
        times as much: 71 MiB at 1M memories)."""
        self.open_page: dict[int, int] = {}
        """Session code -> the page that session's next paged turn may join."""
        self.blocks: dict[int, FineBlock] = {}
        self.block_bytes = 0
        self.next_page_id = 1
        self.coarse = DocTable(RetrievalConfig())
        self.knowledge = DocTable(RetrievalConfig(hash_weight=0.0))
        self.keeps_facts = cfg.searches_knowledge
        """Whether the facts are held in RAM (``knowledge``, ``fact_sources``, ``page_facts``,
        ``_fact_texts``): only when recall looks them up. Otherwise they live in the store alone, where
        ``page`` and ``entity`` read them; at 1M memories the RAM copy was about 670 MiB, a third of the
        daemon's, for a lookup the default configuration never makes."""
        self.fact_count = 0
        """Facts of the consolidated pages, held in RAM or not."""
        self._page_fact_counts = np.zeros(1024, dtype=np.int32)
        """Page id -> how many of ``fact_count`` are that page's."""
        self.fact_sources: dict[int, bytes] = {}
        """Knowledge doc key -> its page id and source memory ids, packed (see fact_source): a tuple of a
        list of ints cost about 200 bytes a fact, and a store holds two or three facts per memory."""
        self._fact_texts: dict[int, bytes] = {}
        """Page id -> its facts' documents as indexed, in page_facts order, compressed together: they are
        read only to take the facts out of the knowledge index again (a purge, a new consolidation),
        and as plain strings they were the largest part of a settled store's RAM after the indexes."""
        self.entities = EntityIndex()
        """Entity name (casefolded) <-> consolidated pages that name it: the entity index of long-term memory."""
        self.page_facts: dict[int, list[int]] = {}
        self._next_fact_key = 0
        self._indexed: dict[int, str] = {}
        """Text of the coarse documents of rings and open pages as indexed (they change often; a closed
        page's document never changes but by a purge, which reads it back from the store)."""
        self._arrays: dict[int, np.ndarray] = {}
        """unit -> its slots as an array (see unit_array); dropped whenever the membership changes."""
        self.unconsolidated: set[int] = set()
        """Closed pages waiting for the consolidation policy (see mark_unconsolidated)."""
        self._waiting: list[int] = []
        """A heap of the same page ids (with stale ones left in until they surface)."""
        self.retier_cursor = 0
        """Where the scheduler's round-robin demotion pass over the pages resumes."""
        self.page_order: list[int] = []
        """Page ids in order of formation (purged ones linger until compacted): the re-tiering round robin."""
        self.session_pages: dict[str | None, list[int]] = {}
        """Session -> its page ids in order of formation (compacted with page_order): neighbours in time."""
        self.prefetched: set[int] = set()
        """Pages made resident by prefetching that no recall has used yet (see slb/prefetch.py)."""
        self.pending_facts: dict[int, str] = {}
        """Knowledge documents waiting to be indexed (same reason as pending_docs)."""
        self._trim_when_drained = False
        """Set by a load: once the queues above are drained, the indexes' spare room is given back."""
        self.pending_docs: dict[int, str] = {}
        """Coarse documents waiting to be (re-)indexed by the scheduler, latest text per unit: indexing
        costs milliseconds, so it is done in time-boxed steps off the request path."""
        self.dirty_rings: set[int] = set()
        self.dirty_heat: set[int] = set()
        self._loading: dict[int, tuple[list, list, list]] = {}
        self._loaded_docs: list[tuple[int, str]] = []
        """Coarse documents of pages completed during load, indexed in batches (one at a time costs
        several times more per document)."""
        self._stm_bytes = 0
        self._fact_bytes = 0
        self.pending: dict[int, int] = {}
        """Memory id -> page id of page assignments submitted to the writer and not yet applied;
        purges read it (on the writer thread) so a page being formed cannot keep a purged turn."""
        self.counters = Counters()
        self.policy_usage: dict[str, int] = {}
        """The policies' resource accounting (Consolidation.usage), summed since start."""
        self.evict_heap: list[tuple[float, int, int]] = []
        """(eviction key, namespace id, page id) of resident pages, shared by all namespaces (the manager's);
        entries of pages hit or evicted since are left in and skipped when they surface."""
        self.load_room = [1 << 62]
        """Bytes of page vectors a load may still make resident (a list shared by the manager)."""

    _SHARED = ("cfg", "feat", "load_texts", "evict_heap", "load_room")
    """Attributes that the TierManager gives every namespace (TierManager.attach), not the namespace's own."""

    def __getstate__(self) -> dict:
        """The namespace's tiers for a snapshot (engine/snapshot.py): its own data, without what the
        manager shares, the caches (rebuilt on use), resident page vectors (they fault back in under
        the next run's budget) and the counters since start."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._SHARED}
        # Pages as one msgpack blob: pickling a msgspec struct apiece is several times slower to read back.
        state["pages"] = _PAGES.encode(list(self.pages.values()))
        state.update(_stm_block=None, _ring_blocks={}, _stm_index=None, _stm_scored=0, _ring_layout=None,
                     _ring_docs=None, _arrays={}, blocks={}, block_bytes=0, prefetched=set(), pending={},
                     counters=Counters(), policy_usage={})
        return state

    def __setstate__(self, state: dict) -> None:
        state["pages"] = {page.id: page for page in _PAGES_OF.decode(state["pages"])}
        self.__dict__.update(state)

    # ------------------------------------------------------------------ membership

    def load_pages(self, pages: Iterable[PageRecord]) -> dict[int, int]:
        """Stored pages, before their memories are loaded; returns memory id -> page id."""
        page_of_id = {}
        for page in pages:
            self.pages[page.id] = page
            self.page_order.append(page.id)
            self.session_pages.setdefault(page.session, []).append(page.id)
            self.next_page_id = max(self.next_page_id, page.id + 1)
            for memory_id in page.members:
                page_of_id.setdefault(memory_id, page.id)  # a turn in two pages (never written) keeps the first
        return page_of_id

    def finish_load(self, facts: dict[int, list[FactRecord]]) -> None:
        """After every memory is loaded: drop members that no longer exist, index pages and facts."""
        for page_id in list(self.pages):
            page = self.pages[page_id]
            slots = self.page_slots.get(page_id, [])
            if len(slots) != len(page.members):
                present = {int(self.table.ids[s]) for s in slots}
                page.members = [i for i in page.members if i in present]
            if not page.members:
                del self.pages[page_id]
                continue
            pending = self._loading.pop(page_id, None)
            if pending is not None:  # members seen but the page never completed (purged members)
                self._complete_load(page, *pending)
            if not page.closed:
                code = -1 if page.session is None else self.sessions.code(page.session)
                self.open_page[code] = page_id
            elif not page.consolidated:
                self.mark_unconsolidated(page_id)
            if page_id in facts:
                self.install_knowledge(page, facts[page_id])
            shed_knowledge(page)
        self._index_loaded_docs()
        self._loading = {}
        self._trim_when_drained = True

    def _complete_load(self, page: PageRecord, texts: list[str], slots: list[int], rows: list[Row]) -> None:
        self._loaded_docs.append((page.id, "\n".join(texts)))
        if len(self._loaded_docs) >= LOAD_DOC_BATCH:
            self._index_loaded_docs()
        size = FineBlock.nbytes_of(rows)
        if size <= self.load_room[0]:  # only what fits: a start never begins over the budget
            self._set_block(page.id, FineBlock.of(slots, rows))
            self.load_room[0] -= size

    def _index_loaded_docs(self) -> None:
        if self._loaded_docs:
            self.coarse.add_many(self._loaded_docs)
            self._loaded_docs = []

    def add(self, slots: Sequence[int], mems: Sequence[Memory], page_of_id: dict[int, int] | None = None,
            terms: Sequence[list[str]] | None = None) -> None:
        """New (or loaded) versions: each joins its page (at load) or its session's ring (``terms``: their
        texts' tokens, when the caller has them)."""
        rows = self.feat.rows([mem.text for mem in mems], terms)
        self.df.add(rows)
        self.unit_of = grown(self.unit_of, max(slots, default=-1) + 1)
        for slot, mem, row in zip(slots, mems, rows):
            page_id = page_of_id.get(mem.id) if page_of_id else None
            if page_id is not None and page_id in self.pages:
                page = self.pages[page_id]
                self.page_slots.setdefault(page_id, array("i")).append(slot)
                self.unit_of[slot] = page_id
                self.table.tier[slot] = self._page_tier(page)
                texts, page_slots, page_rows = self._loading.setdefault(page_id, ([], [], []))
                texts.append(mem.text)
                page_slots.append(slot)
                page_rows.append(row)
                if len(texts) == len(page.members):
                    self._complete_load(page, *self._loading.pop(page_id))
                continue
            code = int(self.table.session[slot])
            ring = self.rings.setdefault(code, [])
            ring.append(slot)
            if len(ring) > self.cfg.stm_capacity:
                self.overflowing.add(code)
            # A batch's rows are views of the batch's arrays: a short-term turn outlives the batch (its
            # session's newest turns stay for good), and its view would keep the whole batch alive.
            self.stm_rows[slot] = row = _owned(row)
            self.stm_text[slot] = mem.text
            self._stm_bytes += _stm_nbytes(row, mem.text)
            self.unit_of[slot] = ring_unit(code)
            self.table.tier[slot] = TIER_STM
            self.dirty_rings.add(code)
            self._unit_changed(ring_unit(code))

    def remove(self, slots: Sequence[int], mems: Sequence[Memory]) -> set[int]:
        """Purged versions leave their unit, the frequencies and the caches; returns the pages touched."""
        texts = {mem.id: mem.text for mem in mems}
        pages: set[int] = set()
        for slot, mem in zip(slots, mems):
            unit = int(self.unit_of[slot])
            self.unit_of[slot] = 0
            self._unit_changed(unit)
            if unit < 0:
                code = -unit - 2
                ring = self.rings.get(code, [])
                if slot in ring:
                    ring.remove(slot)
                self._ring_shrank(code)
                self._drop_stm(slot)
                self._index_now(unit, self._ring_text(code) if ring else None, None)
            elif unit > 0 and unit in self.pages:
                pages.add(unit)
                members = self.page_slots.get(unit, [])
                if slot in members:
                    members.remove(slot)
                page = self.pages[unit]
                old_text = self._page_text(page, texts)
                page.members = [i for i in page.members if i != mem.id]
                # A purged text must leave the coarse index now, not at the next scheduler step.
                self._index_now(unit, self._page_text(page) if page.members else None, old_text)
        for page_id in pages:
            self._drop_block(page_id)
            self.clear_knowledge(page_id)
            page = self.pages[page_id]
            page.consolidated, page.summary, page.keywords, page.entities, page.facts = False, "", [], [], 0
            self.set_tier(page_id, TIER_MTM)  # its knowledge is gone until the scheduler consolidates it again
            if page.closed:
                self.mark_unconsolidated(page_id)
            if not page.members:
                self.unconsolidated.discard(page_id)
                del self.pages[page_id]
                self.page_slots.pop(page_id, None)
                self.dirty_heat.discard(page_id)
                for code, open_id in list(self.open_page.items()):
                    if open_id == page_id:
                        del self.open_page[code]
        self.df.add(self.feat.rows([mem.text for mem in mems]), sign=-1)
        self.feat.forget(texts.values())
        self._stm_block = None
        return pages

    def pages_holding(self, ids: Iterable[int], slot_of: IdSlots) -> set[int]:
        """Pages that hold (or are being given) any of these memory ids. Safe from the writer thread."""
        found = set()
        for memory_id in ids:
            page_id = self.pending.get(memory_id)
            if page_id is None:
                slot = slot_of.get(memory_id)
                unit = int(self.unit_of[slot]) if slot is not None and slot < len(self.unit_of) else 0
                page_id = unit if unit > 0 else None
            if page_id is not None:
                found.add(page_id)
        return found

    # ------------------------------------------------------------------ pages

    def install_page(self, page: PageRecord, slots: list[int], rows: list[Row]) -> None:
        """Put a formed or extended page in place, moving its new turns out of STM (after the commit)."""
        old = self.pages.get(page.id)
        if old is None:
            old_text = None
        elif page.id in self.pending_docs:
            old_text = self.pending_docs[page.id]
        elif page.id in self._indexed:
            old_text = self._indexed[page.id]
        else:
            old_text = self._page_text(old)
        texts = [self.stm_text.get(slot, "") for slot in slots]
        if old is None:
            self.page_order.append(page.id)
            self.session_pages.setdefault(page.session, []).append(page.id)
        self.pages[page.id] = page
        self.next_page_id = max(self.next_page_id, page.id + 1)
        moving = set(slots)
        self._unit_changed(page.id)
        for code in {int(self.table.session[slot]) for slot in slots}:
            self._unit_changed(ring_unit(code))
            ring = self.rings.get(code)
            if ring and moving.issuperset(ring[:len(moving)]) and len(ring) >= len(moving):
                del ring[:len(moving)]  # paging takes a ring's oldest turns: O(page), not O(ring)
            elif ring:
                ring[:] = [s for s in ring if s not in moving]
            self._ring_shrank(code)
            self.dirty_rings.add(code)
        for slot in slots:
            self._drop_stm(slot)
        self.page_slots.setdefault(page.id, array("i")).extend(slots)
        index = np.asarray(slots, dtype=np.int64)
        self.unit_of[index] = page.id
        self.table.tier[index] = TIER_MTM
        if old is None or page.id in self.blocks:
            previous = self.blocks.get(page.id)
            self._set_block(page.id, _concat(([] if previous is None else [previous]) + [FineBlock.of(slots, rows)]))
        if slots or page.id not in self.coarse.slot_of:
            self.pending_docs[page.id] = "\n".join(([old_text] if old_text else []) + texts)
        code = -1 if page.session is None else self.sessions.code(page.session)
        if page.closed and not page.consolidated:
            self.mark_unconsolidated(page.id)
        if not page.closed:
            self.open_page[code] = page.id
        elif self.open_page.get(code) == page.id:
            del self.open_page[code]

    def _page_text(self, page: PageRecord, extra: dict[int, str] | None = None) -> str:
        texts = self.load_texts(page.members)
        if extra:
            texts = {**extra, **texts}
        return "\n".join(texts[i] for i in page.members if i in texts)

    def _page_tier(self, page: PageRecord) -> int:
        return TIER_LTM if page.consolidated and self.page_heat(page) < self.cfg.cold_heat else TIER_MTM

    def page_heat(self, page: PageRecord, now: float | None = None) -> float:
        return page_heat(page.hits, page.touched_at, len(page.members), time.time() if now is None else now,
                         self.cfg.heat_half_life_s, self.cfg.heat_size_weight)

    def touch(self, page_ids: Iterable[int], now: float) -> None:
        """A recall returned turns of these pages: one hit each (heat.py), promotion if they got hot."""
        for page_id in page_ids:
            page = self.pages.get(page_id)
            if page is None:
                continue
            page.hits = touched(page.hits, page.touched_at, now, self.cfg.heat_half_life_s)
            page.touched_at = now
            self.dirty_heat.add(page_id)
            if page_id in self.blocks:
                heapq.heappush(self.evict_heap, (self.eviction_key(page), self.ns_id, page_id))
            if self.table.tier[self.page_slots[page_id][0]] == TIER_LTM and self.page_heat(page, now) >= self.cfg.hot_heat:
                self.set_tier(page_id, TIER_MTM)
                self.counters.promotions += 1

    def set_tier(self, page_id: int, tier: int) -> None:
        slots = self.page_slots.get(page_id)
        if slots:
            self.table.tier[np.asarray(slots, dtype=np.int64)] = tier

    # ------------------------------------------------------------------ residency

    def block(self, page_id: int) -> FineBlock:
        """The page's fine vectors, faulted in from the store if they are not resident."""
        return self.blocks_for([page_id])[0]

    def blocks_for(self, page_ids: Sequence[int]) -> list[FineBlock]:
        """The fine vectors of these pages; the missing ones are faulted in together (one store read
        transaction and one featurisation for all of them: per-call overhead dominates small pages)."""
        missing = [p for p in page_ids if p not in self.blocks]
        if self.prefetched:
            used = self.prefetched.intersection(page_ids).difference(missing)
            self.counters.prefetch_used += len(used)
            self.prefetched -= used
        if missing:
            self._load_blocks(missing)
            self.counters.faults += len(missing)
        return [self.blocks[p] for p in page_ids]

    def warm(self, page_ids: Sequence[int]) -> None:
        """Make pages resident ahead of need (prefetching): loaded like a fault, but not counted as one."""
        missing = [p for p in page_ids if p not in self.blocks and p in self.pages]
        if missing:
            self._load_blocks(missing)
            self.prefetched.update(missing)
            self.counters.prefetched += len(missing)

    def _load_blocks(self, missing: list[int]) -> None:
        """Read these pages' texts and featurise them in one go (per-call overhead dominates small pages)."""
        members = {p: self.pages[p].members for p in missing}
        texts = self.load_texts([i for ids in members.values() for i in ids])
        spans, all_slots, all_texts = [], [], []
        for page_id, ids in members.items():
            slots_by_id = dict(zip(ids, self.page_slots.get(page_id, [])))
            kept = [i for i in ids if i in texts and i in slots_by_id]
            spans.append((page_id, len(all_slots), len(all_slots) + len(kept)))
            all_slots.extend(slots_by_id[i] for i in kept)
            all_texts.extend(texts[i] for i in kept)
        rows = self.feat.rows(all_texts)
        for page_id, start, end in spans:
            self._set_block(page_id, FineBlock.of(all_slots[start:end], rows[start:end]))

    def _set_block(self, page_id: int, block: FineBlock) -> None:
        self._drop_block(page_id)
        self.blocks[page_id] = block
        self.block_bytes += block.nbytes
        heapq.heappush(self.evict_heap, (self.eviction_key(self.pages[page_id]), self.ns_id, page_id))

    def eviction_key(self, page: PageRecord) -> float:
        return eviction_key(page.hits, page.touched_at, len(page.members), self.cfg.heat_half_life_s,
                            self.cfg.heat_size_weight)

    def _drop_block(self, page_id: int) -> bool:
        self.prefetched.discard(page_id)
        block = self.blocks.pop(page_id, None)
        if block is not None:
            self.block_bytes -= block.nbytes
        return block is not None

    def evict(self, page_id: int) -> int:
        """Drop a page's fine vectors from RAM (its text and record stay in the store); returns bytes freed."""
        block = self.blocks.get(page_id)
        if block is None:
            return 0
        if page_id in self.prefetched:
            self.counters.prefetch_wasted += 1
        self._drop_block(page_id)
        self.counters.evictions += 1
        return block.nbytes

    def stm_block(self) -> FineBlock:
        """The fine vectors of the searched part of every ring: its newest stm_capacity turns plus up to
        FINE_OVERFLOW turns waiting to be paged. Beyond that (a burst of writes) older ring turns score
        lexically only until the scheduler pages them, so a backlog does not make every recall scan it.
        Each ring's block is cached until that ring changes: with thousands of sessions, rebuilding all
        of them after every page formed would stall recall."""
        if self._stm_block is None:
            blocks = []
            for code, ring in self.rings.items():
                block = self._ring_blocks.get(code)
                if block is None:
                    slots = self._ring_searched(ring)
                    block = self._ring_blocks[code] = FineBlock.of(slots, [self.stm_rows[s] for s in slots])
                if len(block.slots):
                    blocks.append(block)
            self._stm_block = _concat(blocks) if blocks else FineBlock.of([], [])
            self._stm_index = None
            self._stm_scored = 0
        return self._stm_block

    def stm_index(self) -> BucketIndex | None:
        """stm_block() grouped by bucket, once STM_INDEX_AFTER queries have scored the same block (None
        before): building it costs as much as several plain passes, and every write or page formed
        changes the block, so while writes flow it would be rebuilt for a query or two each time."""
        block = self.stm_block()
        if self._stm_index is None:
            self._stm_scored += 1
            if self._stm_scored < STM_INDEX_AFTER:
                return None
            self._stm_index = BucketIndex.of(block, self.feat.dim)
        return self._stm_index

    def _unit_changed(self, unit: int) -> None:
        """A unit's membership changed: drop what is cached about it."""
        self._arrays.pop(unit, None)
        if unit < 0:
            self._ring_blocks.pop(-unit - 2, None)
            self._stm_block = None
            self._ring_layout = None

    def _ring_proper(self, ring: list[int]) -> list[int]:
        cap = self.cfg.stm_capacity
        return ring[-cap:] if cap > 0 else ring[-1:]

    def _ring_searched(self, ring: list[int]) -> list[int]:
        return ring[-(max(self.cfg.stm_capacity, 1) + FINE_OVERFLOW):]

    # ------------------------------------------------------------------ knowledge

    def install_knowledge(self, page: PageRecord, facts: list[FactRecord]) -> None:
        """A page's consolidation is committed: index its entities, count its facts and, when recall
        searches facts, index them too (replacing earlier ones)."""
        self.clear_knowledge(page.id)
        self.pages[page.id] = page
        self.unconsolidated.discard(page.id)
        self.entities.add(page.id, (e.name for e in page.entities))
        self._page_fact_counts = grown(self._page_fact_counts, page.id + 1)
        self._page_fact_counts[page.id] = len(facts)
        self.fact_count += len(facts)
        if self.keeps_facts:
            self._hold_facts(page, facts)
        shed_knowledge(page)

    def _hold_facts(self, page: PageRecord, facts: list[FactRecord]) -> None:
        """Queue the facts' documents for the knowledge index, with their sources (before the page's
        keywords, part of each document, are shed)."""
        keys, texts = [], []
        for fact in facts:
            key = self._next_fact_key
            self._next_fact_key += 1
            text = fact_document(fact, page)
            self.pending_facts[key] = text  # indexed by flush_docs, in batches, off the request path
            self.fact_sources[key] = array("q", [page.id, *fact.sources]).tobytes()
            keys.append(key)
            texts.append(text)
        self.page_facts[page.id] = keys
        if texts:
            packed = self._fact_texts[page.id] = zlib.compress(_encode_texts(texts), 1)
            self._fact_bytes += len(packed) + _BYTES_OVERHEAD

    def entities_of(self, page_id: int) -> tuple[str, ...]:
        """The (casefolded) entity names of a consolidated page; empty before consolidation."""
        return self.entities.names_of(page_id)

    def fact_source(self, key: int) -> tuple[int, list[int]]:
        """The page and the source memory ids of the knowledge document ``key``."""
        page_id, *sources = array("q", self.fact_sources[key])
        return page_id, sources

    def clear_knowledge(self, page_id: int) -> None:
        self.entities.remove(page_id)
        if page_id < len(self._page_fact_counts):
            self.fact_count -= int(self._page_fact_counts[page_id])
            self._page_fact_counts[page_id] = 0
        keys = self.page_facts.pop(page_id, [])
        packed = self._fact_texts.pop(page_id, None)
        texts = [] if packed is None else _decode_texts(zlib.decompress(packed))
        if packed is not None:
            self._fact_bytes -= len(packed) + _BYTES_OVERHEAD
        texts += [""] * (len(keys) - len(texts))  # never short; "" would make the index sweep for it
        for key, text in zip(keys, texts):
            if self.pending_facts.pop(key, None) is None:
                self.knowledge.drop(key, text)
            self.fact_sources.pop(key, None)

    # ------------------------------------------------------------------ coarse documents

    def refresh(self, deadline: float | None = None) -> int:
        """Queue the coarse documents of rings that changed since the last call (until ``deadline``, a
        ``time.perf_counter()`` value, when given); returns how many rings are still to do."""
        while self.dirty_rings:
            code = self.dirty_rings.pop()
            ring, unit = self.rings.get(code), ring_unit(code)
            text = self._ring_text(code) if ring else None
            if text is not None and text == self._indexed.get(unit):
                # Paging takes a ring's oldest turns; its document is its newest ones, often unchanged.
                self.pending_docs.pop(unit, None)
            else:
                self.pending_docs[unit] = text
            if not ring:
                self.rings.pop(code, None)
                self._ring_layout = None
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return len(self.dirty_rings)

    def _ring_text(self, code: int) -> str:
        # The ring proper is its newest stm_capacity turns; older ones only wait for the scheduler to
        # page them (a backlog after a burst of writes) and share the ring's coarse score meanwhile.
        newest = self._ring_proper(self.rings.get(code, []))
        return "\n".join(self.stm_text[s] for s in newest if s in self.stm_text)

    def flush_docs(self, deadline: float, batch: int = DOC_BATCH) -> int:
        """Index queued coarse and knowledge documents, ``batch`` at a time, until ``deadline`` (a
        ``time.perf_counter()`` value; at least one batch); returns how many are still queued."""
        while self.pending_docs:
            self._index_docs(list(islice(self.pending_docs, batch)))
            if time.perf_counter() >= deadline:
                return len(self.pending_docs) + len(self.pending_facts)
        while self.pending_facts:
            keys = list(islice(self.pending_facts, batch))
            self.knowledge.add_many([(key, self.pending_facts.pop(key)) for key in keys])
            if time.perf_counter() >= deadline:
                break
        if self._trim_when_drained and not self.pending_docs and not self.pending_facts:
            self._after_load_drained()
        return len(self.pending_docs) + len(self.pending_facts)

    def _after_load_drained(self) -> None:
        """The documents queued by a load are indexed: give back the room that bulk indexing left (the
        posting lists' growth, and the queues' tables, which a dict never shrinks by itself)."""
        self._trim_when_drained = False
        self.coarse.index.trim()
        self.knowledge.index.trim()
        self.pending_docs, self.pending_facts = {}, {}

    def _index_docs(self, units: list[int]) -> None:
        """(Re-)index queued coarse documents together: one removal pass for the replaced ones, one batch
        insert for all (a page formed or extended per document would cost several times more)."""
        replaced, added = [], []
        for unit in units:
            text = self.pending_docs.pop(unit)
            old_text = self._old_text(unit, None)
            if unit in self.coarse.slot_of:
                replaced.append((unit, old_text))
            if text is not None:
                added.append((unit, text))
                if unit < 0 or (unit in self.pages and not self.pages[unit].closed):
                    self._indexed[unit] = text
        self.coarse.drop_many(replaced)
        self.coarse.add_many(added)

    def _old_text(self, unit: int, old_text: str | None) -> str | None:
        """The text a unit is indexed under (forgotten from ``_indexed``): known exactly for rings and
        open pages, rebuilt from the page's turns for closed ones; ``old_text`` when neither."""
        old_text = self._indexed.pop(unit, old_text)
        if old_text is None and unit > 0 and unit in self.coarse.slot_of and unit in self.pages:
            old_text = self._page_text(self.pages[unit])
        return old_text

    def _index_now(self, unit: int, text: str | None, old_text: str | None) -> None:
        """(Re-)index a unit's coarse document now; ``old_text`` is its indexed text when known."""
        self.pending_docs.pop(unit, None)
        old_text = self._old_text(unit, old_text)
        if text is None:
            self.coarse.drop(unit, old_text)
            return
        self.coarse.put(unit, text, old_text)
        if unit < 0 or (unit in self.pages and not self.pages[unit].closed):
            self._indexed[unit] = text

    def mark_unconsolidated(self, page_id: int) -> None:
        if page_id not in self.unconsolidated:
            self.unconsolidated.add(page_id)
            heapq.heappush(self._waiting, page_id)

    def oldest_unconsolidated(self, n: int) -> list[int]:
        """The ``n`` lowest page ids waiting for consolidation (O(n log pages), not a scan)."""
        out: list[int] = []
        while self._waiting and len(out) < n:
            page_id = heapq.heappop(self._waiting)
            if page_id in self.unconsolidated and (not out or page_id != out[-1]):
                out.append(page_id)
        for page_id in out:
            heapq.heappush(self._waiting, page_id)
        return out

    def ring_layout(self) -> RingLayout:
        """Every ring as a candidate unit, laid out for the fine stage (cached until a ring changes):
        rings are candidates of every query, and with thousands of sessions a per-ring loop per query
        would cost more than the scoring."""
        if self._ring_layout is None:
            units = np.asarray(sorted(ring_unit(code) for code in self.rings), dtype=np.int64)
            arrays = [self.unit_array(int(u)) for u in units]
            lengths = np.asarray([len(a) for a in arrays], dtype=np.int64)
            slots = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
            self._ring_layout = RingLayout(units, lengths, slots)
        return self._ring_layout

    def ring_docs(self) -> np.ndarray:
        """The coarse document slot of each unit of ring_layout() (-1: not indexed yet)."""
        layout, version = self.ring_layout(), self.coarse.version
        cached = self._ring_docs
        if cached is None or cached[0] != version or cached[1] is not layout:
            slot_of = self.coarse.slot_of
            docs = np.asarray([slot_of.get(int(u), -1) for u in layout.units], dtype=np.int64)
            self._ring_docs = cached = (version, layout, docs)
        return cached[2]

    def unit_members(self, unit: int) -> Sequence[int]:
        """A unit's turns in order: a page's members, or the searched part of a ring (see stm_block)."""
        return self._ring_searched(self.rings.get(-unit - 2, [])) if unit < 0 else self.page_slots.get(unit, [])

    def unit_array(self, unit: int) -> np.ndarray:
        """A unit's slots in order as an int64 array (cached until its membership changes)."""
        slots = self._arrays.get(unit)
        if slots is None:
            slots = self._arrays[unit] = np.asarray(self.unit_members(unit), dtype=np.int64)
        return slots

    # ------------------------------------------------------------------ accounting

    def _ring_shrank(self, code: int) -> None:
        if len(self.rings.get(code, ())) <= self.cfg.stm_capacity:
            self.overflowing.discard(code)

    def _drop_stm(self, slot: int) -> None:
        row, text = self.stm_rows.pop(slot, None), self.stm_text.pop(slot, None)
        self._stm_bytes -= _stm_nbytes(row, text)

    def stm_bytes(self) -> int:
        """RAM of the short-term turns' vectors and texts (kept as they change: summing it over a million
        waiting turns took 0.2 s of the event loop per `memosd tiers`)."""
        return self._stm_bytes

    def always_resident_bytes(self) -> int:
        """Coarse, knowledge and entity indexes, frequencies, rings, page records: what eviction cannot drop."""
        return (self.coarse.index.resident_bytes() + self.knowledge.index.resident_bytes() + self.df.nbytes
                + self.unit_of.nbytes + self.stm_bytes() + 400 * len(self.pages)
                + (self._stm_index.nbytes if self._stm_index is not None else 0)
                + self._fact_bytes + self.entities.nbytes())


_STR_OVERHEAD = 49
"""Bytes of a str object beyond its characters (ASCII)."""
_BYTES_OVERHEAD = 33
"""Bytes of a bytes object beyond its contents."""
_encode_texts = msgspec.msgpack.Encoder().encode
_decode_texts = msgspec.msgpack.Decoder(list[str]).decode


def _stm_nbytes(row: Row | None, text: str | None) -> int:
    return (row_nbytes(row) if row is not None else 0) + (len(text) + _STR_OVERHEAD if text is not None else 0)


@dataclass(frozen=True, slots=True)
class RingLayout:
    """Every ring's searched turns, concatenated: ``slots[sum(lengths[:i]):][:lengths[i]]`` are unit
    ``units[i]``'s, oldest first."""

    units: np.ndarray
    lengths: np.ndarray
    slots: np.ndarray


def _owned(row: Row) -> Row:
    """``row`` in arrays of its own (a copy of views into a larger array)."""
    buckets, weights = row
    if buckets.base is None and weights.base is None:
        return row
    return buckets.copy(), weights.copy()


def shed_knowledge(page: PageRecord) -> None:
    """Drop a page's summary, keywords and entities from its RAM copy once they are indexed: the tiers
    decide by members, times, heat and state alone, and ``page``/``entity`` read them from the store.
    They were about a third of the RAM of a settled store. (A RAM copy is written back to the store
    only while its page is open, before it has any knowledge.)"""
    page.summary, page.keywords, page.entities = "", [], []


def fact_document(fact: FactRecord, page: PageRecord) -> str:
    """The text a fact is found by: the fact, its resolved date, and its page's keywords."""
    date = fact.meta.get("date") if isinstance(fact.meta, dict) else None
    return " ".join(part for part in (fact.text, str(date) if date else "", " ".join(page.keywords)) if part)


def _concat(blocks: list[FineBlock]) -> FineBlock:
    if len(blocks) == 1:
        return blocks[0]
    return FineBlock(np.concatenate([b.slots for b in blocks]), np.concatenate([b.buckets for b in blocks]),
                     np.concatenate([b.weights for b in blocks]))
