"""Append-friendly postings stored in numpy arrays that double when full."""

from __future__ import annotations

import numpy as np

# Approximate CPython cost of one PostingList: the object plus two array headers.
POSTING_LIST_OVERHEAD = 72 + 2 * 112


def grown(array: np.ndarray, needed: int) -> np.ndarray:
    """Return ``array`` or a zero-padded copy holding at least ``needed`` items."""
    if needed <= len(array):
        return array
    bigger = np.zeros(max(needed, 2 * len(array), 8), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class PostingList:
    """(slot, value) pairs of one term; at most one pair per slot."""

    __slots__ = ("slots", "values", "size")

    def __init__(self, capacity: int = 4) -> None:
        self.slots = np.zeros(capacity, dtype=np.int32)
        self.values = np.zeros(capacity, dtype=np.float32)
        self.size = 0

    def append(self, slot: int, value: float) -> None:
        if self.size == len(self.slots):
            self._reserve(self.size + 1)
        self.slots[self.size] = slot
        self.values[self.size] = value
        self.size += 1

    def extend(self, slots: np.ndarray, values: np.ndarray) -> None:
        end = self.size + len(slots)
        self._reserve(end)
        self.slots[self.size : end] = slots
        self.values[self.size : end] = values
        self.size = end

    def remove(self, slot: int) -> bool:
        """Delete the pair for ``slot``, wiping the vacated cell; False if absent."""
        found = np.flatnonzero(self.slots[: self.size] == slot)
        if not found.size:
            return False
        i, last = int(found[0]), self.size - 1
        self.slots[i:last] = self.slots[i + 1 : self.size]
        self.values[i:last] = self.values[i + 1 : self.size]
        self.slots[last] = 0
        self.values[last] = 0.0
        self.size = last
        if 8 < len(self.slots) >= 4 * self.size:
            # Give memory back once a list has mostly been purged.
            self.slots = self.slots[: 2 * self.size].copy()
            self.values = self.values[: 2 * self.size].copy()
        return True

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """The live slots and values (views, not copies)."""
        return self.slots[: self.size], self.values[: self.size]

    def nbytes(self) -> int:
        return self.slots.nbytes + self.values.nbytes + POSTING_LIST_OVERHEAD

    def _reserve(self, needed: int) -> None:
        self.slots = grown(self.slots, needed)
        self.values = grown(self.values, needed)
