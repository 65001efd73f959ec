"""Saved dense backends: what a start accepts, and the slot digests it checks them with."""

from __future__ import annotations

import zlib

import numpy as np

from memosd.plugins import saved_spaces
from memosd.plugins.saved_spaces import SavedHeader, SlotDigests

HEADER = SavedHeader(saved_spaces.FORMAT, "store-a", "enc/1/4", "hnsw")


def _rows(n: int) -> np.ndarray:
    return np.arange(n * 4, dtype="<f4").reshape(n, 4)


def test_digests_follow_adds_replacements_and_drops():
    digests = SlotDigests()
    rows = _rows(3)
    digests.set(np.array([5, 2000, 7]), rows)
    assert len(digests) == 3 and digests.holds(2000, zlib.crc32(rows[1]))
    digests.set(np.array([7]), rows[:1])  # a slot reused for another vector
    assert not digests.holds(7, zlib.crc32(rows[2]))
    digests.drop(np.array([5, 99_999]))  # unknown slots are ignored
    assert len(digests) == 2 and not digests.holds(5, zlib.crc32(rows[0]))


def test_a_save_is_opened_only_for_its_store_encoder_and_backend(tmp_path):
    digests = SlotDigests()
    digests.set(np.array([0, 1]), _rows(2))
    written = []
    saved_spaces.save(tmp_path, 7, HEADER, digests, lambda where: written.append(where.mkdir()))
    where, found = saved_spaces.open_saved(tmp_path, 7, HEADER)
    assert where.is_dir() and len(found) == 2 and np.array_equal(found.crc, digests.crc)
    for other in (SavedHeader(saved_spaces.FORMAT, "store-b", "enc/1/4", "hnsw"),
                  SavedHeader(saved_spaces.FORMAT, "store-a", "enc/2/4", "hnsw"),
                  SavedHeader(saved_spaces.FORMAT, "store-a", "enc/1/4", "other"),
                  SavedHeader(saved_spaces.FORMAT + 1, "store-a", "enc/1/4", "hnsw")):
        assert saved_spaces.open_saved(tmp_path, 7, other) is None
    assert saved_spaces.open_saved(tmp_path, 8, HEADER) is None  # nothing saved for that namespace
    (tmp_path / "7" / saved_spaces.DIGESTS).write_bytes(b"torn")
    assert saved_spaces.open_saved(tmp_path, 7, HEADER) is None


def test_saves_of_gone_namespaces_and_interrupted_saves_are_removed(tmp_path):
    for name in ("3", "4", "4.tmp", "junk"):
        (tmp_path / name).mkdir()
    saved_spaces.remove_others(tmp_path, keep={4})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4"]
