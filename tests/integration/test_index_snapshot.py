"""Indexes at restart: a clean stop leaves a snapshot that the next start opens instead of rebuilding,
and only when it describes exactly the store it finds (engine/snapshot.py)."""

from __future__ import annotations

import contextlib
import signal
import time

import msgspec

from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

from test_tiers import QUERIES, conversation, settle

SNAPSHOT = "indexes/snapshot.pickle"
# The scheduler stays still during these runs, so two starts on one store hold the same tiers.
HELD = {"MEMOSD_TIERS_TICK_S": "3600"}


@contextlib.contextmanager
def running(store, env: dict[str, str] | None = None):
    """A daemon on ``store`` that stops cleanly at the end (DaemonProcess's own exit is a kill -9)."""
    with DaemonProcess(store, env=env) as daemon:
        yield daemon
        assert daemon.stop() == 0


def opened_from(daemon: DaemonProcess) -> str:
    with daemon.admin() as admin:
        return admin.status().indexes_from


def everything(daemon: DaemonProcess) -> dict:
    """What a user sees of the namespace: recall (text, filtered, as of a time), list, get, history, pages."""
    with daemon.client(namespace="chat") as client:
        memories = client.list(limit=1000).memories
        ids = [mem.id for mem in memories]
        paged = [mem.id for mem in memories if mem.tier != "stm"]
        return {
            "recall": [[(h.memory.id, h.score, h.matched, h.memory.tier) for h in client.recall(q, k=10)]
                       for q in QUERIES],
            "filtered": [[h.memory.id for h in client.recall(q, k=5, filters=m.Filters(session="s2"))]
                         for q in QUERIES],
            "as_of": [[h.memory.id for h in client.recall(q, k=5, as_of=1_684_000_000.0 + 86_400 * 7)]
                      for q in QUERIES],
            "list": ids,
            "get": client.get_many(ids[:50]).memories,
            "history": client.history(ids[3]),
            "pages": [client.page(memory=i).members for i in paged[::7]],
            "stats": [(s.memories, s.current, s.superseded, s.forgotten) for s in client.stats().namespaces],
        }


def fill(daemon: DaemonProcess) -> list[int]:
    with daemon.client(namespace="chat") as client:
        ids = client.remember_many(conversation(sessions=4, turns=30)).ids
        client.update(ids[3], "Ana: the kiln is finally fixed, the glaze came out blue", reason="fixed")
        client.forget(ids[10])
        client.purge(ids[11])
    return ids


def test_a_clean_restart_opens_the_snapshot_and_answers_as_a_rebuild_does(tmp_path):
    store = tmp_path / "store"
    with running(store) as daemon:
        assert opened_from(daemon) == "store"  # a new store has nothing to open
        fill(daemon)
        settle(daemon)
    assert (store / SNAPSHOT).exists()
    with running(store, HELD) as daemon:
        # Holding the scheduler is another configuration: this start rebuilds, its stop writes a
        # snapshot, and the next start (configured alike) opens that.
        assert opened_from(daemon) == "store"
        rebuilt = everything(daemon)
    with running(store, HELD) as daemon:
        assert opened_from(daemon) == "snapshot"
        assert everything(daemon) == rebuilt
        with daemon.client(namespace="chat") as client:  # and it keeps working: writes, recall, purge
            new_id = client.remember("Ben: a zebrafish joined the garden pond", session="s9")
            assert client.recall("zebrafish", k=1)[0].memory.id == new_id
            client.purge(new_id)
            assert not client.recall("zebrafish", k=1) or client.recall("zebrafish", k=1)[0].memory.id != new_id


def test_after_kill_9_writes_since_the_snapshot_are_replayed_or_without_a_log_rebuilt(tmp_path):
    store = tmp_path / "store"
    with running(store, HELD) as daemon:
        fill(daemon)
    daemon = DaemonProcess(store, env=HELD)
    try:
        daemon.start()
        assert opened_from(daemon) == "snapshot"
        with daemon.client(namespace="chat") as client:
            acked = [client.remember(f"Ana: note {i} about the quokka sanctuary", session="late") for i in range(20)]
        daemon.kill(signal.SIGKILL)  # the snapshot on disk no longer describes the store
        daemon.start()
        after = status(daemon)
        # The 20 remembers, and the pages the scheduler's first round formed from the filled turns.
        assert (after.namespaces_replayed, after.indexes_from) == (1, "snapshot") and after.replayed_entries >= 20
        with daemon.client(namespace="chat") as client:
            assert set(acked) <= {h.memory.id for h in client.recall("quokka sanctuary", k=50)}
        daemon.kill(signal.SIGKILL)
        # Writes by a daemon that keeps no snapshots log nothing: the log has a gap, so a rebuild.
        daemon.env = {**HELD, "MEMOSD_STORE_INDEX_SNAPSHOT": "false"}
        daemon.start()
        with daemon.client(namespace="chat") as client:
            acked += [client.remember(f"Ana: more on the quokka sanctuary, {i}", session="late") for i in range(5)]
        daemon.kill(signal.SIGKILL)
        daemon.env = HELD
        daemon.start()
        after = status(daemon)
        assert (after.namespaces_replayed, after.namespaces_rebuilt, after.indexes_from) == (0, 1, "store")
        with daemon.client(namespace="chat") as client:
            assert set(acked) <= {h.memory.id for h in client.recall("quokka sanctuary", k=50)}
    finally:
        daemon.cleanup()


def status(daemon: DaemonProcess) -> m.StatusResult:
    with daemon.admin() as admin:
        return admin.status()


def wait_for_snapshot_after(daemon: DaemonProcess, moment: float, timeout: float = 30.0) -> m.StatusResult:
    """Wait until the daemon has written a snapshot, while serving, of its state at ``moment`` or later."""
    deadline = time.monotonic() + timeout
    with daemon.admin() as admin:
        while True:
            status = admin.status()
            if status.snapshot_at >= moment:
                return status
            assert time.monotonic() < deadline, "no snapshot was written while serving"
            time.sleep(0.05)


def test_after_kill_9_a_namespace_written_since_the_last_snapshot_is_brought_forward_by_its_log(tmp_path):
    store = tmp_path / "store"
    with running(store) as daemon:
        fill(daemon)
        settle(daemon)
    # Nothing paged either (a ring over its capacity is paged at once): the writes below are the only ones.
    daemon = DaemonProcess(store, env={**HELD, "MEMOSD_TIERS_STM_CAPACITY": "1000"})
    try:
        daemon.start()  # another configuration than the last stop's: this start rebuilds both
        with daemon.client(namespace="notes") as client:
            client.remember_many([f"Ben: note {i} on the heron nest" for i in range(10)])
        with daemon.admin() as admin:
            assert admin.snapshot().namespaces == 2  # while serving: the scheduler is held, no write follows
        expected = everything(daemon)  # "chat" as the snapshot holds it: no write to it since
        with daemon.client(namespace="notes") as client:
            acked = [client.remember(f"Ben: late note {i} about the heron chicks") for i in range(15)]
            client.forget(acked[0])
            client.purge(acked[1])
        daemon.kill(signal.SIGKILL)
        daemon.start()
        after = status(daemon)
        assert (after.namespaces_opened, after.namespaces_replayed, after.namespaces_rebuilt) == (1, 1, 0)
        assert after.replayed_entries == 17  # one per acknowledged write since the snapshot, no more
        assert after.indexes_from == "snapshot"
        assert everything(daemon) == expected
        with daemon.client(namespace="notes") as client:
            found = {h.memory.id for h in client.recall("late note heron chicks", k=50)}
            assert set(acked[2:]) <= found and not {acked[0], acked[1]} & found
            assert client.stats().namespaces[0].memories == 24
    finally:
        daemon.cleanup()


def test_a_snapshot_is_taken_every_interval_while_writes_come(tmp_path):
    daemon = DaemonProcess(tmp_path / "store", env={**HELD, "MEMOSD_STORE_CHECKPOINT_INTERVAL_S": "0.2",
                                                   "MEMOSD_TIERS_STM_CAPACITY": "1000"})  # nothing paged
    try:
        daemon.start()
        time.sleep(0.5)
        assert status(daemon).snapshots_written == 0  # nothing written: nothing to take
        with daemon.client(namespace="notes") as client:
            acked = client.remember_many([f"Ben: note {i} on the heron nest" for i in range(10)]).ids
        moment = time.time()
        taken = wait_for_snapshot_after(daemon, moment)
        time.sleep(0.5)
        assert status(daemon).snapshots_written == taken.snapshots_written  # and no more without writes
        daemon.kill(signal.SIGKILL)
        daemon.start()
        after = status(daemon)
        assert (after.namespaces_opened, after.namespaces_replayed, after.namespaces_rebuilt) == (1, 0, 0)
        with daemon.client(namespace="notes") as client:
            assert {h.memory.id for h in client.recall("heron nest", k=20)} == set(acked)
    finally:
        daemon.cleanup()


def test_a_snapshot_is_taken_once_enough_records_were_written_whatever_the_interval(tmp_path):
    daemon = DaemonProcess(tmp_path / "store", env={**HELD, "MEMOSD_STORE_CHECKPOINT_INTERVAL_S": "3600",
                                                   "MEMOSD_STORE_CHECKPOINT_RECORDS": "50",
                                                   "MEMOSD_TIERS_STM_CAPACITY": "1000"})
    try:
        daemon.start()
        with daemon.client(namespace="notes") as client:
            client.remember_many([f"Ben: note {i} on the heron nest" for i in range(30)])
            time.sleep(1.5)
            assert status(daemon).snapshots_written == 0  # 30 records: not yet
            client.remember_many([f"Ben: note {i} on the heron chicks" for i in range(30)])
            assert wait_for_snapshot_after(daemon, 1.0, timeout=10).snapshots_written == 1
    finally:
        daemon.cleanup()


def comparable(seen: dict) -> dict:
    """``everything`` without what heat decides (a memory's tier; the order of equal scores)."""
    out = dict(seen)
    out["recall"] = [sorted((-score, i) for i, score, _, _ in hits) for hits in seen["recall"]]
    out["get"] = [msgspec.structs.replace(mem, tier="") for mem in seen["get"]]
    return out


def test_a_replay_of_paging_consolidation_updates_and_purges_answers_as_a_rebuild(tmp_path):
    store = tmp_path / "store"
    daemon = DaemonProcess(store)  # the scheduler runs; the periodic snapshot is minutes away
    try:
        daemon.start()
        ids = fill(daemon)
        settle(daemon)
        with daemon.admin() as admin:
            admin.snapshot()
        # After the snapshot: new sessions to page and consolidate, an update, a forget and a purge of
        # turns in consolidated pages (their knowledge goes, and comes back by a new consolidation).
        with daemon.client(namespace="chat") as client:
            client.remember_many(conversation(sessions=3, turns=30, seed=11))
            client.update(ids[40], "Ben: the garden pond froze over, the zebrafish are fine", reason="news")
            client.forget(ids[50])
            client.purge(ids[60])
        settle(daemon)
        daemon.kill(signal.SIGKILL)
        daemon.start()
        after = status(daemon)
        assert (after.namespaces_replayed, after.namespaces_rebuilt) == (1, 0) and after.replayed_entries > 5
        replayed = comparable(everything(daemon))
        daemon.kill(signal.SIGKILL)
        (store / SNAPSHOT).unlink()
        daemon.start()
        assert status(daemon).indexes_from == "store"
        assert comparable(everything(daemon)) == replayed
    finally:
        daemon.cleanup()


def test_a_snapshot_of_another_configuration_or_a_damaged_one_is_not_used(tmp_path):
    store = tmp_path / "store"
    with running(store) as daemon:
        fill(daemon)
        settle(daemon)
        expected = everything(daemon)["recall"]
    # Other BM25 parameters: the snapshot's indexes would score differently. Each run's stop writes
    # its own snapshot, which a run configured otherwise does not use either.
    with running(store, {**HELD, "MEMOSD_RETRIEVAL_K1": "1.7"}) as daemon:
        assert opened_from(daemon) == "store"
    with running(store, HELD) as daemon:
        assert opened_from(daemon) == "store"
    (store / SNAPSHOT).write_bytes((store / SNAPSHOT).read_bytes()[:5000])  # a snapshot cut short
    with running(store, HELD) as daemon:
        assert opened_from(daemon) == "store"
        assert everything(daemon)["recall"] == expected
    # Switched off: nothing is written at the stop, nothing is opened at the start.
    (store / SNAPSHOT).unlink()
    with running(store, {**HELD, "MEMOSD_STORE_INDEX_SNAPSHOT": "false"}) as daemon:
        assert opened_from(daemon) == "store"
    assert not (store / SNAPSHOT).exists()


def test_the_snapshot_is_readable_by_the_daemons_user_only(tmp_path):
    store = tmp_path / "store"
    with running(store) as daemon:
        fill(daemon)
        time.sleep(0.1)
    assert (store / SNAPSHOT).stat().st_mode & 0o077 == 0
    assert (store / "indexes").stat().st_mode & 0o077 == 0
