"""The same operations against LangGraph's own InMemoryStore and MemosdStore on a real daemon.

Results must agree, except where LangGraph leaves the order open: search results
are compared as sets (memosd ranks by its own hybrid retrieval; InMemoryStore
without embeddings does not rank), and pages are checked to tile the full result.
Both the sync and the async methods are exercised.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

NAMESPACES = [
    ("docs", "alpha"),
    ("docs", "beta"),
    ("docs", "alpha", "drafts"),
    ("docsx",),                      # a string prefix of "docs", not a tuple prefix
    ("users", "u-1", "prefs"),
    ("users", "Zoë Ünïcode_2", "prefs"),
    ("cache", "v1"),
    ("cache", "x", "v1"),
]

TOPICS = ["Lisbon trams run up steep hills", "green tea in the morning", "a piano recital on Friday",
          "the bicycle needs a new chain", "Porto has a famous bridge", "sourdough bread recipe"]


def value(i: int, **extra) -> dict:
    return {"text": TOPICS[i % len(TOPICS)], "kind": "note" if i % 3 else "task", "score": i,
            "meta": {"lang": "en" if i % 2 else "pt", "n": i}, "labels": ["a", str(i % 2)], **extra}


def view(items) -> list:
    return sorted((tuple(it.namespace), it.key, json.dumps(it.value, sort_keys=True)) for it in items)


def one(item):
    return None if item is None else (tuple(item.namespace), item.key, item.value)


class Pair:
    """Calls one method on both stores, sync or async, and returns both answers."""

    def __init__(self, reference, store, mode: str):
        self.reference, self.store, self.mode = reference, store, mode

    async def call(self, method: str, *args, **kwargs):
        if self.mode == "async":
            return (await getattr(self.reference, "a" + method)(*args, **kwargs),
                    await getattr(self.store, "a" + method)(*args, **kwargs))
        return getattr(self.reference, method)(*args, **kwargs), getattr(self.store, method)(*args, **kwargs)


SEARCHES = [
    dict(namespace_prefix=()),
    dict(namespace_prefix=("docs",)),
    dict(namespace_prefix=("docs", "alpha")),
    dict(namespace_prefix=("docsx",)),
    dict(namespace_prefix=("nothing",)),
    dict(namespace_prefix=(), filter={"kind": "note"}),
    dict(namespace_prefix=(), filter={"score": {"$gte": 5}}),
    dict(namespace_prefix=(), filter={"score": {"$gt": 2, "$lt": 9}, "kind": {"$ne": "task"}}),
    dict(namespace_prefix=("users",), filter={"meta": {"lang": "en"}}),
    dict(namespace_prefix=(), filter={"labels": ["a", "1"]}),
    dict(namespace_prefix=(), filter={"kind": {"$eq": "task"}, "meta": {"n": {"$lte": 6}}}),
    dict(namespace_prefix=(), filter={"kind": "nope"}),
    dict(namespace_prefix=(), query="tea in the morning"),
    dict(namespace_prefix=("docs",), query="bicycle chain", filter={"kind": "note"}),
    dict(namespace_prefix=(), query="zzz-no-such-word", filter={"score": {"$lt": 4}}),
]

LISTINGS = [
    dict(),
    dict(prefix=("docs",)),
    dict(prefix=("docs", "alpha")),
    dict(suffix=("v1",)),
    dict(suffix=("prefs",), prefix=("users",)),
    dict(prefix=("users", "*", "prefs")),
    dict(prefix=("cache", "*")),
    dict(max_depth=1),
    dict(max_depth=2),
    dict(prefix=("docs",), max_depth=2),
    dict(limit=3),
    dict(limit=3, offset=3),
    dict(offset=100),
]


async def scenario(pair: Pair) -> None:
    # Puts: several keys in every namespace, including keys memosd cannot use verbatim as a tag.
    keys = ["k0", "k1", "key with spaces", "ключ", "x" * 300]
    n = 0
    for ns in NAMESPACES:
        for key in keys[: 2 + n % 4]:
            await pair.call("put", ns, key, value(n))
            n += 1
    # Overwrites (memosd supersedes) and deletes (none empties a namespace).
    await pair.call("put", ("docs", "alpha"), "k0", value(40, revised=True))
    await pair.call("put", ("docs", "alpha"), "k0", value(41, revised=2))
    await pair.call("put", ("users", "u-1", "prefs"), "k1", {"theme": "dark", "score": 7, "kind": "note"})
    await pair.call("delete", ("docs", "beta"), "k1")
    await pair.call("delete", ("cache", "x", "v1"), "key with spaces")
    await pair.call("delete", ("docs", "alpha"), "never-existed")

    for ns in NAMESPACES:
        for key in [*keys, "missing"]:
            ref, got = await pair.call("get", ns, key)
            assert one(got) == one(ref), (ns, key)

    for spec in SEARCHES:
        spec = dict(spec)
        prefix = spec.pop("namespace_prefix")
        ref, got = await pair.call("search", prefix, limit=100, **spec)
        assert view(got) == view(ref), spec
        # Only the two searches built to find nothing may agree on an empty answer.
        assert bool(ref) != (spec.get("filter") == {"kind": "nope"} or prefix == ("nothing",)), spec
        if spec.get("query"):
            assert all(it.score is None or isinstance(it.score, float) for it in got)

    # Limits and offsets: every page has the size the reference has, and the pages tile the full result.
    for spec in [dict(), dict(filter={"kind": "note"}), dict(query="Porto bridge"),
                 dict(query="sourdough", filter={"meta": {"lang": "pt"}})]:
        full_ref, full = await pair.call("search", ("docs",), limit=100, **spec)
        pages = []
        for offset in range(0, len(full) + 2, 2):
            ref, got = await pair.call("search", ("docs",), limit=2, offset=offset, **spec)
            assert len(got) == len(ref), (spec, offset)
            pages.extend(got)
        assert view(pages) == view(full) == view(full_ref), spec
        assert len({(tuple(i.namespace), i.key) for i in pages}) == len(pages), "an item came back twice"
    ref, got = await pair.call("search", (), limit=0)
    assert got == ref == []

    for spec in LISTINGS:
        ref, got = await pair.call("list_namespaces", **spec)
        assert got == ref, spec
        assert got or spec == dict(offset=100), spec

    # A batch: reads see the state before the batch's writes; the last write of a key wins.
    ops = [
        PutOp(("docs", "beta"), "k0", {"text": "first write in batch"}),
        GetOp(("docs", "beta"), "k0"),
        SearchOp(("docs", "beta"), limit=50),
        PutOp(("docs", "beta"), "k0", {"text": "second write in batch"}),
        PutOp(("docs", "gamma"), "new", {"text": "new namespace in batch"}),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("docs",)),)),
    ]
    if pair.mode == "async":
        ref, got = await pair.reference.abatch(ops), await pair.store.abatch(ops)
    else:
        ref, got = pair.reference.batch(ops), pair.store.batch(ops)
    assert [r is None for r in got] == [r is None for r in ref]
    assert one(got[1]) == one(ref[1])
    assert view(got[2]) == view(ref[2])
    assert got[5] == ref[5]
    ref, got = await pair.call("get", ("docs", "beta"), "k0")
    assert one(got) == one(ref) and got.value == {"text": "second write in batch"}
    ref, got = await pair.call("list_namespaces", prefix=("docs",))
    assert got == ref and ("docs", "gamma") in got


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_same_answers_as_inmemorystore(store, mode):
    asyncio.run(scenario(Pair(InMemoryStore(), store, mode)))
