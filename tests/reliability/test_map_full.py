"""The LMDB map reaches its ceiling: writes get STORAGE_FULL, reads go on, nothing acknowledged is lost."""

from __future__ import annotations

import pytest
from filling import assert_all_there, remember_batches

from memosd.reliability.common import new_daemon, unique_token
from memosd_client import MemoryIn
from memosd_client.protocol.errors import StorageFullError

NS = "map-full"
SMALL_MAP = {"MEMOSD_STORE_MAP_SIZE": str(1 << 20), "MEMOSD_STORE_MAX_MAP_SIZE": str(2 << 20)}


def fill(client, acked: dict[int, str]) -> StorageFullError:
    """Write batches until the daemon refuses one; every acknowledged text goes into ``acked``."""
    err = remember_batches(client, acked, 2000, "filler")
    if err is None:
        pytest.fail("the store never filled up")
    return err


def test_full_map_refuses_writes_keeps_reads_and_recovers_with_a_larger_ceiling(tmp_path):
    acked: dict[int, str] = {}
    daemon = new_daemon(tmp_path / "store", env=SMALL_MAP)
    with daemon:
        with daemon.client(NS, timeout=30.0) as client:
            err = fill(client, acked)
            assert "maximum map size" in err.message
            assert "maximum map size" in fill(client, acked).message  # refused again, not stuck or crashed
            assert_all_there(client, acked)
            some_id, some_text = next(iter(acked.items()))
            assert some_id in [hit.memory.id for hit in client.recall(some_text.rsplit(" ", 1)[-1], k=3)]
            assert client.list(limit=10).memories
        with daemon.admin(timeout=10.0) as admin:
            status = admin.status()
        assert status.writer_alive
        assert status.map_size_bytes == 2 << 20  # it grew to the ceiling, not past it

        # A full store still opens (start-up writes nothing it cannot).
        assert daemon.stop() == 0
        daemon.start()
        with daemon.client(NS, timeout=30.0) as client:
            assert_all_there(client, acked)
        assert daemon.stop() == 0

        daemon.env["MEMOSD_STORE_MAX_MAP_SIZE"] = str(64 << 20)
        daemon.start()
        with daemon.client(NS, timeout=30.0) as client:
            for _ in range(30):  # more than the old ceiling could ever hold on top of what is there
                items = [MemoryIn(text=f"after the ceiling was raised {unique_token()}") for _ in range(50)]
                acked.update({i: item.text for i, item in zip(client.remember_many(items).ids, items)})
            assert_all_there(client, acked)
