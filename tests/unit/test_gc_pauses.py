"""Freezing the survivors of full collections, and reclaiming frozen cyclic garbage when quiet."""

import gc
import time
import weakref

import pytest

from memosd.service.gc_pauses import PausePolicy


class Node:
    def __init__(self):
        self.other = self


@pytest.fixture
def policy():
    policy = PausePolicy(last_request_at=lambda: float("-inf"))  # no request ever: always quiet
    gc.callbacks.append(policy._on_collection)
    yield policy
    gc.callbacks.remove(policy._on_collection)
    gc.unfreeze()


def test_a_full_collection_freezes_what_survived_it(policy):
    gc.unfreeze()
    kept = [Node() for _ in range(1000)]
    gc.collect()
    assert policy.freezes >= 1
    assert gc.get_freeze_count() >= len(kept)  # the next full collection will not visit them


def test_frozen_cyclic_garbage_is_reclaimed_when_quiet(policy):
    node = Node()
    alive = weakref.ref(node)
    gc.collect()  # node survives and is frozen
    del node
    gc.collect()
    assert alive() is not None  # a frozen cycle is not collected...
    policy.reclaim()
    assert alive() is None  # ...until the quiet-time collection of everything
    assert policy.reclaims == 1 and gc.get_freeze_count() > 0


def test_reclaim_waits_for_quiet(policy):
    busy = PausePolicy(last_request_at=time.perf_counter)  # a request just now
    busy._reclaimed_at = float("-inf")
    busy.check()
    assert busy.reclaims == 0
    quiet = PausePolicy(last_request_at=lambda: float("-inf"))
    quiet._reclaimed_at = float("-inf")
    quiet.check()
    assert quiet.reclaims == 1
