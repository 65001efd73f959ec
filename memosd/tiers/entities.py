"""The entity index of long-term memory: entity name <-> the consolidated pages that name it, in flat arrays.

As dicts of sets and tuples it held one hash table per name and one tuple per page, about 177 MiB at
1M generated memories (209k pages, about a million page-name pairs); as arrays it holds 4 bytes per
pair in each direction and a few per page.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import numpy as np

from ..retrieval.postings import grown, next_capacity

_NONE = np.zeros(0, dtype=np.int32)


class EntityIndex:
    """Casefolded entity names and the pages that name them, both ways. Runs on the event loop thread.

    Each name has a growable array of page ids (in the order the pages were consolidated); each page
    has a run of name ids in one shared pool, found by its offset and count. A page's run is written
    once per consolidation and abandoned when the page is cleared; the pool is compacted once more than
    half of it is abandoned runs."""

    def __init__(self) -> None:
        self._id_of: dict[str, int] = {}
        self._names: list[str] = []
        self._pages: list[np.ndarray] = []
        """Name id -> page ids (int32), the first ``_sizes[id]`` of them in use."""
        self._sizes: list[int] = []
        self._start = np.zeros(1024, dtype=np.int64)
        """Page id -> where its run of name ids starts in ``_pool``."""
        self._count = np.zeros(1024, dtype=np.int32)
        """Page id -> how many name ids its run holds (0: none)."""
        self._pool = np.zeros(1024, dtype=np.int32)
        self._used = 0
        self._abandoned = 0

    def add(self, page_id: int, names: Iterable[str]) -> tuple[str, ...]:
        """Index ``page_id`` under each of ``names`` (casefolded, duplicates dropped) after clearing what it
        had; returns the names as indexed, sorted."""
        self.remove(page_id)
        # Interned: the same names recur on many pages.
        indexed = tuple(sorted({sys.intern(name.casefold()) for name in names}))
        if not indexed:
            return indexed
        ids = [self._name_id(name) for name in indexed]
        for name_id in ids:
            size = self._sizes[name_id]
            pages = self._pages[name_id] = grown(self._pages[name_id], size + 1)
            pages[size] = page_id
            self._sizes[name_id] = size + 1
        self._start = grown(self._start, page_id + 1)
        self._count = grown(self._count, page_id + 1)
        self._pool = grown(self._pool, self._used + len(ids))
        self._pool[self._used:self._used + len(ids)] = ids
        self._start[page_id], self._count[page_id] = self._used, len(ids)
        self._used += len(ids)
        return indexed

    def remove(self, page_id: int) -> None:
        """Take ``page_id`` out of the index (nothing if it is not in it)."""
        ids = self._ids_of(page_id)
        if not len(ids):
            return
        for name_id in ids.tolist():
            size = self._sizes[name_id]
            pages = self._pages[name_id]
            keep = pages[:size] != page_id
            kept = int(keep.sum())
            pages[:kept] = pages[:size][keep]
            self._sizes[name_id] = kept
            if kept == 0:  # the name is gone from the index; its id stays reserved for it
                self._pages[name_id] = _NONE
        self._abandoned += len(ids)
        self._count[page_id] = 0
        if self._abandoned > self._used // 2:
            self._compact()

    def names_of(self, page_id: int) -> tuple[str, ...]:
        """The names a page is indexed under, sorted; empty for a page not in the index."""
        names = self._names
        return tuple(names[i] for i in self._ids_of(page_id).tolist())

    def pages_of(self, name: str) -> np.ndarray:
        """Ids of the pages indexed under ``name`` (casefolded), in the order they were added."""
        name_id = self._id_of.get(name.casefold())
        if name_id is None:
            return _NONE
        return self._pages[name_id][: self._sizes[name_id]]

    def __contains__(self, name: str) -> bool:
        return len(self.pages_of(name)) > 0

    def nbytes(self) -> int:
        """Rough RAM held: the arrays, and about 100 bytes per distinct name (its string, dict entry, array)."""
        arrays = sum(p.nbytes for p in self._pages) + self._start.nbytes + self._count.nbytes + self._pool.nbytes
        return arrays + 100 * len(self._names)

    def _name_id(self, name: str) -> int:
        name_id = self._id_of.get(name)
        if name_id is None:
            name_id = self._id_of[name] = len(self._names)
            self._names.append(name)
            self._pages.append(_NONE)
            self._sizes.append(0)
        return name_id

    def _ids_of(self, page_id: int) -> np.ndarray:
        if page_id >= len(self._count) or not self._count[page_id]:
            return _NONE
        start = int(self._start[page_id])
        return self._pool[start:start + int(self._count[page_id])]

    def _compact(self) -> None:
        """Rewrite the pool with the live runs only, in page order."""
        pages = np.flatnonzero(self._count)
        counts = self._count[pages].astype(np.int64)
        starts = self._start[pages]
        total = int(counts.sum())
        offsets = np.cumsum(counts) - counts
        # Position i of the new pool takes the old pool's run start of its page plus i's place in the run.
        sources = np.repeat(starts - offsets, counts) + np.arange(total)
        pool = np.zeros(next_capacity(0, max(total, 1)), dtype=np.int32)
        pool[:total] = self._pool[sources]
        self._start[pages] = offsets
        self._pool, self._used, self._abandoned = pool, total, 0
