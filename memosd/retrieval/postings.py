"""Append-friendly inverted index whose postings live in growable numpy arrays (see next_capacity)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# Approximate CPython cost of one posting list: the object and two array headers.
_LIST_OVERHEAD = 72 + 2 * 112


_DOUBLE_UP_TO = 1 << 16


def next_capacity(capacity: int, needed: int) -> int:
    """Room for at least ``needed`` items: double while small, then a quarter more at a time, so that a
    large array (a namespace's columns, a common word's postings) carries at most a quarter of spare
    room, not up to as much again as it holds; appends stay amortised O(1)."""
    step = capacity if capacity < _DOUBLE_UP_TO else capacity // 4
    return max(needed, capacity + step, 8)


def grown(array: np.ndarray, needed: int) -> np.ndarray:
    """Return ``array`` or a zero-padded copy holding at least ``needed`` items."""
    if needed <= len(array):
        return array
    bigger = np.zeros(next_capacity(len(array), needed), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class PostingList:
    """(slot, value) pairs of one key; at most one pair per slot."""

    __slots__ = ("slots", "values", "size")

    def __init__(self, capacity: int) -> None:
        self.slots = np.zeros(capacity, dtype=np.int32)
        self.values = np.zeros(capacity, dtype=np.float32)
        self.size = 0

    def append(self, slot: int, value: float) -> None:
        if self.size == len(self.slots):
            self.slots = grown(self.slots, self.size + 1)
            self.values = grown(self.values, self.size + 1)
        self.slots[self.size] = slot
        self.values[self.size] = value
        self.size += 1

    def extend(self, slots: np.ndarray, values: np.ndarray) -> None:
        end = self.size + len(slots)
        if end > len(self.slots):
            self.slots = grown(self.slots, end)
            self.values = grown(self.values, end)
        self.slots[self.size : end] = slots
        self.values[self.size : end] = values
        self.size = end

    def remove_many(self, slots: np.ndarray) -> np.ndarray:
        """Delete the pairs of every slot in ``slots`` in one pass; return the slots removed."""
        view = self.slots[: self.size]
        # One slot (a coarse document replaced, a single purge) is the common case; isin costs far more.
        drop = view == slots[0] if len(slots) == 1 else np.isin(view, slots)
        removed = view[drop]
        if not removed.size:
            return removed
        keep = ~drop
        kept = self.size - removed.size
        self.slots[:kept] = view[keep]
        self.values[:kept] = self.values[: self.size][keep]
        self.slots[kept : self.size] = 0
        self.values[kept : self.size] = 0.0
        self.size = kept
        if len(self.slots) > 16 and len(self.slots) >= 4 * self.size:
            # Give memory back once a list has mostly been purged.
            self.slots = self.slots[: 2 * self.size].copy()
            self.values = self.values[: 2 * self.size].copy()
        return removed

    def trim(self) -> None:
        """Drop the spare capacity growth left (the next append grows the arrays again)."""
        if len(self.slots) > self.size:
            self.slots = self.slots[: self.size].copy()
            self.values = self.values[: self.size].copy()

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """The live slots and values (views, not copies)."""
        return self.slots[: self.size], self.values[: self.size]

    def nbytes(self) -> int:
        return self.slots.nbytes + self.values.nbytes + _LIST_OVERHEAD


class InvertedIndex:
    """Integer key -> PostingList, with per-slot posting counts so purges can be verified."""

    def __init__(self) -> None:
        self.lists: list[PostingList | None] = []
        self._per_slot = np.zeros(1024, dtype=np.int32)

    def get(self, key: int) -> PostingList | None:
        return self.lists[key] if key < len(self.lists) else None

    def trim(self) -> None:
        """Give back every list's spare capacity: after a bulk load, a quarter or more of the postings'
        RAM is room that growth left and that only new documents would fill."""
        for plist in self.lists:
            if plist is not None:
                plist.trim()

    def add(self, keys: np.ndarray, slots: np.ndarray, values: np.ndarray) -> None:
        """Append aligned (key, slot, value) postings, one numpy copy per distinct key."""
        if not len(keys):
            return
        low, high = int(slots.min()), int(slots.max())
        self._per_slot = grown(self._per_slot, high + 1)
        self._per_slot[low : high + 1] += np.bincount(slots - low).astype(np.int32)
        order = np.argsort(keys, kind="stable")
        keys, slots, values = keys[order], slots[order], values[order]
        starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        bounds = [0, *starts.tolist(), len(keys)]
        top = int(keys[-1]) + 1
        if top > len(self.lists):
            self.lists.extend([None] * (top - len(self.lists)))
        lists = self.lists
        for key, start, end in zip(keys[bounds[:-1]].tolist(), bounds, bounds[1:]):
            plist = lists[key]
            if plist is None:
                lists[key] = plist = PostingList(end - start)
            plist.extend(slots[start:end], values[start:end])

    def add_one(self, slot: int, keys: list[int], values: list[float]) -> None:
        """Append one document's postings (distinct ``keys``) with scalar writes."""
        self._per_slot = grown(self._per_slot, slot + 1)
        self._per_slot[slot] += len(keys)
        if keys and max(keys) >= len(self.lists):
            self.lists.extend([None] * (max(keys) + 1 - len(self.lists)))
        lists = self.lists
        for key, value in zip(keys, values):
            plist = lists[key]
            if plist is None:
                lists[key] = plist = PostingList(4)
            plist.append(slot, value)

    def remove(self, slot: int, keys: Iterable[int]) -> list[int]:
        """Purge ``slot`` from the lists of ``keys``; return the keys whose lists emptied."""
        return self.remove_many([(slot, keys)])

    def remove_many(self, docs: Iterable[tuple[int, Iterable[int]]]) -> list[int]:
        """Purge several (slot, keys) documents, touching each posting list once.

        If the keys do not account for all of a slot's postings (the caller
        passed different text than it indexed), every list is swept for the
        slots left over, so a purge is complete either way.
        """
        by_key: dict[int, list[int]] = {}
        slots: list[int] = []
        for slot, keys in docs:
            slots.append(slot)
            for key in set(keys):
                by_key.setdefault(key, []).append(slot)
        if not slots:
            return []
        emptied: list[int] = []
        counted = np.zeros(max(slots) + 1, dtype=np.int64)
        for key, key_slots in by_key.items():
            removed = self._remove_from(key, np.asarray(key_slots, dtype=np.int32), emptied)
            np.add.at(counted, removed, 1)
        target = np.asarray(slots)
        expected = self._per_slot[target] if len(self._per_slot) > target.max() else np.zeros(len(target))
        leftover = target[counted[target] != expected]
        if leftover.size:
            for key in range(len(self.lists)):
                self._remove_from(key, leftover.astype(np.int32), emptied)
        known = target[target < len(self._per_slot)]
        self._per_slot[known] = 0
        return emptied

    def _remove_from(self, key: int, slots: np.ndarray, emptied: list[int]) -> np.ndarray:
        plist = self.get(key)
        if plist is None:
            return slots[:0]
        removed = plist.remove_many(slots)
        if plist.size == 0:
            self.lists[key] = None
            emptied.append(key)
        return removed

    def nbytes(self) -> int:
        lists = sum(p.nbytes() for p in self.lists if p is not None)
        return lists + 8 * len(self.lists) + self._per_slot.nbytes
