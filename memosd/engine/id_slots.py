"""Memory id -> slot of one namespace, in an array while the ids are dense (as the allocator makes them).

A dict of a million ints took about 100 MiB (a key object, a value object and a table entry per
memory); an int32 per possible id takes 4 MB. Ids come from a per-namespace counter, so they are dense
but for purges; an import can bring any id, and one far past the others goes in a small dict instead
of growing the array to reach it. The tiers' document tables use the same map for their keys and
slots (pages are numbered by a counter too).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator

import numpy as np

from ..retrieval.postings import next_capacity

_DENSE_SLACK = 1 << 16
"""Ids up to this far past four times the count still go in the array (it is then at most 16 bytes a
memory, plus this)."""


class IdSlots:
    """The mapping operations the engine uses (get, in, [], []=, del, pop, len, iteration), int -> int.

    Values are slots (int32 by default); ``dtype`` int64 holds any int64 but its smallest, which marks
    an absent key (the coarse index maps its document slots back to unit keys that way)."""

    __slots__ = ("_slots", "_sparse", "_count", "_absent")

    def __init__(self, dtype: type = np.int32) -> None:
        self._absent = int(np.iinfo(dtype).min)
        self._slots = np.full(1024, self._absent, dtype=dtype)
        self._sparse: dict[int, int] = {}
        self._count = 0
        """Ids held in ``_slots`` (the sparse ones are counted by their dict)."""

    def get(self, memory_id: int, default: int | None = None) -> int | None:
        if 0 <= memory_id < len(self._slots):
            slot = int(self._slots[memory_id])
            return default if slot == self._absent else slot
        return self._sparse.get(memory_id, default)

    def __contains__(self, memory_id: object) -> bool:
        try:
            return self.get(operator.index(memory_id)) is not None  # numpy integers count as ids too
        except TypeError:
            return False

    def __getitem__(self, memory_id: int) -> int:
        slot = self.get(memory_id)
        if slot is None:
            raise KeyError(memory_id)
        return slot

    def __setitem__(self, memory_id: int, slot: int) -> None:
        # Numpy integers would be dict keys and values of their own type.
        memory_id, slot = operator.index(memory_id), operator.index(slot)
        if not self._absent < slot <= np.iinfo(self._slots.dtype).max:
            raise ValueError(f"value {slot} out of range")
        if memory_id >= len(self._slots) and 0 <= memory_id <= 4 * (len(self) + 1) + _DENSE_SLACK:
            self._grow(memory_id + 1)
        if 0 <= memory_id < len(self._slots):
            if self._slots[memory_id] == self._absent:
                self._count += 1
            self._slots[memory_id] = slot
        else:
            self._sparse[memory_id] = slot

    def pop(self, memory_id: int, default: int | None = None) -> int | None:
        if 0 <= memory_id < len(self._slots):
            slot = int(self._slots[memory_id])
            if slot == self._absent:
                return default
            self._slots[memory_id] = self._absent
            self._count -= 1
            return slot
        return self._sparse.pop(memory_id, default)

    def __delitem__(self, memory_id: int) -> None:
        if self.pop(memory_id) is None:
            raise KeyError(memory_id)

    def __len__(self) -> int:
        return self._count + len(self._sparse)

    def __iter__(self) -> Iterator[int]:
        """Ids in ascending order for the dense part, then the sparse ones."""
        yield from np.flatnonzero(self._slots != self._absent).tolist()
        yield from list(self._sparse)

    def nbytes(self) -> int:
        return self._slots.nbytes + 100 * len(self._sparse)

    def _grow(self, needed: int) -> None:
        grown = np.full(next_capacity(len(self._slots), needed), self._absent, dtype=self._slots.dtype)
        grown[: len(self._slots)] = self._slots
        self._slots = grown
        # Sparse ids the array now reaches move into it.
        for memory_id in [i for i in self._sparse if 0 <= i < len(grown)]:
            self._slots[memory_id] = self._sparse.pop(memory_id)
            self._count += 1
