"""The entity index of long-term memory (tiers/entities.py): names <-> pages, both ways, through changes."""

from __future__ import annotations

import pickle
import random

from memosd.tiers.entities import EntityIndex


def pages(index: EntityIndex, name: str) -> set[int]:
    return set(index.pages_of(name).tolist())


def test_names_and_pages_are_found_both_ways_casefolded():
    index = EntityIndex()
    assert index.add(1, ["Ana", "Kiln", "ana"]) == ("ana", "kiln")
    index.add(2, ["KILN", "Bruno"])
    assert index.names_of(1) == ("ana", "kiln") and index.names_of(2) == ("bruno", "kiln")
    assert pages(index, "kiln") == {1, 2} and pages(index, "Ana") == {1} and "bruno" in index
    assert index.names_of(3) == () and pages(index, "nobody") == set() and "nobody" not in index
    assert index.add(4, []) == () and index.names_of(4) == ()


def test_a_page_added_again_replaces_its_names_and_a_removed_page_leaves_no_trace():
    index = EntityIndex()
    index.add(1, ["Ana", "Kiln"])
    index.add(2, ["Kiln"])
    index.add(1, ["Bruno"])  # consolidated again
    assert index.names_of(1) == ("bruno",) and pages(index, "ana") == set() and pages(index, "kiln") == {2}
    index.remove(2)
    index.remove(2)  # twice, or a page never added: nothing happens
    index.remove(99)
    assert "kiln" not in index and index.names_of(2) == () and pages(index, "bruno") == {1}


def test_it_agrees_with_plain_dicts_through_many_changes_and_compactions_and_a_pickle():
    # The model: what the dicts of sets it replaced held.
    rng = random.Random(7)
    names = [f"name{i}" for i in range(40)]
    index, by_page = EntityIndex(), {}
    for step in range(3000):
        page_id = rng.randrange(300)
        if rng.random() < 0.35:
            index.remove(page_id)
            by_page.pop(page_id, None)
        else:
            chosen = rng.sample(names, rng.randrange(0, 6))
            index.add(page_id, chosen)
            if chosen:
                by_page[page_id] = set(chosen)
            else:
                by_page.pop(page_id, None)
        if step % 500 == 499:
            index = pickle.loads(pickle.dumps(index))  # as the index snapshot stores it
    for page_id in range(300):
        assert set(index.names_of(page_id)) == by_page.get(page_id, set())
    for name in names:
        assert pages(index, name) == {p for p, held in by_page.items() if name in held}
        assert len(index.pages_of(name)) == len(pages(index, name))  # no page twice
    assert index._used <= 2 * sum(len(v) for v in by_page.values()) + 6  # abandoned runs were compacted
