"""Backpressure per client: a cap on writes in flight and an optional request rate.

Both answer BUSY at once instead of queueing without bound, so one greedy client
cannot grow the daemon's queues or starve the others.
"""

from __future__ import annotations

import math
import time

from memosd_client.protocol.errors import BusyError


class Backpressure:
    """Keyed by the client's connection identity."""

    def __init__(self, max_inflight: int, rate: float, burst: float | None = None):
        self.max_inflight = max_inflight
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.inflight: dict[bytes, int] = {}
        self._buckets: dict[bytes, tuple[float, float]] = {}
        self.rejected = 0

    def admit(self, peer: bytes) -> None:
        """Check the rate limit for one request (token bucket); raise BUSY when over it."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self.rejected += 1
            raise BusyError(f"over the rate limit of {self.rate:g} requests/s; retry later",
                            # Rounded up: a BUSY that says "retry after 0 s" invites a client to spin.
                            details={"retry_after_s": math.ceil((1.0 - tokens) / self.rate * 1000) / 1000})
        self._buckets[peer] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle peers rather than grow without bound
            self._buckets.clear()

    def begin_write(self, peer: bytes) -> None:
        count = self.inflight.get(peer, 0)
        if count >= self.max_inflight:
            self.rejected += 1
            raise BusyError(f"{count} writes already in flight from this client (limit {self.max_inflight})")
        self.inflight[peer] = count + 1

    def end_write(self, peer: bytes) -> None:
        count = self.inflight.get(peer, 1) - 1
        if count <= 0:
            self.inflight.pop(peer, None)
        else:
            self.inflight[peer] = count
