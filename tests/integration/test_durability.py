"""Acknowledged writes survive kill -9 and SIGTERM under load; unacknowledged ones can be retried safely."""

from __future__ import annotations

import collections
import random
import signal
import threading

from memosd.testing import DaemonProcess
from memosd_client import MemoryIn
from memosd_client.protocol.errors import MemosdError

from _support import token

NS = "durable"


class WriteStream:
    """Background writers (single and batched remembers, updates, forgets) recording every ack.

    A write whose reply never came (the daemon died first) is kept aside as "in limbo": it may or
    may not be stored, and retrying it with its idempotency key must leave exactly one copy.
    """

    def __init__(self, daemon: DaemonProcess, label: str, *, to_mutate: list[int] = (), enough: int = 40):
        self.daemon = daemon
        self.label = label
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.enough = threading.Event()
        self.enough_at = enough
        self.acked: dict[int, str] = {}
        self.limbo: list[MemoryIn] = []
        self.updates: list[tuple[int, int, str]] = []
        self.forgotten: list[int] = []
        self.errors: list[str] = []
        self._serial = 0
        self.threads = [threading.Thread(target=self._remember_loop, args=(False,)),
                        threading.Thread(target=self._remember_loop, args=(True,)),
                        threading.Thread(target=self._mutate, args=(list(to_mutate),))]

    def __enter__(self) -> "WriteStream":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _client(self):
        # Short timeout and no retries: a write is either acknowledged once or left in limbo.
        return self.daemon.client(NS, timeout=0.5, retries=0)

    def _item(self) -> MemoryIn:
        with self.lock:
            self._serial += 1
            serial = self._serial
        return MemoryIn(text=f"{self.label} write {serial} {token()}", idempotency_key=f"{self.label}-{serial}")

    def _remember_loop(self, batched: bool) -> None:
        rng = random.Random()
        with self._client() as client:
            while not self.stop.is_set():
                items = [self._item() for _ in range(rng.randint(2, 12) if batched else 1)]
                try:
                    if batched:
                        ids = client.remember_many(items).ids
                    else:
                        ids = [client.remember(items[0].text, idempotency_key=items[0].idempotency_key)]
                except MemosdError:
                    with self.lock:
                        self.limbo.extend(items)
                    continue
                with self.lock:
                    for item, memory_id in zip(items, ids):
                        if memory_id in self.acked:
                            self.errors.append(f"id {memory_id} acknowledged twice")
                        self.acked[memory_id] = item.text
                    if len(self.acked) >= self.enough_at:
                        self.enough.set()

    def _mutate(self, candidates: list[int]) -> None:
        with self._client() as client:
            for n, memory_id in enumerate(candidates):
                if self.stop.is_set():
                    return
                try:
                    if n % 2 == 0:
                        text = f"{self.label} revision {token()}"
                        new_id = client.update(memory_id, text)
                        with self.lock:
                            self.updates.append((memory_id, new_id, text))
                    else:
                        client.forget(memory_id)
                        with self.lock:
                            self.forgotten.append(memory_id)
                except MemosdError:
                    pass  # unacknowledged: no promise to check


def last_word(text: str) -> str:
    return text.rsplit(" ", 1)[-1]


def top_ids(client, query: str, **kwargs) -> list[int]:
    return [hit.memory.id for hit in client.recall(query, k=5, **kwargs)]


def check_acknowledged(client, stream: WriteStream, all_acked: dict[int, str]) -> None:
    """Every acknowledged write of every cycle so far is stored as acknowledged."""
    assert stream.errors == []
    ids = sorted(all_acked)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        got = client.get_many(chunk)
        assert got.missing == [], f"acknowledged writes lost: {got.missing[:20]}"
        assert {mem.id: mem.text for mem in got.memories} == {i: all_acked[i] for i in chunk}
    for memory_id, text in stream.acked.items():  # this cycle's writes are also searchable
        assert memory_id in top_ids(client, last_word(text))
    for old, new, text in stream.updates:
        assert client.get(old).superseded_by == new
        assert client.get(new).text == text
        assert new in top_ids(client, last_word(text))
    for memory_id in stream.forgotten:
        assert client.get(memory_id).forgotten_at is not None
        assert memory_id not in top_ids(client, last_word(all_acked[memory_id]))


def retry_limbo(client, stream: WriteStream, all_acked: dict[int, str]) -> None:
    """Resending unacknowledged writes with their keys stores each exactly once."""
    for start in range(0, len(stream.limbo), 200):
        batch = stream.limbo[start:start + 200]
        result = client.remember_many(batch)
        got = client.get_many(result.ids)
        assert [mem.text for mem in got.memories] == [item.text for item in batch]
        all_acked.update(zip(result.ids, (item.text for item in batch)))
    keys = collections.Counter(mem.idempotency_key for mem in client.export())
    assert [key for key, count in keys.items() if count > 1] == []  # no write stored twice


def test_acknowledged_writes_survive_repeated_kill_9(tmp_path):
    rng = random.Random()
    all_acked: dict[int, str] = {}
    touched: set[int] = set()
    with DaemonProcess(tmp_path / "store") as daemon:
        for cycle in range(5):
            # Updates and forgets go to memories acknowledged in earlier cycles, each touched once.
            untouched = [i for i in sorted(all_acked) if i not in touched]
            to_mutate = rng.sample(untouched, min(10, len(untouched)))
            touched.update(to_mutate)
            with WriteStream(daemon, f"c{cycle}", to_mutate=to_mutate) as stream:
                assert stream.enough.wait(60), f"writers got no acks:\n{daemon.log()[-3000:]}"
                threading.Event().wait(rng.uniform(0, 0.15))
                assert daemon.kill() == -signal.SIGKILL  # mid-stream
            all_acked.update(stream.acked)
            daemon.start()
            with daemon.client(NS) as client:
                check_acknowledged(client, stream, all_acked)
                retry_limbo(client, stream, all_acked)
        assert len(all_acked) >= 5 * 40


def test_sigterm_under_load_exits_cleanly_and_keeps_every_ack(tmp_path):
    all_acked: dict[int, str] = {}
    with DaemonProcess(tmp_path / "store") as daemon:
        with daemon.client(NS) as client:
            seeded = client.remember_many([f"seed {i} {token()}" for i in range(20)]).ids
            all_acked.update({mem.id: mem.text for mem in client.get_many(seeded).memories})
        with WriteStream(daemon, "term", to_mutate=seeded) as stream:
            assert stream.enough.wait(60)
            assert daemon.stop() == 0  # SIGTERM: drain, commit, exit 0
        all_acked.update(stream.acked)
        daemon.start()
        with daemon.client(NS) as client:
            check_acknowledged(client, stream, all_acked)
            retry_limbo(client, stream, all_acked)


def test_purged_ids_are_not_reused_after_a_restart(tmp_path):
    # An id a client still holds must never come to name a different memory.
    with DaemonProcess(tmp_path / "store") as daemon:
        with daemon.client(NS) as client:
            kept, doomed = client.remember_many(["kept memory", "purged memory"]).ids
            client.purge(doomed)
            before_restart = client.remember("written before the restart")
            client.purge(before_restart)
        daemon.kill()
        daemon.start()
        with daemon.client(NS) as client:
            fresh = client.remember("written after the restart")
            assert client.get(kept).text == "kept memory"
            assert fresh not in (doomed, before_restart)
            assert fresh > before_restart
