"""Namespaces are storage boundaries: nothing done in one is seen or changed in another."""

from __future__ import annotations

import pytest

from memosd_client import MemoryIn
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import ErrorCode, InvalidNamespaceError, NotFoundError

from _support import export_digest, token


@pytest.fixture
def pair(daemon, ns, other_ns):
    """Clients of two fresh namespaces: A holds three memories (ids 1-3), B one (id 1)."""
    with daemon.client(ns) as a, daemon.client(other_ns) as b:
        a_ids = a.remember_many([MemoryIn(text=f"alpha private {i} {token()}", tags=["t"], session="s",
                                          idempotency_key=f"key-{i}") for i in range(3)]).ids
        b_ids = b.remember_many([MemoryIn(text=f"beta private {token()}", tags=["t"], session="s")]).ids
        yield a, b, a_ids, b_ids


def texts(memories) -> set[str]:
    return {getattr(x, "memory", x).text for x in memories}


def test_ids_are_per_namespace_sequences(pair):
    a, b, a_ids, b_ids = pair
    assert a_ids == [1, 2, 3] and b_ids == [1]


def test_reads_in_b_never_return_a(pair):
    a, b, a_ids, b_ids = pair
    a_texts = texts(a.get_many(a_ids).memories)
    b_text = b.get(1).text
    assert b_text.startswith("beta")  # id 1 in B is B's own memory, never A's id 1

    got = b.get_many(a_ids)
    assert texts(got.memories) == {b_text} and got.missing == [2, 3]
    with pytest.raises(NotFoundError):
        b.get(2)
    with pytest.raises(NotFoundError):
        b.history(3)
    assert texts(b.history(1)) == {b_text}

    for query in ("alpha private", *(t.split()[-1] for t in a_texts)):
        assert texts(b.recall(query, k=50, include_forgotten=True)) <= {b_text}
    assert texts(b.list(include_forgotten=True, include_superseded=True).memories) == {b_text}
    assert texts(b.export()) == {b_text}
    filtered = b.list(filters=m.Filters(session="s", tags=["t"])).memories
    assert texts(filtered) == {b_text}


def test_writes_in_b_never_touch_a(pair):
    a, b, a_ids, b_ids = pair
    before = export_digest(a)

    assert b.forget([2, 3]).missing == [2, 3]
    assert b.unforget([2, 3]).missing == [2, 3]
    with pytest.raises(NotFoundError):
        b.update(2, "overwrite A's memory")
    assert b.purge([2, 3]).missing == [2, 3]
    # B's own id 1 shares its number with A's id 1; changing it must leave A's alone.
    b.forget(1)
    b.unforget(1)
    b_v2 = b.update(1, "beta changed")
    assert b.purge(b_v2).purged == 2
    imported = b.import_batch(list(a.export()))  # same ids, other namespace
    assert imported.imported == 3
    b.forget([1, 2, 3])
    assert b.purge_namespace() == 3

    assert export_digest(a) == before
    assert [mem.is_current for mem in a.get_many(a_ids).memories] == [True, True, True]
    assert len(a.recall("alpha private", k=50)) == 3


def test_idempotency_keys_are_per_namespace(pair):
    a, b, a_ids, b_ids = pair
    result = b.remember_many([MemoryIn(text="beta with A's key", idempotency_key="key-0")])
    assert result.created == [True]
    assert b.get(result.ids[0]).text == "beta with A's key"
    assert a.get(a_ids[0]).text.startswith("alpha private 0")


def test_stats_are_per_namespace(pair, ns, other_ns):
    a, b, a_ids, b_ids = pair
    a.forget(a_ids[0])
    a_stats = a.stats().namespaces
    b_stats = b.stats().namespaces
    assert [(s.name, s.memories, s.forgotten) for s in a_stats] == [(ns, 3, 1)]
    assert [(s.name, s.memories, s.forgotten) for s in b_stats] == [(other_ns, 1, 0)]
    everyone = {s.name: s.memories for s in a.stats(all_namespaces=True).namespaces}
    assert everyone[ns] == 3 and everyone[other_ns] == 1


BAD_NAMES = [None, "", "-leading-dash", ".leading-dot", "has space", "tab\there", "nul\x00byte", "naïve",
             "semi;colon", "x" * 129]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_missing_or_invalid_namespace_is_rejected(daemon, name):
    calls = {
        "remember": lambda c: c.remember("text"),
        "get": lambda c: c.get(1),
        "list": lambda c: c.list(),
        "recall": lambda c: c.recall("text"),
        "update": lambda c: c.update(1, "text"),
        "history": lambda c: c.history(1),
        "forget": lambda c: c.forget(1),
        "unforget": lambda c: c.unforget(1),
        "purge": lambda c: c.purge(1),
        "purge all": lambda c: c.purge_namespace(),
        "export": lambda c: c.export_page(),
        "import": lambda c: c.import_batch([m.Memory(id=1, text="t", created_at=1.0, valid_from=1.0, lineage=1)]),
    }
    with daemon.client(name) as client:
        for label, call in calls.items():
            with pytest.raises(InvalidNamespaceError) as err:
                call(client)
            assert err.value.code == ErrorCode.INVALID_NAMESPACE, label
        if name:  # stats names one namespace when given one; without a name it reports them all
            with pytest.raises(InvalidNamespaceError):
                client.stats()
        assert name not in {s.name for s in client.stats(all_namespaces=True).namespaces}


def test_longest_valid_namespace_is_accepted(daemon):
    name = "n" + token() + "x" * (128 - 1 - len(token()))
    assert len(name) == 128
    with daemon.client(name) as client:
        memory_id = client.remember("at the limit")
        assert client.get(memory_id).text == "at the limit"
        assert [s.name for s in client.stats().namespaces] == [name]
