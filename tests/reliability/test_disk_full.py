"""A real full disk (ENOSPC on a small tmpfs): typed error, no crash, no damage, service back once space is freed."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from filling import assert_all_there, remember_batches

from memosd.reliability.common import new_daemon

NS = "disk-full"
FS_BYTES = 4 << 20
FILLER_BYTES = 1536 << 10


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs: the only way to get a real ENOSPC without filling the machine's disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_a_typed_error_and_service_resumes_when_space_is_freed(small_fs):
    # Space someone else holds on the same file system, released later to recover.
    filler = small_fs / "filler"
    filler.write_bytes(os.urandom(FILLER_BYTES))
    acked: dict[int, str] = {}
    # The default map (1 GiB, sparse) is far larger than the disk: the disk runs out first.
    daemon = new_daemon(small_fs / "store")
    with daemon:
        with daemon.client(NS, timeout=30.0) as client:
            err = remember_batches(client, acked, 2000, "on a small disk")
            assert err is not None, "the disk never filled up"
            # It really was the disk: almost no space left, and the map nowhere near its size.
            assert shutil.disk_usage(small_fs).free < 256 << 10
            assert "maximum map size" not in err.message
            with daemon.admin(timeout=10.0) as admin:
                status = admin.status()
            assert status.writer_alive
            assert status.map_used_bytes < status.map_size_bytes // 2
            assert acked, "nothing was written before the disk filled"
            assert_all_there(client, acked)
            token = next(iter(acked.values())).rsplit(" ", 1)[-1]
            assert client.recall(token, k=1)[0].memory.text.endswith(token)

            filler.unlink()
            assert remember_batches(client, acked, 10, "on a small disk") is None  # writes work again, without a restart
            assert_all_there(client, acked)
        assert daemon.stop() == 0
        daemon.start()
        with daemon.client(NS, timeout=30.0) as client:
            assert_all_there(client, acked)
