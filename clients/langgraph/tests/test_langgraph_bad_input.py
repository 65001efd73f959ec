"""Bad input gets a typed error on the sync and the async path, and nothing stored changes."""

from __future__ import annotations

import asyncio

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from memosd_langgraph import InvalidFilterError, InvalidKeyError, InvalidValueError, MemosdStore

NS = ("docs",)

BAD_OPS = [
    (PutOp(("a.b",), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(("",), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp((), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(("langgraph", "x"), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(("a", 1), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(("a\x00",), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp("docs", "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(("x" * 200,), "k", {"v": 1}), InvalidNamespaceError),
    (PutOp(NS, 5, {"v": 1}), InvalidKeyError),
    (GetOp(NS, None), InvalidKeyError),
    (PutOp(NS, "k", ["not", "a", "mapping"]), InvalidValueError),
    (PutOp(NS, "k", {"s": {1, 2}}), InvalidValueError),
    (PutOp(NS, "k", {"f": float("nan")}), InvalidValueError),
    (PutOp(NS, "k", {"v": 1}, index="title"), InvalidValueError),
    (PutOp(NS, "k", {"v": 1}, index=[1]), InvalidValueError),
    (PutOp(NS, "k", {"v": 1}, ttl=5.0), NotImplementedError),
    (SearchOp(("a.b",)), InvalidNamespaceError),
    (SearchOp(NS, filter={"v": {"$regex": "a"}}), InvalidFilterError),
    (SearchOp(NS, filter={"v": {"$gt": "many"}}), InvalidFilterError),
    (SearchOp(NS, filter={"v": {"w": {"$in": [1]}}}), InvalidFilterError),
    (SearchOp(NS, filter=["v"]), InvalidFilterError),
    (SearchOp(NS, limit=-1), InvalidFilterError),
    (SearchOp(NS, offset=-3), InvalidFilterError),
    (SearchOp(NS, limit="10"), InvalidFilterError),
    (SearchOp(NS, query=42), InvalidFilterError),
    (ListNamespacesOp(max_depth=0), InvalidFilterError),
    (ListNamespacesOp(limit=-1), InvalidFilterError),
    (ListNamespacesOp(match_conditions=(MatchCondition("middle", ("a",)),)), InvalidFilterError),
    (ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a.b",)),)), InvalidNamespaceError),
    ("not an op", ValueError),
]


def _ids(case):
    op, _ = case
    return f"{type(op).__name__}-{BAD_OPS.index(case)}"


@pytest.fixture
def seeded(store):
    store.put(NS, "keep", {"text": "stored before the bad batch", "v": 1})
    return store


def _state(store):
    return [(i.key, i.value) for i in store.search((), limit=100)], store.list_namespaces()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", BAD_OPS, ids=_ids)
def test_bad_op_is_refused_before_anything_is_written(seeded, lg_daemon, prefix, case, mode):
    bad, error = case
    before = _state(seeded)
    # A valid write in the same batch must not happen either: the whole batch is checked first.
    ops = [PutOp(NS, "keep", {"text": "overwritten?"}), PutOp(("fresh",), "new", {"v": 2}), bad]
    with pytest.raises(error):
        if mode == "sync":
            seeded.batch(ops)
        else:
            asyncio.run(seeded.abatch(ops))
    assert _state(seeded) == before
    with lg_daemon.client(namespace=f"{prefix}:docs") as client:
        assert len(client.list(include_superseded=True).memories) == 1


def test_bad_input_through_the_convenience_methods(store):
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.get(("a.b",), "k")
    with pytest.raises(NotImplementedError):
        store.put(NS, "k", {"v": 1}, ttl=1.0)
    with pytest.raises(InvalidFilterError):
        store.search(NS, filter={"n": {"$like": 1}})
    with pytest.raises(InvalidValueError):
        asyncio.run(store.aput(NS, "k", {"when": object()}))
    with pytest.raises(InvalidFilterError):
        asyncio.run(store.alist_namespaces(max_depth=-1))
    assert store.list_namespaces() == []


def test_bad_construction():
    with pytest.raises(ValueError, match="prefix"):
        MemosdStore(prefix="a:b")
    with pytest.raises(ValueError, match="prefix"):
        MemosdStore(prefix="")
    with pytest.raises(ValueError, match="fields"):
        MemosdStore(fields=[])


def test_closed_store_refuses(lg_daemon, prefix):
    store = MemosdStore(lg_daemon.endpoint, prefix=prefix)
    store.put(NS, "k", {"v": 1})
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get(NS, "k")
