"""Per-peer request queues served round-robin, so a deep queue waits behind itself.

The server reads every socket eagerly into these queues and takes one request per
peer per round: a client that sends ten thousand requests delays its own, not the
one request of each other client.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Queued:
    """A request as read from the socket, not yet decoded."""

    frames: list[bytes]
    principal: Any


class FairQueue:
    """Round-robin across peers (keyed by connection identity), first-in first-out within one."""

    def __init__(self) -> None:
        self._queues: dict[bytes, collections.deque[Queued]] = {}
        self._turns: collections.deque[bytes] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def pending(self, peer: bytes) -> int:
        """Requests of ``peer`` waiting to be served."""
        queue = self._queues.get(peer)
        return len(queue) if queue else 0

    def push(self, peer: bytes, item: Queued) -> None:
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = collections.deque()
            self._turns.append(peer)
        queue.append(item)
        self._size += 1

    def pop(self) -> tuple[bytes, Queued] | None:
        """The next request in round-robin order, or None when every queue is empty."""
        if not self._turns:
            return None
        peer = self._turns.popleft()
        queue = self._queues[peer]
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._turns.append(peer)
        else:
            del self._queues[peer]
        return peer, item

    def discard(self, peer: bytes) -> int:
        """Drop every queued request of ``peer``; return how many there were."""
        queue = self._queues.pop(peer, None)
        if not queue:
            return 0
        self._turns.remove(peer)
        self._size -= len(queue)
        return len(queue)
