"""Bringing a namespace's state from an index snapshot forward to the store, from the change log.

The log (store/marks.py) names every memory and page a write changed since the snapshot. Each is set
to what the store holds now, whatever happened to it in between, in the order the live daemon would
have done it: memories first (purged ones leave every index, new ones join short-term memory, the
validity and forgetting of the others follow the store), then pages (formed or extended pages take
their turns out of short-term memory, consolidated ones get their knowledge). Setting a record to its
final state is idempotent, so the entries can be merged and each record visited once.

Whatever does not fit that picture (a page the store no longer has but RAM still does, a purged
memory without its logged record, a page member that is not waiting in short-term memory) raises
:class:`Unreplayable`, and the caller rebuilds the namespace from the store instead.
"""

from __future__ import annotations

import time

import lmdb

from ..store import keys
from ..store.marks import Changes
from ..tiers import records
from .namespace import NamespaceState
from .records import decode_memory
from .slots import INF


class Unreplayable(Exception):
    """The logged changes cannot bring this state forward; rebuild the namespace instead."""


def bring_forward(state: NamespaceState, txn: lmdb.Transaction, dbs: dict, changes: Changes) -> None:
    """Set every memory and page of ``changes`` in ``state`` to what the store holds (``dbs``: the
    environment's sub-databases), then index the coarse documents that changed."""
    _memories(state, txn, dbs["memories"], changes)
    _pages(state, txn, dbs, changes)
    tiers = state.tiers
    tiers.refresh()
    while tiers.flush_docs(time.perf_counter() + 3600.0):
        pass


def _memories(state: NamespaceState, txn: lmdb.Transaction, db, changes: Changes) -> None:
    gone, added, kept = [], [], []
    for memory_id in sorted(changes.memories):
        raw = txn.get(keys.memory_key(state.ns_id, memory_id), db=db)
        known = memory_id in state.slot_of
        if raw is None:
            if known:
                before = changes.deleted.get(memory_id)
                if before is None:
                    raise Unreplayable(f"memory {memory_id} was deleted but its record was not logged")
                gone.append(decode_memory(before))
            continue
        (kept if known else added).append(decode_memory(raw))
    state.remove_many(gone)
    for mem in kept:  # what a stored version can change: its validity and whether it is forgotten
        state.supersede(mem.id, INF if mem.valid_to is None else mem.valid_to)
        state.set_forgotten(mem.id, mem.forgotten_at)
    state.add_many(added)  # in id order, into short-term memory; the pages below take theirs


def _pages(state: NamespaceState, txn: lmdb.Transaction, dbs: dict, changes: Changes) -> None:
    tiers = state.tiers
    for page_id in sorted(changes.pages):
        raw = txn.get(records.page_key(state.ns_id, page_id), db=dbs["pages"])
        held = tiers.pages.get(page_id)
        if raw is None:
            if held is not None:
                raise Unreplayable(f"page {page_id} is gone from the store but not from RAM")
            continue
        page = records.decode_page(raw)
        members = set(page.members)
        had = set(held.members) if held is not None else set()
        if had - members:
            raise Unreplayable(f"page {page_id} lost members that are still in RAM")
        new = [i for i in page.members if i not in had]
        slots = [state.slot_of.get(i) for i in new]
        if any(slot is None or slot not in tiers.stm_rows for slot in slots):
            raise Unreplayable(f"page {page_id} holds turns that are not waiting in short-term memory")
        if held is not None:  # heat is not logged: keep RAM's
            page.hits, page.touched_at = held.hits, held.touched_at
        knowledge = page.consolidated
        if held is None or new or held.closed != page.closed:
            # Installed as formed; its knowledge (if any by now) goes in below, as consolidation does.
            page.consolidated = False
            tiers.install_page(page, slots, [tiers.stm_rows[slot] for slot in slots])
            page.consolidated = knowledge
        if knowledge:
            facts = [records.decode_fact(value) for _, value in
                     keys.items_with_prefix(txn, dbs["knowledge"], records.fact_prefix(state.ns_id, page_id))]
            tiers.install_knowledge(page, facts)
        elif held is not None and held.consolidated:
            raise Unreplayable(f"page {page_id} lost its knowledge without losing a member")
        else:
            tiers.pages[page_id] = page
