"""Following a cluster's redirects: which node a namespace's requests go to, learned from replies.

A node that does not own a namespace answers MOVED with the owner's endpoint;
one that knows the owner is changing answers UNAVAILABLE with ``retry_after_s``.
Against a single daemon neither reply occurs and the router never changes anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .protocol.errors import (
    ConnectionFailedError,
    MemosdError,
    MovedError,
    RequestTimeoutError,
    UnavailableError,
)

MAX_HOPS = 5
"""MOVED replies followed for one request (ownership moving again and again means something is wrong)."""


C = TypeVar("C")


class Router(Generic[C]):
    """Per-namespace routes of one client, starting from the endpoint it was made with, and the clients
    of the other nodes that MOVED replies sent it to."""

    def __init__(self, seed: str):
        self.seed = seed
        self.routes: dict[str | None, str] = {}
        self.peers: dict[str, C] = {}

    def client(self, endpoint: str, own: C, make: Callable[[str], C]) -> C:
        """``own`` for the seed endpoint, else the (cached) client ``make`` builds for ``endpoint``."""
        if endpoint == self.seed:
            return own
        peer = self.peers.get(endpoint)
        if peer is None:
            peer = self.peers[endpoint] = make(endpoint)
        return peer

    def endpoint(self, namespace: str | None) -> str:
        return self.routes.get(namespace, self.seed)

    def after(self, err: MemosdError, namespace: str | None, endpoint: str, hops: int, give_up: float,
              safe: bool) -> tuple[str, float]:
        """Where to resend after ``err`` and how long to wait first; raises ``err`` when not to resend.

        MOVED means the request was not executed, so any request follows it. UNAVAILABLE and a silent
        node may come after a write reached the log, so only ``safe`` requests (reads, and writes with
        idempotency keys) are resent after them."""
        if isinstance(err, MovedError):
            target = err.details.get("endpoint")
            if isinstance(target, str) and target and hops < MAX_HOPS:
                self.routes[namespace] = target
                return target, 0.0
        elif isinstance(err, UnavailableError) and safe:
            wait = err.details.get("retry_after_s")
            if isinstance(wait, (int, float)) and time.monotonic() + wait < give_up:
                return endpoint, float(wait)
        elif isinstance(err, (RequestTimeoutError, ConnectionFailedError)) and endpoint != self.seed and safe:
            # The owner we were sent to is gone: ask the node we know again, it knows who owns it now.
            self.routes.pop(namespace, None)
            return self.seed, 0.0
        raise err
