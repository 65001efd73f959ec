"""A data file that is not a whole memosd store is refused at start, by name, and left byte for byte as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from memosd.reliability.common import new_daemon, sentence
from memosd_client import MemoryIn


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    """A real store of about 2 MB, stopped cleanly."""
    import random

    rng = random.Random(7)
    daemon = new_daemon(tmp_path_factory.mktemp("good") / "store")
    with daemon:
        with daemon.client("corrupt", timeout=30.0) as client:
            for _ in range(4):
                client.remember_many([MemoryIn(text=sentence(rng, 60)) for _ in range(500)])
        assert daemon.stop() == 0
    return daemon.data_dir


def truncated(fraction: float | None = None, size: int | None = None):
    def make(path, good_store):
        shutil.copy(good_store / "data.mdb", path)
        full = os.path.getsize(path)
        os.truncate(path, size if size is not None else int(full * fraction) // 4096 * 4096)

    return make


def random_bytes(path, good_store):
    path.write_bytes(os.urandom(256 << 10))


def text_file(path, good_store):
    path.write_text("These are my notes, not a database.\n" * 2000)


@pytest.mark.parametrize("make", [random_bytes, text_file, truncated(fraction=0.5), truncated(size=3 * 4096),
                                  truncated(size=5000)],
                         ids=["random-bytes", "text-file", "truncated-half", "truncated-3-pages",
                              "truncated-mid-meta"])
def test_start_refuses_the_file_by_name_and_changes_nothing(tmp_path, good_store, make):
    daemon = new_daemon(tmp_path / "store")
    daemon.data_dir.mkdir()
    data_file = daemon.data_dir / "data.mdb"
    make(data_file, good_store)
    before = hashlib.sha256(data_file.read_bytes()).hexdigest(), os.path.getsize(data_file)
    try:
        done = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=60,
                              env={**os.environ, **daemon.env})
    finally:
        daemon.cleanup()
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # an orderly refusal, not a signal
    assert str(data_file) in done.stderr
    assert "LMDB" in done.stderr or "truncated" in done.stderr
    assert (hashlib.sha256(data_file.read_bytes()).hexdigest(), os.path.getsize(data_file)) == before
