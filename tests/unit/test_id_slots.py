"""Memory id -> slot (engine/id_slots.py) behaves as the dict it replaced, for dense and imported ids."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from memosd.engine.id_slots import IdSlots


def test_it_agrees_with_a_dict_through_writes_purges_imports_and_a_pickle():
    rng = random.Random(11)
    ids, model = IdSlots(), {}
    next_id = 1
    for step in range(20_000):
        roll = rng.random()
        if roll < 0.6:  # the allocator's next id
            ids[next_id] = model[next_id] = rng.randrange(50_000)
            next_id += 1
        elif roll < 0.62:  # an import: any id, some far past the others
            memory_id = rng.choice([rng.randrange(1, 2 * next_id), rng.randrange(10**9, 2**62)])
            ids[memory_id] = model[memory_id] = rng.randrange(50_000)
            next_id = max(next_id, memory_id + 1) if memory_id < 10**9 else next_id
        elif roll < 0.9 and model:  # a purge
            memory_id = rng.choice(list(model))
            assert ids.pop(memory_id) == model.pop(memory_id)
        else:  # reads, present or not
            memory_id = rng.randrange(0, next_id + 10)
            assert ids.get(memory_id) == model.get(memory_id)
            assert (memory_id in ids) == (memory_id in model)
        if step % 5000 == 4999:
            ids = pickle.loads(pickle.dumps(ids))  # as the index snapshot stores it
    assert len(ids) == len(model) and set(ids) == set(model)
    assert all(ids[i] == slot and isinstance(ids[i], int) for i, slot in model.items())
    assert ids.pop(-5) is None and ids.get(2**63 - 1, "absent") == "absent" and "a string" not in ids
    some = next(iter(model))
    assert np.int64(some) in ids and ids.get(np.int64(some)) == model[some]  # ids read from numpy arrays
    with pytest.raises(KeyError):
        ids[2**62 + 1]


def test_dense_ids_live_in_the_array_and_far_ones_do_not_grow_it():
    ids = IdSlots()
    for memory_id in range(1, 100_001):
        ids[memory_id] = memory_id - 1
    ids[2**40] = 7  # an imported id far past the rest
    assert ids.nbytes() < 1_000_000  # about 4 bytes a memory, not 8 TB for the one far id
    assert ids[2**40] == 7 and ids[100_000] == 99_999 and len(ids) == 100_001
    assert list(ids)[:3] == [1, 2, 3] and list(ids)[-1] == 2**40


def test_ids_outside_the_array_survive_its_growth():
    ids = IdSlots()
    ids[-3], ids[5000] = 9, 8  # not ids the allocator makes (-3), or past the array's first size (5000)
    for memory_id in range(1, 3000):  # the array grows past 5000: that id moves into it
        ids[memory_id] = memory_id
    assert ids[-3] == 9 and ids[5000] == 8 and len(ids) == 3001
    assert sorted(ids) == [-3, *range(1, 3000), 5000]


def test_values_may_be_any_int64_but_the_absent_marker():
    # The coarse index maps document slots back to unit keys, and a ring's unit key is negative.
    keys = IdSlots(np.int64)
    keys[0], keys[1], keys[2] = -7, 2**40, 3
    keys[-9] = np.int64(-5)  # a ring's key far outside the array, given as a numpy integer
    assert keys[-9] == -5 and type(keys[-9]) is int
    del keys[-9]
    del keys[2]
    assert keys[0] == -7 and keys[1] == 2**40 and 2 not in keys and len(keys) == 2
    with pytest.raises(KeyError):
        del keys[2]
    with pytest.raises(ValueError):
        keys[3] = int(np.iinfo(np.int64).min)  # the marker of an absent key cannot be a value
    with pytest.raises(ValueError):
        IdSlots()[1] = 2**31  # past int32, the slot maps' values
