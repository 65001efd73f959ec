"""Changes to the dense backends, applied on the event loop one chunk per loop turn, in commit order.

A graph backend takes about a millisecond per vector it adds: a commit's 512
vectors added at once held the event loop for a third of a second, every
request waiting behind it. Queued here and applied a chunk at a time, requests
run between chunks. Changes still run on the event loop, one at a time and in
the order they were queued (an add before a later purge's removal of the same
slot), so a backend is never called concurrently and is idle whenever the loop
forks for a snapshot.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ADD_CHUNK = 16
"""Vectors per backend add while serving: a graph backend takes about 1 ms a vector (2 cores, 100k)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one namespace's backend."""

    space: Any
    kind: Literal["add", "remove", "ready"]
    slots: np.ndarray | None = None
    vectors: np.ndarray | None = None


class BackendChanges:
    """The queue of changes and the loop task that applies them through ``apply``."""

    def __init__(self, apply: Callable[[Change], None]) -> None:
        self._apply = apply
        self._queue: collections.deque[Change] = collections.deque()
        self.pending_vectors = 0
        """Vectors queued and not added yet."""
        self._waiting: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def add(self, space: Any, slots: np.ndarray, vectors: np.ndarray) -> None:
        for start in range(0, len(slots), ADD_CHUNK):
            self._put(Change(space, "add", slots[start:start + ADD_CHUNK], vectors[start:start + ADD_CHUNK]))

    def remove(self, space: Any, slots: np.ndarray) -> None:
        self._put(Change(space, "remove", slots))

    def ready(self, space: Any) -> None:
        """The space is complete once what was queued before is applied."""
        self._put(Change(space, "ready"))

    def _put(self, change: Change) -> None:
        self._queue.append(change)
        if change.kind == "add":
            self.pending_vectors += len(change.slots)
        if self._waiting is not None:
            self._waiting.set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting = asyncio.Event()
        self._task = loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._waiting.clear()
                await self._waiting.wait()
                continue
            self._apply_next()
            await asyncio.sleep(0)

    def _apply_next(self) -> None:
        change = self._queue.popleft()
        if change.kind == "add":
            self.pending_vectors -= len(change.slots)
        self._apply(change)

    def apply_pending(self) -> None:
        """Apply every queued change now (a clean stop, before the backends are saved)."""
        while self._queue:
            self._apply_next()
