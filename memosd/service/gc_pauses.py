"""Short garbage-collector pauses for a daemon whose state grows to millions of objects.

CPython's full (generation 2) collection visits every object the collector
tracks. The daemon's indexes, pages and records are millions of them, nearly all
living as long as the daemon and none in reference cycles, and a full collection
over them holds the event loop for tens of milliseconds at tens of thousands of
memories (85 ms measured at 30k, collecting nothing), whenever allocation
happens to trigger one: the slowest recalls are the ones that meet it.

So after each full collection the survivors are frozen (``gc.freeze``: moved to
a permanent generation the collector skips), and the next full collection visits
only what was allocated since. A frozen object that later becomes cyclic garbage
would never be reclaimed that way, so every ``RECLAIM_S``, once the daemon has
been without requests for ``QUIET_S``, everything is unfrozen and collected once,
while nobody waits.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from ..logs import get_logger

log = get_logger("memosd.service.gc")

CHECK_S = 1.0
"""How often the task looks whether the daemon is quiet."""
RECLAIM_S = 600.0
"""Least time between two collections of everything, frozen objects included."""
QUIET_S = 2.0
"""How long without requests the daemon must have been before such a collection."""


class PausePolicy:
    """Freezes survivors of full collections; collects everything now and then when the daemon is quiet."""

    def __init__(self, last_request_at: Callable[[], float]):
        self.last_request_at = last_request_at
        """time.perf_counter() of the latest request."""
        self._reclaimed_at = time.monotonic()
        self.freezes = 0
        self.reclaims = 0

    def _on_collection(self, phase: str, info: dict) -> None:
        # Right after a full collection: what survived it is frozen before anything else is allocated.
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()
            self.freezes += 1

    async def run(self) -> None:
        """Install the collector callback and keep watch until cancelled."""
        gc.callbacks.append(self._on_collection)
        try:
            while True:
                await asyncio.sleep(CHECK_S)
                self.check()
        finally:
            gc.callbacks.remove(self._on_collection)

    def check(self) -> None:
        quiet = time.perf_counter() - self.last_request_at() >= QUIET_S
        if quiet and time.monotonic() - self._reclaimed_at >= RECLAIM_S:
            self.reclaim()

    def reclaim(self) -> None:
        """Collect everything, frozen objects included, then freeze the survivors again."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self._reclaimed_at = time.monotonic()
        self.reclaims += 1
        log.info("collected garbage while quiet", collected=collected,
                 seconds=round(time.perf_counter() - started, 3), frozen=gc.get_freeze_count())
