"""A namespace's long-term knowledge and page blocks in RAM (tiers/state.py, tiers/fine.py), in-process."""

from __future__ import annotations

import time

from memosd.config import TiersConfig
from memosd.engine.slots import Interner, SlotTable
from memosd.retrieval import RetrievalConfig
from memosd.tiers.fine import Featurizer
from memosd.tiers.records import EntityRecord, FactRecord, PageRecord
from memosd.tiers.state import TierState


def tiers(cfg: TiersConfig | None = None) -> TierState:
    """A namespace's tiers; by default configured to search its facts (so they are indexed in RAM)."""
    retrieval = RetrievalConfig()
    featurizer = Featurizer(retrieval.hash_dim, retrieval.bigram_weight, retrieval.hash_norm_exponent)
    cfg = cfg or TiersConfig(knowledge_candidates=5)
    return TierState("ns", 1, SlotTable(), {}, Interner(), cfg, featurizer, lambda ids: {})


def page(page_id: int, members: list[int]) -> PageRecord:
    return PageRecord(id=page_id, session="s", members=members, first_time=0.0, last_time=0.0, created_at=0.0,
                      closed=True, consolidated=True, keywords=["kiln", "glaze"],
                      entities=[EntityRecord("Quorvathine", [members[0]])])


def facts(page_id: int, members: list[int], word: str) -> list[FactRecord]:
    return [FactRecord(page=page_id, text=f"Ana met {word} at the studio", sources=[members[0]]),
            FactRecord(page=page_id, text=f"the {word} glaze came out blue", sources=members[1:])]


def found(state: TierState, query: str) -> set[int]:
    return {state.knowledge.key_of[hit.slot] for hit in state.knowledge.index.search(query, 10)}


def test_facts_are_found_until_their_page_is_cleared_and_leave_no_posting_behind():
    state = tiers()
    state.install_knowledge(page(1, [10, 11, 12]), facts(1, [10, 11, 12], "Quorvathine"))
    state.install_knowledge(page(2, [20, 21]), facts(2, [20, 21], "Belvemire"))
    while state.flush_docs(time.perf_counter() + 1):
        pass
    assert found(state, "Quorvathine") == set(state.page_facts[1])
    assert state.fact_source(state.page_facts[1][1]) == (1, [11, 12])
    assert state.entities_of(1) == ("quorvathine",)
    assert state.pages[1].entities == [] and state.pages[1].keywords == []  # indexed, then left to the store

    state.clear_knowledge(1)
    assert found(state, "Quorvathine") == set()
    assert found(state, "Belvemire") == set(state.page_facts[2])
    assert len(state.knowledge) == len(state.fact_sources) == 2
    # Every posting left belongs to page 2's facts.
    slots = {state.knowledge.slot_of[key] for key in state.page_facts[2]}
    index = state.knowledge.index
    for plist in index._bm25.index.lists:
        if plist is not None:
            assert set(plist.view()[0].tolist()) <= slots


def test_a_page_consolidated_again_replaces_its_facts():
    state = tiers()
    state.install_knowledge(page(1, [10, 11, 12]), facts(1, [10, 11, 12], "Quorvathine"))
    state.flush_docs(time.perf_counter() + 1)
    state.install_knowledge(page(1, [10, 11]), facts(1, [10, 11], "Belvemire"))
    state.flush_docs(time.perf_counter() + 1)
    assert found(state, "Quorvathine") == set()
    assert found(state, "Belvemire") == set(state.page_facts[1])
    assert len(state.fact_sources) == 2


def test_facts_are_counted_but_not_held_in_ram_when_recall_does_not_search_them():
    state = tiers(TiersConfig())  # the defaults: no knowledge lookup
    assert not state.keeps_facts
    state.install_knowledge(page(1, [10, 11, 12]), facts(1, [10, 11, 12], "Quorvathine"))
    state.install_knowledge(page(2, [20, 21]), facts(2, [20, 21], "Belvemire"))
    while state.flush_docs(time.perf_counter() + 1):
        pass
    assert state.fact_count == 4
    assert len(state.knowledge) == 0 and not state.fact_sources and not state.page_facts and not state.pending_facts
    # The entity index is kept: `entity` and prefetching read it.
    assert state.entities_of(1) == ("quorvathine",) and set(state.entities.pages_of("Quorvathine").tolist()) == {1, 2}
    assert state.pages[1].entities == [] and state.pages[1].keywords == []

    state.install_knowledge(page(1, [10, 11]), facts(1, [10, 11], "Belvemire")[:1])  # consolidated again
    assert state.fact_count == 3
    state.clear_knowledge(2)
    assert state.fact_count == 1 and state.entities.pages_of("quorvathine").tolist() == [1]


def test_the_fact_count_is_the_same_whether_or_not_facts_are_held_in_ram():
    held, counted = tiers(), tiers(TiersConfig())
    for state in (held, counted):
        state.install_knowledge(page(1, [10, 11, 12]), facts(1, [10, 11, 12], "Quorvathine"))
        state.install_knowledge(page(2, [20, 21]), facts(2, [20, 21], "Belvemire"))
        state.clear_knowledge(1)
    assert held.fact_count == counted.fact_count == len(held.fact_sources) == 2


def test_short_term_turns_written_in_a_batch_do_not_keep_the_batch_in_ram():
    # A batch is featurised into shared arrays; a session's newest turns stay in short-term memory for
    # good, and each used to keep its whole batch's arrays alive (139 MiB at 1M memories).
    from memosd.bench.workload import Workload

    state = tiers()
    mems = Workload(None, seed=3).memories(64)
    slots = [state.table.append() for _ in mems]
    state.add(slots, mems)
    rows = [state.stm_rows[slot] for slot in slots]
    assert len(rows) == 64
    for buckets, weights in rows:
        assert buckets.base is None and weights.base is None  # arrays of their own, not views
    # Still the rows a single text gets (one text goes through the per-text path).
    alone = state.feat.rows([mems[5].text])[0]
    assert rows[5][0].tolist() == alone[0].tolist() and rows[5][1].tolist() == alone[1].tolist()


def test_a_blocks_size_is_known_before_it_is_built():
    # A start makes pages resident only while their blocks fit the budget, sized before they are built.
    from memosd.bench.workload import Workload
    from memosd.tiers.fine import FineBlock

    featurizer = tiers().feat
    rows = featurizer.rows([mem.text for mem in Workload(None, seed=1).memories(8)] + [""])
    assert FineBlock.nbytes_of(rows) == FineBlock.of(list(range(9)), rows).nbytes
    assert FineBlock.nbytes_of([]) == FineBlock.of([], []).nbytes
