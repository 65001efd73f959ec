"""What MemosdStore does in memosd: namespaces, keys, versions, deletes, ranking, races, limits."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.store.base import InvalidNamespaceError
from memosd_client import ConnectionFailedError, RequestTimeoutError

from memosd_langgraph import MemosdStore, NamespaceCodec

MEMOSD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def memories(daemon, name, **kwargs):
    with daemon.client(namespace=name) as client:
        return client.list(limit=1000, **kwargs).memories


def test_item_is_one_memory_in_its_own_namespace(store, lg_daemon, prefix):
    store.put(("users", "u-1"), "profile", {"text": "Alice lives in Lisbon", "age": 31})
    [mem] = memories(lg_daemon, f"{prefix}:users.u-1")
    assert mem.tags == ["lg-key:profile"]
    assert mem.idempotency_key == "lg-key:profile"
    assert mem.source == "langgraph"
    assert mem.meta == {"langgraph": {"key": "profile", "value": {"text": "Alice lives in Lisbon", "age": 31}}}
    assert "Alice lives in Lisbon" in mem.text
    assert memories(lg_daemon, f"{prefix}:users") == []


def test_overwrite_supersedes_and_keeps_history(store, lg_daemon, prefix):
    ns, name = ("docs",), f"{prefix}:docs"
    store.put(ns, "d", {"v": 1})
    first = store.get(ns, "d")
    store.put(ns, "d", {"v": 2})
    store.put(ns, "d", {"v": 3})
    item = store.get(ns, "d")
    assert item.value == {"v": 3}
    assert item.created_at == first.created_at and item.updated_at > first.updated_at
    [current] = memories(lg_daemon, name)
    with lg_daemon.client(namespace=name) as client:
        versions = client.history(current.id)
    assert [v.meta["langgraph"]["value"] for v in versions] == [{"v": 1}, {"v": 2}, {"v": 3}]
    assert versions[0].superseded_by == versions[1].id and versions[-1].superseded_by is None
    assert len({v.lineage for v in versions}) == 1


def test_delete_purges_every_version_and_the_namespace_goes_away(store, lg_daemon, prefix):
    ns, name = ("scratch", "s1"), f"{prefix}:scratch.s1"
    store.put(ns, "a", {"v": 1})
    store.put(ns, "a", {"v": 2})
    assert store.list_namespaces() == [ns]
    store.delete(ns, "a")
    assert store.get(ns, "a") is None
    assert memories(lg_daemon, name, include_superseded=True, include_forgotten=True) == []
    assert store.list_namespaces() == []
    assert store.search(()) == []
    # The key can be created again, as a new item.
    store.put(ns, "a", {"v": 9})
    assert store.get(ns, "a").value == {"v": 9}
    [mem] = memories(lg_daemon, name, include_superseded=True)
    assert mem.supersedes is None


def test_namespaces_are_boundaries(store, lg_daemon, prefix):
    store.put(("a",), "k", {"where": "a"})
    store.put(("a", "b"), "k", {"where": "a/b"})
    store.put(("ab",), "k", {"where": "ab"})
    store.put(("a_2eb",), "k", {"where": "a_2eb"})  # looks like an escaped "a.b" label, and is not one
    assert store.get(("a",), "k").value == {"where": "a"}
    assert store.get(("a", "b"), "k").value == {"where": "a/b"}
    assert store.get(("a_2eb",), "k").value == {"where": "a_2eb"}
    assert store.get(("b",), "k") is None
    assert sorted(i.value["where"] for i in store.search(("a",))) == ["a", "a/b"]
    assert [i.value["where"] for i in store.search(("ab",), query="k")] == ["ab"]
    assert store.list_namespaces() == [("a",), ("a", "b"), ("a_2eb",), ("ab",)]
    with lg_daemon.client() as client:
        names = {ns.name for ns in client.stats(all_namespaces=True).namespaces if ns.name.startswith(prefix)}
    assert len(names) == 4


def test_other_memories_in_the_daemon_are_left_alone(store, lg_daemon, prefix):
    with lg_daemon.client(namespace=f"{prefix}:notes") as client:
        foreign = client.remember("written by another memosd client about tea", tags=["lg-key:tea"])
    with lg_daemon.client(namespace=f"{prefix}-plain") as client:
        client.remember("tea in a namespace this store does not use")
    store.put(("notes",), "tea", {"text": "green tea"})
    assert store.get(("notes",), "tea").value == {"text": "green tea"}
    assert [i.key for i in store.search(("notes",), query="tea")] == ["tea"]
    assert store.list_namespaces() == [("notes",)]
    store.delete(("notes",), "tea")
    with lg_daemon.client(namespace=f"{prefix}:notes") as client:
        assert client.get(foreign).text.startswith("written by another")


def test_stores_with_different_prefixes_do_not_see_each_other(store, lg_daemon, prefix):
    store.put(("shared",), "k", {"owner": "first"})
    with MemosdStore(lg_daemon.endpoint, prefix=prefix + "b") as other:
        assert other.get(("shared",), "k") is None
        assert other.search(()) == [] and other.list_namespaces() == []
        other.put(("shared",), "k", {"owner": "second"})
    assert store.get(("shared",), "k").value == {"owner": "first"}


def test_long_keys_are_exact(store):
    base = "k" * 250
    store.put(("docs",), base + "1", {"n": 1})
    store.put(("docs",), base + "2", {"n": 2})
    assert store.get(("docs",), base + "1").value == {"n": 1}
    assert store.get(("docs",), base + "2").value == {"n": 2}
    assert store.get(("docs",), base) is None


def test_index_fields_choose_what_memosd_ranks(lg_daemon, prefix):
    with MemosdStore(lg_daemon.endpoint, prefix=prefix, fields=["title"]) as store:
        store.put(("docs",), "d1", {"title": "bicycle repair", "body": "piano lessons"})
        store.put(("docs",), "d2", {"title": "piano lessons", "body": "bicycle"}, index=["body"])
        store.put(("docs",), "d3", {"title": "bicycle", "body": "bicycle"}, index=False)
        hits = store.search(("docs",), query="bicycle")
        ranked = [i.key for i in hits if i.score is not None]
        assert sorted(ranked) == ["d1", "d2"]
        assert hits[-1].key == "d3" and hits[-1].score is None  # returned, never ranked
        # "piano" is only in fields memosd was not given: nothing ranks, everything is still returned.
        assert [(i.key, i.score) for i in store.search(("docs",), query="piano")] == [
            ("d1", None), ("d2", None), ("d3", None)]
        [top] = store.search(("docs",), query="repair", limit=1)
        assert top.key == "d1" and top.score is not None
    with lg_daemon.client(namespace=f"{prefix}:docs") as client:
        texts = {m.meta["langgraph"]["key"]: (m.text, m.tags) for m in client.list().memories}
    assert texts["d1"] == ("bicycle repair", ["lg-key:d1"])
    assert texts["d2"] == ("bicycle", ["lg-key:d2"])
    assert texts["d3"] == ("d3", ["lg-key:d3", "lg-noindex"])


def test_a_value_larger_than_memosd_text_is_kept_whole(store):
    big = {"text": "word " * 40_000}  # 200 kB: over memosd's 64 kB text limit, under its message limit
    store.put(("big",), "b", big)
    assert store.get(("big",), "b").value == big
    assert store.search(("big",), query="word")[0].score is not None


def test_racing_creators_make_one_item(store, lg_daemon, prefix):
    barrier = threading.Barrier(6)
    errors = []

    def writer(n):
        try:
            barrier.wait()
            store.put(("race",), "same", {"writer": n})
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    current = memories(lg_daemon, f"{prefix}:race")
    assert len(current) == 1
    assert store.get(("race",), "same").value["writer"] in range(6)
    with lg_daemon.client(namespace=f"{prefix}:race") as client:
        assert len(client.history(current[0].id)) == 6  # one lineage: the creation and 5 overwrites


def test_racing_async_writers_make_one_item(store, lg_daemon, prefix):
    async def main():
        await asyncio.gather(*(store.aput(("arace",), "same", {"writer": n}) for n in range(8)))
        return await store.aget(("arace",), "same")

    item = asyncio.run(main())
    assert item.value["writer"] in range(8)
    assert len(memories(lg_daemon, f"{prefix}:arace")) == 1


def test_namespace_too_long_for_memosd(store):
    long_ns = ("x" * 70, "y" * 70)
    with pytest.raises(InvalidNamespaceError, match="128"):
        store.put(long_ns, "k", {"v": 1})
    assert store.get(long_ns, "k") is None
    assert store.search(long_ns) == []


def test_unreachable_daemon_is_a_typed_error(tmp_path):
    with MemosdStore(f"ipc://{tmp_path}/absent.sock", timeout=0.3, retries=0) as store:
        with pytest.raises((ConnectionFailedError, RequestTimeoutError)):
            store.get(("docs",), "k")


labels = st.text(st.characters(exclude_characters=".\x00", exclude_categories=["Cs"]), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(labels, min_size=1, max_size=4))
def test_namespace_names_round_trip(namespace):
    codec = NamespaceCodec("lg")
    name = codec.encode(tuple(namespace))
    if name is None:
        return
    assert MEMOSD_NAME.fullmatch(name)
    assert codec.decode(name) == tuple(namespace)


@pytest.mark.parametrize("name", ["lg:", "lg:a..b", "lg:a_2", "lg:a_zz", "lg:_61", "lg:a_2E", "lgx:a", "other:a",
                                  "lg:a_c3"])
def test_names_this_store_did_not_make_do_not_decode(name):
    assert NamespaceCodec("lg").decode(name) is None


def test_one_store_serves_successive_event_loops_and_threads(store):
    async def write(n):
        await store.aput(("loops",), "k", {"n": n})
        return (await store.aget(("loops",), "k")).value

    assert asyncio.run(write(1)) == {"n": 1}
    assert asyncio.run(write(2)) == {"n": 2}  # a new loop gets its own memosd AsyncClient
    seen = []
    worker = threading.Thread(target=lambda: seen.append(store.get(("loops",), "k").value))
    worker.start()
    worker.join()
    assert seen == [{"n": 2}] and store.get(("loops",), "k").value == {"n": 2}
