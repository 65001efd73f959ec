"""Dense backends saved with the index snapshot and opened at the next start, checked against the store.

Building a graph index (the memosd-ann plugin) takes minutes at a million
vectors, so a backend that can ``save`` and ``load`` itself is written to
``<data_dir>/indexes/dense/<namespace id>/`` by each index snapshot (while
serving, engine/checkpoint.py) and at a clean stop, and opened at the next
start instead of being rebuilt.

A saved backend is never trusted on its own: beside it lies the CRC-32 of the
vector each slot held (:class:`SlotDigests`, kept up to date with every add and
removal). At start every vector of the namespace is read from the store as
before and its CRC compared with the saved one for its slot; only the vectors
that differ or are missing are added, and slots the store no longer has are
removed. A start after a ``kill -9`` therefore opens the backend of the last
snapshot and adds what was written since; the store decides, so no
ordering between the save and the store's commits is needed. When more than
half of the vectors would have to change (slots renumbered by a rebuild of the
namespace, say), the saved backend is dropped and the namespace is built from
the store as without one.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..logs import get_logger

log = get_logger("memosd.dense")

FORMAT = 1
"""Version of the files below; another version is ignored (the namespace is built from the store)."""
HEADER = "header.json"
DIGESTS = "digests.npz"
BACKEND = "backend"


class SlotDigests:
    """CRC-32 of the vector each slot holds in one namespace's backend."""

    __slots__ = ("crc", "held", "version")

    def __init__(self, crc: np.ndarray | None = None, held: np.ndarray | None = None) -> None:
        self.crc = np.zeros(0, dtype=np.uint32) if crc is None else crc
        self.held = np.zeros(0, dtype=bool) if held is None else held
        self.version = 0
        """Counts changes, so that a backend that did not change since its last save is not saved again."""

    def set(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        """``slots`` now hold ``vectors`` (float32 rows, as stored)."""
        if not len(slots):
            return
        self._grow(int(slots.max()) + 1)
        self.crc[slots] = [zlib.crc32(row) for row in np.ascontiguousarray(vectors, dtype="<f4")]
        self.held[slots] = True
        self.version += 1

    def drop(self, slots: np.ndarray) -> None:
        slots = slots[slots < len(self.held)]
        self.held[slots] = False
        self.version += 1

    def holds(self, slot: int, crc: int) -> bool:
        return slot < len(self.held) and bool(self.held[slot]) and int(self.crc[slot]) == crc

    def _grow(self, size: int) -> None:
        if size <= len(self.held):
            return
        size = max(size, len(self.held) + len(self.held) // 4, 1024)
        crc, held = np.zeros(size, dtype=np.uint32), np.zeros(size, dtype=bool)
        crc[: len(self.crc)], held[: len(self.held)] = self.crc, self.held
        self.crc, self.held = crc, held

    def __len__(self) -> int:
        return int(np.count_nonzero(self.held))


@dataclass(frozen=True, slots=True)
class SavedHeader:
    """Which store, encoder and backend a saved space belongs to."""

    format: int
    store_id: str
    encoder: str
    backend: str


def space_dir(root: Path, ns_id: int) -> Path:
    return root / str(ns_id)


def save(root: Path, ns_id: int, header: SavedHeader, digests: SlotDigests, save_backend) -> Path:
    """Write one namespace's space: the backend (``save_backend(directory)``), its digests and header,
    in a temporary directory renamed over the last save once complete."""
    final = space_dir(root, ns_id)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_backend(tmp / BACKEND)
    np.savez(tmp / DIGESTS, crc=digests.crc, held=digests.held)
    (tmp / HEADER).write_text(json.dumps({"format": header.format, "store_id": header.store_id,
                                          "encoder": header.encoder, "backend": header.backend}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def open_saved(root: Path, ns_id: int, expect: SavedHeader) -> tuple[Path, SlotDigests] | None:
    """The saved backend's directory and its digests when they were written for ``expect``; else None."""
    where = space_dir(root, ns_id)
    try:
        found = json.loads((where / HEADER).read_text())
        with np.load(where / DIGESTS) as arrays:
            digests = SlotDigests(arrays["crc"].astype(np.uint32), arrays["held"].astype(bool))
    except (OSError, ValueError, KeyError):
        return None
    if found != {"format": expect.format, "store_id": expect.store_id, "encoder": expect.encoder,
                 "backend": expect.backend} or len(digests.crc) != len(digests.held):
        log.info("saved dense index is for another store, encoder or backend: building from the store",
                 namespace_id=ns_id, saved=found)
        return None
    return where / BACKEND, digests


def remove_others(root: Path, keep: set[int]) -> None:
    """Delete the saved spaces of namespaces that no longer exist (and interrupted saves)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.name.endswith(".tmp") or not (path.name.isdigit() and int(path.name) in keep):
            shutil.rmtree(path, ignore_errors=True)
