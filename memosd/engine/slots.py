"""Per-namespace columns indexed by slot: the in-RAM view used for filtering.

Each stored version gets a slot (0, 1, 2, ... in load/write order). Columns are
numpy arrays grown by doubling, so filters are vectorised and appends are cheap.
"""

from __future__ import annotations

import heapq

import numpy as np

from ..retrieval.postings import next_capacity

INF = np.inf


class Interner:
    """Maps strings (sessions, sources, tags) to small ints for vectorised filters."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str | None) -> int:
        if value is None:
            return -1
        got = self.codes.get(value)
        if got is None:
            got = self.codes[value] = len(self.codes)
            self.values.append(value)
        return got

    def value(self, code: int) -> str | None:
        """The string of a code (None for -1, the code of None)."""
        return self.values[code] if 0 <= code < len(self.values) else None

    def lookup(self, value: str) -> int | None:
        return self.codes.get(value)


class SlotTable:
    """Columns: id, valid_from, valid_to, event_time, session, source, tier, forgotten_at, present, and
    who said it (speaker, a code of the namespace's SpeakerIndex) and what the text says about time
    (time_mentions, talks_from, talks_to, and ``months``: bit m-1 set for each calendar month m the memory
    was said in or its dated mentions start or end in, so a question naming a month is one bit test).

    Open-ended times (current versions, memories never forgotten) are +inf.
    """

    COLUMNS = {
        "ids": np.int64,
        "valid_from": np.float64,
        "valid_to": np.float64,
        "event_time": np.float64,
        "session": np.int32,
        "source": np.int32,
        "tier": np.int8,
        "forgotten_at": np.float64,
        "present": np.bool_,
        "speaker": np.int32,
        "time_mentions": np.int8,
        "talks_from": np.float64,
        "talks_to": np.float64,
        "months": np.int16,
    }

    def __init__(self, capacity: int = 1024):
        self.size = 0
        self.free: list[int] = []
        self.capacity = capacity
        for name, dtype in self.COLUMNS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        self.current = np.zeros(capacity, dtype=np.bool_)
        """present & not superseded & not forgotten: the default recall mask, kept up to date."""

    def append(self) -> int:
        """A slot for a new row: the lowest purged one if any (so RAM does not grow with the
        number of versions ever purged), else a new one at the end."""
        if self.free:
            return heapq.heappop(self.free)
        if self.size == self.capacity:
            self._grow()
        slot = self.size
        self.size += 1
        return slot

    def release(self, slot: int) -> None:
        """Give a purged row's slot back for reuse."""
        heapq.heappush(self.free, slot)

    def _grow(self) -> None:
        self.capacity = next_capacity(self.capacity, self.capacity + 1)
        for name in (*self.COLUMNS, "current"):
            old = getattr(self, name)
            new = np.zeros(self.capacity, dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def refresh_current(self, slot: int) -> None:
        self.current[slot] = bool(
            self.present[slot] and self.forgotten_at[slot] == INF and self.valid_to[slot] == INF
        )

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in (*self.COLUMNS, "current"))
