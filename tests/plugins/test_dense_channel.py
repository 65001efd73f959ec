"""The dense channel end to end: embedding, fusion, purge, reload, and encoder-change migration.

The working encoder is a test plugin package (character trigrams, dim 64)
discovered through its ``*.dist-info``; real daemon processes, no mocks. Stored
vectors are checked by opening the store after the daemon stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from plugin_packages import install_test_plugins, plugin, plugins_json, wait_for

from memosd.plugins import vectors as vstore
from memosd.plugins.dense import COMMIT
from memosd.store import keys
from memosd.store.environment import Environment, StoreConfig
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

TRIGRAMS = "trigrams/1/64"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    return install_test_plugins(tmp_path_factory.mktemp("plugins"))


def _env(plugin_dir: Path, encoder: str, log: Path | None = None, delay: float = 0.0) -> dict[str, str]:
    env = {"PYTHONPATH": str(plugin_dir), "MEMOSD_PLUGINS_ENCODER": encoder, "MEMOSD_PLUGINS_TIMEOUT_S": "5"}
    if log is not None:
        env["TEST_ENCODER_LOG"] = str(log)
    if delay:
        env["TEST_ENCODER_DELAY_S"] = str(delay)
    return env


def _encoded(log: Path) -> list[str]:
    """Every encoder call so far: its batch size, prefixed with q for a query (encode_query)."""
    return log.read_text().split() if log.exists() else []


def _texts(calls: list[str]) -> int:
    return sum(int(call.lstrip("q")) for call in calls)


def _stored(data_dir: Path) -> tuple[dict[int, dict[int, int]], dict[int, vstore.DenseRecord]]:
    """{ns id: {memory id: vector bytes}} and the dense records, read from a stopped daemon's store."""
    env = Environment(StoreConfig(path=data_dir))
    try:
        found: dict[int, dict[int, int]] = {}
        records = {}
        with env.read() as txn:
            for key, raw in txn.cursor(db=env.dbs["vectors"]):
                ns_id, memory_id = keys.split_memory_key(key)
                found.setdefault(ns_id, {})[memory_id] = len(raw)
            for key, raw in txn.cursor(db=env.dbs["meta"]):
                if key.startswith(b"dense:"):
                    records[int.from_bytes(key[6:], "big")] = msgspec.msgpack.decode(raw, type=vstore.DenseRecord)
        return found, records
    finally:
        env.close()


def _migration(daemon: DaemonProcess) -> m.MigrationInfo:
    with daemon.admin(timeout=5.0) as admin:
        return admin.request("plugins", m.PluginsArgs()).migration


def test_dense_recall_purge_and_reload(plugin_dir, tmp_path):
    log = tmp_path / "encoder.log"
    daemon = DaemonProcess(tmp_path / "store", env=_env(plugin_dir, "trigrams", log))
    daemon.start()
    try:
        report = plugins_json(daemon)
        assert report["dense"] is True and report["encoder"] == TRIGRAMS
        assert plugin(report, "memosd.encoders", "trigrams")["status"] == "loaded"
        with daemon.client(namespace="a") as client:
            ids = client.remember_many(["the submarine dives below the ice",
                                        "a bakery sells warm bread at dawn",
                                        "the orchestra tunes before the concert"]).ids
            # Lexical read-your-writes is immediate; the dense channel follows off the request path.
            assert client.recall("submarine ice")[0].memory.id == ids[0]
            hits = wait_for(lambda: (h := client.recall("submarine ice")) and "dense" in h[0].matched and h,
                            what="a dense match")
            assert hits[0].memory.id == ids[0] and {"bm25", "dense"} <= set(hits[0].matched)
            # Trigrams match a misspelling that no lexical channel can.
            fuzzy = client.recall("orchestrra tuning")
            assert fuzzy[0].memory.id == ids[2] and "dense" in fuzzy[0].matched
            # A query without a word is the dense channel's alone (no lexical channel can match it).
            smiley = client.remember(":-) ;-) :-D")
            hits = wait_for(lambda: (h := client.recall(";-) :-)")) and h[0].memory.id == smiley and h,
                            what="a dense match without words")
            assert all(h.matched == ["dense"] for h in hits)
            # Forgotten memories are masked out of the dense channel too, and come back with unforget.
            client.forget(ids[2])
            assert all(h.memory.id != ids[2] for h in client.recall("orchestrra tuning"))
            client.unforget(ids[2])
            assert client.recall("orchestrra tuning")[0].memory.id == ids[2]
            client.purge(ids[1])
            new_id = client.update(ids[0], "the submarine surfaces through the ice")
            wait_for(lambda: any(h.memory.id == new_id and "dense" in h.matched for h in client.recall("surfaces")),
                     what="the update's vector")
        with daemon.client(namespace="b") as client:
            client.remember_many(["temporary one", "temporary two"])
            wait_for(lambda: "dense" in client.recall("temporary")[0].matched, what="namespace b's vectors")
            client.purge_namespace()
        daemon.stop()
        found, records = _stored(daemon.data_dir)
        assert len(found) == 1 and len(records) == 1, "namespace b's vectors and record went with it"
        (ns_id, vectors), = found.items()
        assert sorted(vectors) == sorted([ids[0], ids[2], new_id, smiley]) and set(vectors.values()) == {64 * 4}
        assert records[ns_id] == vstore.DenseRecord(TRIGRAMS, 0, True)

        calls_before = len(_encoded(log))
        daemon.start()  # restart: vectors are loaded from the store, nothing is re-embedded
        with daemon.client(namespace="a") as client:
            hits = client.recall("orchestrra tuning")
        assert hits[0].memory.id == ids[2] and "dense" in hits[0].matched
        assert _migration(daemon).state == "idle"
        after = _encoded(log)[calls_before:]
        assert after == ["2", "q1", "q1"], f"only the load probes and one query were encoded, got {after}"
    finally:
        daemon.cleanup()


def test_encoder_change_migrates_resumably(plugin_dir, tmp_path):
    data = tmp_path / "store"
    per_ns = 1200
    with DaemonProcess(data, env=_env(plugin_dir, "hash-dense")) as daemon:
        for ns in ("m1", "m2"):
            with daemon.client(namespace=ns) as client:
                for start in range(0, per_ns, 400):
                    client.remember_many([f"{ns} note {i} about topic {i % 37}" for i in range(start, start + 400)])
        wait_for(lambda: daemon.admin().status().migration.state == "idle", what="status")

    # Another encoder: both namespaces must be re-embedded; slow it down to stop it half-way.
    log = tmp_path / "encoder.log"
    daemon = DaemonProcess(data, env=_env(plugin_dir, "trigrams", log, delay=0.05))
    daemon.start()
    try:
        mig = wait_for(lambda: (x := _migration(daemon)).vectors_done >= 200 and x, what="migration progress")
        assert mig.state == "running" and mig.vectors_total == 2 * per_ns and mig.encoder == TRIGRAMS
        with daemon.client(namespace="m2") as client:
            hits = client.recall("m2 note 5 about topic 5")
        if _migration(daemon).namespaces_pending:  # m2 (migrated last) was not complete during the recall
            assert all("dense" not in h.matched for h in hits), "a migrating namespace's dense channel stays off"
        daemon.kill()  # SIGKILL mid-migration
        done_before = mig.vectors_done
        encoded_before = _texts(_encoded(log))

        daemon.start()
        first = _migration(daemon)
        assert first.vectors_done >= done_before, "the cursor persisted: the migration resumes, not restarts"
        final = wait_for(lambda: (x := _migration(daemon)).state == "done" and x, timeout=30, what="the end")
        assert final.vectors_done == final.vectors_total == 2 * per_ns and final.namespaces_pending == 0
        text = "m2 note 5 about topic 5"
        with daemon.client(namespace="m2") as client:
            hits = client.recall(text)
        assert hits[0].memory.text == text and "dense" in hits[0].matched
        with daemon.admin() as admin:
            assert admin.status().migration.state == "done"
    finally:
        daemon.cleanup()
    # Work after the restart covered what was left (plus at most the batch in flight), not everything.
    encoded_after = _texts(_encoded(log)) - encoded_before
    assert encoded_after <= 2 * per_ns - done_before + COMMIT + 2 + 1 + 1
    found, records = _stored(data)
    assert len(found) == 2
    assert all(len(vectors) == per_ns and set(vectors.values()) == {64 * 4} for vectors in found.values())
    assert all(r.encoder == TRIGRAMS and r.complete for r in records.values())


def test_vectors_go_into_a_slow_backend_a_chunk_at_a_time_while_requests_are_served(plugin_dir, tmp_path):
    # 800 vectors at 4 ms each: added a commit (up to 512) at a time, they held the event loop for up to 2 s.
    env = _env(plugin_dir, "trigrams") | {"MEMOSD_PLUGINS_BACKEND": "slow-graph"}
    daemon = DaemonProcess(tmp_path / "store", env=env)
    daemon.start()
    try:
        with daemon.client(namespace="a") as client:
            wanted = client.remember_many([f"harbour note {i}" for i in range(800)]).ids[-1]
            started, slowest = time.monotonic(), 0.0
            while True:
                asked = time.monotonic()
                client.recall("harbour note 799")
                pending = _migration(daemon).queued
                slowest = max(slowest, time.monotonic() - asked)
                if not pending:
                    break
            took = time.monotonic() - started
            hits = client.recall("harbour note 799")
            assert hits[0].memory.id == wanted and "dense" in hits[0].matched
        assert took > 2.0, "the backend's adds were slow"
        assert slowest < 0.5, f"a recall and a status waited {slowest:.2f} s behind the adds"
    finally:
        daemon.cleanup()
