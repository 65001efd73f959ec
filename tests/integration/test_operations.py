"""Round trips of every protocol operation, through the sync and asyncio clients, over ipc and tcp."""

from __future__ import annotations

import time

import numpy as np
import pytest

import memosd
from memosd.config import LimitsConfig
from memosd.retrieval import HybridIndex
from memosd.testing import DaemonProcess
from memosd_client import Filters, MemoryIn
from memosd_client.protocol import PROTOCOL_VERSION
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import (
    ConflictError,
    ErrorCode,
    ForbiddenError,
    InvalidArgumentError,
    NotFoundError,
)

from _support import open_client, token

MODES = [("sync", "ipc"), ("sync", "tcp"), ("async", "ipc"), ("async", "tcp")]


@pytest.fixture(params=MODES, ids=["-".join(mode) for mode in MODES])
def c(request, daemon, ns):
    """A client of the shared daemon bound to this test's namespace, in each client/transport mode."""
    client = open_client(daemon, *request.param, ns)
    yield client
    client.close()


def ids_of(memories_or_hits) -> list[int]:
    return [getattr(x, "memory", x).id for x in memories_or_hits]


# --------------------------------------------------------------------------- hello / status / shutdown


def test_hello_reports_protocol_limits_and_encoder(c):
    hello = c.hello(client="memosd-tests")
    assert hello.protocol == PROTOCOL_VERSION
    assert hello.server_version == memosd.__version__
    assert {"remember.batch", "recall.hybrid", "recall.vector", "update.history", "forget.soft",
            "purge.namespace", "export.paged", "import", "idempotency"} <= set(hello.capabilities)
    defaults = LimitsConfig()
    assert hello.limits == m.Limits(max_message_bytes=defaults.max_message_bytes, max_batch=defaults.max_batch,
                                    max_k=defaults.max_k, max_text_bytes=defaults.max_text_bytes)
    assert hello.encoder.dim > 0 and hello.encoder.name


def test_status_is_served_on_the_admin_endpoint_only(daemon, ns):
    with daemon.client(ns) as client:
        client.remember("status counts this " + token())
        with pytest.raises(ForbiddenError):
            client.request("status", m.StatusArgs())
    with daemon.admin() as admin:
        status = admin.status()
    assert status.pid == daemon.proc.pid
    assert status.version == memosd.__version__
    assert status.writer_alive
    assert status.memories >= 1 and status.namespaces >= 1
    assert daemon.endpoint in status.endpoints and daemon.tcp_endpoint in status.endpoints
    assert status.data_dir == str(daemon.data_dir)


def test_shutdown_stops_cleanly_and_keeps_data(tmp_path):
    with DaemonProcess(tmp_path / "store") as own:
        with own.client("keep") as client:
            memory_id = client.remember("written before shutdown")
        with own.admin() as admin:
            assert admin.shutdown().stopping
        assert own.proc.wait(timeout=30) == 0
        own.proc = None
        own.start()
        with own.client("keep") as client:
            assert client.get(memory_id).text == "written before shutdown"


# --------------------------------------------------------------------------- remember / get


def test_remember_single_round_trips_every_field(c):
    t = token()
    meta = {"mood": "happy", "count": 3, "nested": {"list": [1, 2.5, "x"], "flag": True}}
    before = time.time()
    memory_id = c.remember(f"Alice adopted a cat named {t}", meta=meta, tags=["pets", "alice"],
                           event_time=1_700_000_000.5, session="s1", source="chat")
    mem = c.get(memory_id)
    assert mem.id == memory_id
    assert mem.text == f"Alice adopted a cat named {t}"
    assert mem.meta == meta
    assert mem.tags == ["pets", "alice"]
    assert mem.event_time == 1_700_000_000.5
    assert (mem.session, mem.source, mem.tier) == ("s1", "chat", "stm")
    assert mem.lineage == memory_id and mem.supersedes is None and mem.is_current
    assert before - 60 < mem.created_at < time.time() + 60  # a wall-clock stamp, not e.g. zero
    assert mem.idempotency_key  # the client adds one so a retried write is deduplicated
    assert ids_of(c.recall(t)) == [memory_id]


def test_remember_batch_ids_in_order_and_read_your_writes(c):
    tokens = [token() for _ in range(25)]
    # remember_many takes MemoryIn structs, dicts and plain strings alike.
    items = [
        MemoryIn(text=f"note {i} about {t}", tags=[f"t{i % 3}"]) if i % 3 == 0
        else {"text": f"note {i} about {t}", "session": "batch"} if i % 3 == 1
        else f"note {i} about {t}"
        for i, t in enumerate(tokens)
    ]
    result = c.remember_many(items)
    assert len(result.ids) == 25 and len(set(result.ids)) == 25
    assert result.ids == sorted(result.ids)
    assert result.created == [True] * 25
    # Every acknowledged memory is recallable at once, without any refresh step.
    # The hashed channel may add look-alikes, so "recallable" means among the first few hits.
    for t, memory_id in zip(tokens, result.ids):
        assert memory_id in ids_of(c.recall(t, k=5))
    got = c.get_many(result.ids)
    assert ids_of(got.memories) == result.ids and got.missing == []
    assert [mem.text for mem in got.memories] == [f"note {i} about {t}" for i, t in enumerate(tokens)]
    assert got.memories[1].session == "batch" and got.memories[3].tags == ["t0"]


def test_single_writes_are_recallable_right_after_the_ack(c):
    for i in range(10):
        t = token()
        memory_id = c.remember(f"fact number {i}: {t}")
        assert memory_id in ids_of(c.recall(t, k=5))


def test_get_reports_missing_ids(c):
    memory_id = c.remember("only one here " + token())
    got = c.get_many([memory_id, memory_id + 10_000])
    assert ids_of(got.memories) == [memory_id]
    assert got.missing == [memory_id + 10_000]
    with pytest.raises(NotFoundError) as err:
        c.get(memory_id + 10_000)
    assert err.value.code == ErrorCode.NOT_FOUND


# --------------------------------------------------------------------------- list


def test_list_pages_through_every_memory_once(c):
    ids = c.remember_many([f"entry {i} {token()}" for i in range(23)]).ids
    seen: list[int] = []
    cursor, pages = None, 0
    while True:
        page = c.list(cursor=cursor, limit=5)
        pages += 1
        assert len(page.memories) <= 5
        seen += ids_of(page.memories)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids
    assert pages == 5


def test_list_filters_and_inclusion_flags(c):
    base = 1_700_000_000.0
    specs = {
        "a": dict(session="s1", source="chat", tags=["red", "round"], event_time=base + 10),
        "b": dict(session="s1", source="email", tags=["red"], event_time=base + 20),
        "c": dict(session="s2", source="chat", tags=["round"], event_time=base + 30),
        "d": dict(session="s2", source="email", tags=[], event_time=None),
    }
    result = c.remember_many([MemoryIn(text=f"memory {name} {token()}", **spec) for name, spec in specs.items()])
    a, b, cc, d = result.ids

    def listed(include_forgotten=False, include_superseded=False, **filters):
        return ids_of(c.list(filters=Filters(**filters), include_forgotten=include_forgotten,
                             include_superseded=include_superseded).memories)

    assert listed() == [a, b, cc, d]
    assert listed(session="s1") == [a, b]
    assert listed(source="chat") == [a, cc]
    assert listed(tags=["red"]) == [a, b]
    assert listed(tags=["red", "round"]) == [a]  # every given tag must be present
    assert listed(after=base + 15) == [b, cc]  # no event time: excluded by a time bound
    assert listed(before=base + 25) == [a, b]
    assert listed(after=base + 15, before=base + 25) == [b]
    assert listed(session="s2", source="email") == [d]
    assert listed(session="no-such-session") == []
    assert listed(tier="stm") == [a, b, cc, d] and listed(tier="ltm") == []

    c.forget(b)
    new_c = c.update(cc, f"memory c changed {token()}")
    assert listed() == [a, d, new_c]
    assert listed(include_forgotten=True) == [a, b, d, new_c]
    assert listed(include_superseded=True) == [a, cc, d, new_c]
    assert listed(include_forgotten=True, include_superseded=True) == [a, b, cc, d, new_c]
    assert listed(include_superseded=True, session="s2") == [cc, d, new_c]  # the new version keeps its session


# --------------------------------------------------------------------------- recall


def test_recall_ranks_limits_and_filters(c):
    t = token()
    base = 1_700_000_000.0
    result = c.remember_many([
        MemoryIn(text=f"{t} " * (6 - i) + f"filler words {i}", session=f"s{i % 2}", tags=["even"] if i % 2 == 0 else [],
                 event_time=base + i)
        for i in range(6)
    ])
    c.remember("nothing in common here " + token())
    hits = c.recall(t, k=10)
    assert set(result.ids) <= set(ids_of(hits))
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(x.score >= y.score for x, y in zip(hits, hits[1:]))
    assert all(h.matched and set(h.matched) <= {"bm25", "hash"} for h in hits)

    assert len(c.recall(t, k=2)) == 2
    assert sorted(ids_of(c.recall(t, filters=Filters(session="s1")))) == result.ids[1::2]
    assert sorted(ids_of(c.recall(t, filters=Filters(tags=["even"])))) == result.ids[0::2]
    assert sorted(ids_of(c.recall(t, filters=Filters(after=base + 2, before=base + 4)))) == result.ids[2:4]
    assert all("bm25" not in h.matched for h in c.recall(token()))  # an unseen word matches no text


def test_a_query_without_index_terms_finds_only_what_its_time_question_asks(c):
    said = c.remember(f"we met on 3 May 2023 at the harbour {token()}")
    c.remember(f"the harbour was quiet {token()}")
    # Punctuation alone gives the tiers nothing to score: no hit (and no pass over them).
    assert c.recall("?!") == [] and c.recall("...") == []
    # "When?" has no index terms either, but it asks about time: the turn that says a date is found.
    assert ids_of(c.recall("when?"))[:1] == [said]


def test_recall_by_vector(c):
    hello = c.hello()
    dim = hello.encoder.dim
    local = HybridIndex()
    # Encoding locally is only meaningful if the daemon reports the same vector space.
    assert (hello.encoder.name, hello.encoder.version, dim) == (
        local.encoder_identity.name, local.encoder_identity.version, local.encoder_identity.dim)
    t = token()
    target = c.remember(f"the lighthouse keeper {t} paints boats")
    others = c.remember_many([f"unrelated grocery list {token()}", f"a report on rainfall {token()}"]).ids

    hits = c.recall(vector=local.encode([f"lighthouse keeper {t}"])[0], k=3)
    assert ids_of(hits)[0] == target
    assert hits[0].matched == ["hash"]

    mine = {target, *others}
    for vector in (np.zeros(dim, dtype="<f4"), np.random.default_rng(7).standard_normal(dim).astype("<f4")):
        hits = c.recall(vector=vector, k=2)  # a vector without meaning is still a valid query
        assert len(hits) <= 2 and set(ids_of(hits)) <= mine

    for bad in (np.zeros(dim - 1, dtype="<f4"), np.zeros(dim + 1, dtype="<f4"),
                np.full(dim, np.nan, dtype="<f4"), np.full(dim, np.inf, dtype="<f4")):
        with pytest.raises(InvalidArgumentError):
            c.recall(vector=bad)
    with pytest.raises(InvalidArgumentError):
        c.recall(t, vector=np.zeros(dim, dtype="<f4"))  # exactly one of query or vector
    with pytest.raises(InvalidArgumentError):
        c.recall()


def test_recall_as_of_sees_the_version_valid_then(c):
    t = token()
    v1 = c.remember(f"alice lives in paris {t}")
    v2 = c.update(v1, f"alice lives in berlin {t}")
    old, new = c.get(v1), c.get(v2)
    while_old = (old.valid_from + old.valid_to) / 2
    assert ids_of(c.recall(t, as_of=while_old)) == [v1]
    assert ids_of(c.recall(t, as_of=new.valid_from)) == [v2]
    assert c.recall(t, as_of=old.valid_from - 1) == []  # before anything was written
    assert ids_of(c.recall(t)) == [v2]
    assert v1 not in ids_of(c.recall("paris"))


# --------------------------------------------------------------------------- update / history


def test_update_supersedes_and_keeps_history(c):
    t = token()
    v1 = c.remember(f"the standup is on monday {t}", tags=["work"], meta={"team": "core"}, session="s")
    v2 = c.update(v1, f"the standup is on tuesday {t}", reason="moved")
    old, new = c.get(v1), c.get(v2)
    assert old.text == f"the standup is on monday {t}"  # versions are immutable
    assert new.text == f"the standup is on tuesday {t}"
    assert (new.supersedes, old.superseded_by) == (v1, v2)
    assert old.valid_to is not None and not old.is_current and new.is_current
    assert new.valid_from >= old.valid_from
    assert new.lineage == old.lineage == v1
    assert new.tags == ["work"] and new.session == "s"
    assert new.meta == {"team": "core", "update_reason": "moved"}
    assert ids_of(c.history(v1)) == ids_of(c.history(v2)) == [v1, v2]
    assert ids_of(c.recall(t)) == [v2]

    v3 = c.supersede(v2, tags=["work", "moved"])  # a tags-only change keeps the text
    assert c.get(v3).text == new.text and c.get(v3).tags == ["work", "moved"]
    assert ids_of(c.history(v2)) == [v1, v2, v3]
    assert ids_of(c.recall(t)) == [v3]

    with pytest.raises(ConflictError) as err:
        c.update(v1, "a second edit of an old version")
    assert err.value.code == ErrorCode.CONFLICT
    with pytest.raises(NotFoundError):
        c.update(v3 + 10_000, "nothing there")
    with pytest.raises(NotFoundError):
        c.history(v3 + 10_000)


def test_conflict_points_at_the_current_version(daemon, ns):
    with daemon.client(ns) as c:
        v1 = c.remember("draft one " + token())
        v2 = c.update(v1, "draft two")
        v3 = c.update(v2, "draft three")
        with pytest.raises(ConflictError) as err:
            c.update(v1, "edit based on a stale read")
    # A client resolves the conflict by retrying on details["current"]; it must be the live version.
    assert err.value.details.get("current") == v3


# --------------------------------------------------------------------------- forget / unforget


def test_forget_hides_until_unforget(c):
    t = token()
    keep, gone = c.remember_many([f"keep this {t}", f"forget this {t}"]).ids
    result = c.forget(gone)
    assert result.changed == [gone] and result.missing == []
    assert ids_of(c.recall(t)) == [keep]
    assert ids_of(c.list().memories) == [keep]
    assert sorted(ids_of(c.recall(t, include_forgotten=True))) == [keep, gone]
    assert ids_of(c.list(include_forgotten=True).memories) == [keep, gone]
    forgotten = c.get(gone)  # get still answers, marked as forgotten
    assert forgotten.forgotten_at is not None and not forgotten.is_current
    assert c.stats().namespaces[0].forgotten == 1
    with pytest.raises(ConflictError):
        c.update(gone, "edit a forgotten memory")

    assert c.forget([gone, gone + 10_000]).missing == [gone + 10_000]
    result = c.unforget(gone)
    assert result.changed == [gone]
    assert c.get(gone).forgotten_at is None
    assert sorted(ids_of(c.recall(t))) == [keep, gone]
    assert c.unforget(gone + 10_000).missing == [gone + 10_000]


# --------------------------------------------------------------------------- purge


def test_purge_removes_every_version_of_a_lineage(c):
    t = token()
    v1 = c.remember(f"secret v1 {t}", idempotency_key="purge-me")
    v2 = c.update(v1, f"secret v2 {t}")
    v3 = c.update(v2, f"secret v3 {t}")
    bystander = c.remember(f"bystander {t}")
    c.forget(v3)

    result = c.purge(v2)  # any version names the whole lineage
    assert result.purged == 3 and result.missing == []
    lineage = [v1, v2, v3]
    assert c.get_many(lineage).missing == lineage
    everything = c.list(include_forgotten=True, include_superseded=True).memories
    assert ids_of(everything) == [bystander]
    assert ids_of(c.recall(t, include_forgotten=True)) == [bystander]
    # Just before the bystander was written only v3 was valid: purged, it is gone from the past too.
    assert c.recall(t, as_of=c.get(bystander).created_at - 1e-6, include_forgotten=True) == []
    for memory_id in lineage:
        with pytest.raises(NotFoundError):
            c.history(memory_id)
    assert ids_of(c.export_all()) == [bystander]
    # The purged memory's idempotency key is gone too: it names nothing any more.
    again = c.remember_many([MemoryIn(text="written again", idempotency_key="purge-me")])
    assert again.created == [True] and again.ids[0] not in lineage
    assert c.purge(v1).missing == [v1]


def test_purge_namespace(c, ns):
    ids = c.remember_many([f"item {i} {token()}" for i in range(4)]).ids
    c.update(ids[0], "changed " + token())
    assert c.purge_namespace() == 5  # every stored version
    assert c.stats().namespaces == []
    assert ns not in {s.name for s in c.stats(all_namespaces=True).namespaces}
    assert c.list(include_forgotten=True, include_superseded=True).memories == []
    assert c.get_many(ids).missing == ids
    assert c.export_all() == []
    t = token()
    fresh = c.remember(f"a new life {t}")  # the namespace can be used again
    assert ids_of(c.recall(t)) == [fresh]
    assert c.stats().namespaces[0].memories == 1


# --------------------------------------------------------------------------- stats


def test_stats_counts_versions(c, ns):
    ids = c.remember_many([f"counted {i} {token()}" for i in range(5)]).ids
    c.update(ids[0], "counted again " + token())
    c.forget(ids[1])
    stats = c.stats()
    assert [s.name for s in stats.namespaces] == [ns]
    counts = stats.namespaces[0]
    assert (counts.memories, counts.current, counts.superseded, counts.forgotten) == (6, 4, 1, 1)
    assert counts.index_bytes > 0
    assert stats.store_bytes > 0 and stats.map_bytes >= stats.store_bytes
    assert ns in {s.name for s in c.stats(all_namespaces=True).namespaces}


# --------------------------------------------------------------------------- export / import


def test_export_import_round_trip_keeps_ids_and_history(c, other_ns):
    t = token()
    ids = c.remember_many([
        MemoryIn(text=f"first {t}", tags=["x"], meta={"k": [1, 2]}, session="s", event_time=1_700_000_000.0),
        MemoryIn(text=f"second {t}", idempotency_key="exported-key"),
        MemoryIn(text=f"third {t}"),
    ]).ids
    v2 = c.update(ids[0], f"first, revised {t}")
    c.forget(ids[2])
    exported = c.export_all(page=2)  # paging through several pages
    assert ids_of(exported) == [*ids, v2]

    result = c.import_batch(exported, namespace=other_ns)
    assert (result.imported, result.skipped) == (4, 0)
    assert c.export_all(namespace=other_ns) == exported  # every field, identical
    assert ids_of(c.history(ids[0], namespace=other_ns)) == [ids[0], v2]
    assert c.get(ids[2], namespace=other_ns).forgotten_at is not None
    assert sorted(ids_of(c.recall(t, namespace=other_ns))) == [ids[1], v2]

    again = c.import_batch(exported, namespace=other_ns)
    assert (again.imported, again.skipped) == (0, 4)
    new_id = c.remember("written after the import", namespace=other_ns)
    assert new_id > max(ids_of(exported))  # never collides with an imported id
    dedup = c.remember_many([MemoryIn(text="retry", idempotency_key="exported-key")], namespace=other_ns)
    assert (dedup.ids, dedup.created) == ([ids[1]], [False])  # keys travel with the export


# --------------------------------------------------------------------------- idempotency


def test_idempotency_keys_deduplicate(c):
    first = c.remember("paid the invoice", idempotency_key="invoice-42")
    again = c.remember_many([MemoryIn(text="paid the invoice (retry)", idempotency_key="invoice-42")])
    assert again.ids == [first] and again.created == [False]
    assert c.get(first).text == "paid the invoice"  # the retry changes nothing

    batch = c.remember_many([MemoryIn(text="twice in one batch", idempotency_key="dup"),
                             MemoryIn(text="twice in one batch", idempotency_key="dup")])
    assert batch.ids[0] == batch.ids[1] and batch.created == [True, False]

    v2 = c.update(first, "paid the invoice late", idempotency_key="edit-1")
    assert c.update(first, "paid the invoice late", idempotency_key="edit-1") == v2
    assert ids_of(c.history(first)) == [first, v2]
    assert len(c.list(include_superseded=True).memories) == 3


def test_idempotency_survives_a_crash(memosd_daemon):
    """Uses the ``memosd_daemon`` fixture the memosd pytest plugin provides."""
    with memosd_daemon.client("crash") as client:
        first = client.remember_many([MemoryIn(text="before the crash", idempotency_key="retry-me")])
    memosd_daemon.kill()
    memosd_daemon.start()
    with memosd_daemon.client("crash") as client:
        retry = client.remember_many([MemoryIn(text="before the crash", idempotency_key="retry-me")])
        assert retry.ids == first.ids and retry.created == [False]
        assert ids_of(client.list().memories) == first.ids
