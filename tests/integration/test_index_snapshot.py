"""Indexes at restart: a clean stop leaves a snapshot that the next start opens instead of rebuilding,
and only when it describes exactly the store it finds (engine/snapshot.py)."""

from __future__ import annotations

import contextlib
import signal
import time

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


def test_after_kill_9_the_indexes_are_rebuilt_and_every_acknowledged_write_is_found(tmp_path):
    store = tmp_path / "store"
    with running(store) as daemon:
        fill(daemon)
    daemon = DaemonProcess(store)
    try:
        daemon.start()
        assert opened_from(daemon) == "snapshot"
        with daemon.client(namespace="chat") as client:
            acked = [client.remember(f"Ana: note {i} about the quokka sanctuary", session="late") for i in range(20)]
        daemon.kill(signal.SIGKILL)  # the snapshot on disk no longer describes the store
        daemon.start()
        assert opened_from(daemon) == "store"
        with daemon.client(namespace="chat") as client:
            found = {h.memory.id for h in client.recall("quokka sanctuary", k=50)}
        assert set(acked) <= found
    finally:
        daemon.cleanup()


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


def test_after_kill_9_only_the_namespaces_written_since_the_last_snapshot_are_rebuilt(tmp_path):
    store = tmp_path / "store"
    serving = {**HELD, "MEMOSD_STORE_CHECKPOINT_INTERVAL_S": "0.2"}
    with running(store) as daemon:
        fill(daemon)
        settle(daemon)
    daemon = DaemonProcess(store, env=serving)
    try:
        daemon.start()  # another configuration than the last stop's: this start rebuilds both
        with daemon.client(namespace="notes") as client:
            client.remember_many([f"Ben: note {i} on the heron nest" for i in range(10)])
        moment = time.time()
        status = wait_for_snapshot_after(daemon, moment)
        assert status.snapshots_written >= 1 and status.indexes_from == "store"
        expected = everything(daemon)  # "chat" as the snapshot holds it: no write to it since
        with daemon.client(namespace="notes") as client:
            acked = [client.remember(f"Ben: late note {i} about the heron chicks") for i in range(15)]
            client.forget(acked[0])
        daemon.kill(signal.SIGKILL)
        daemon.start()
        with daemon.admin() as admin:
            status = admin.status()
        assert (status.namespaces_opened, status.namespaces_rebuilt) == (1, 1)
        assert status.indexes_from == "snapshot+store"
        assert everything(daemon) == expected
        with daemon.client(namespace="notes") as client:
            found = {h.memory.id for h in client.recall("late note heron chicks", k=50)}
            assert set(acked[1:]) <= found and acked[0] not in found  # every acknowledged write, the forget too
            assert client.stats().namespaces[0].memories == 25
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
