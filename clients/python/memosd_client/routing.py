"""Following a cluster's redirects: which node a namespace's requests go to, learned from replies.

A node that does not own a namespace answers MOVED with the owner's endpoint;
one that knows the owner is changing answers UNAVAILABLE with ``retry_after_s``.
Against a single daemon neither reply occurs and the router never changes anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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

    def start(self, namespace: str | None, budget_s: float, safe: bool) -> "Attempt":
        """The routing state of one request: where it goes first, and how long it may keep trying."""
        return Attempt(self.endpoint(namespace), time.monotonic() + budget_s, safe)

    def after(self, err: MemosdError, namespace: str | None, attempt: "Attempt") -> float:
        """Point ``attempt`` where to resend after ``err`` and return how long to wait first; raises
        ``err`` when not to resend.

        MOVED means the request was not executed, so any request follows it, at most :data:`MAX_HOPS`
        times. UNAVAILABLE and a silent node may come after a write reached the log, so only ``safe``
        requests (reads, and writes with idempotency keys) are resent after them."""
        if isinstance(err, MovedError):
            target = err.details.get("endpoint")
            if isinstance(target, str) and target and attempt.moves < MAX_HOPS:
                self.routes[namespace] = attempt.endpoint = target
                attempt.moves += 1
                return 0.0
        elif isinstance(err, UnavailableError) and attempt.safe:
            wait = err.details.get("retry_after_s")
            if isinstance(wait, (int, float)) and time.monotonic() + wait < attempt.give_up:
                return float(wait)
        elif isinstance(err, (RequestTimeoutError, ConnectionFailedError)) and attempt.endpoint != self.seed \
                and attempt.safe:
            # The owner we were sent to is gone: ask the node we know again, it knows who owns it now.
            self.routes.pop(namespace, None)
            attempt.endpoint = self.seed
            return 0.0
        raise err


@dataclass(slots=True)
class Attempt:
    """One request's way through a cluster."""

    endpoint: str
    give_up: float
    """time.monotonic() after which a wait for UNAVAILABLE is no longer made."""
    safe: bool
    """Safe to resend after UNAVAILABLE or a silent node (reads, writes with idempotency keys)."""
    moves: int = 0
    """MOVED replies followed so far (waits and fallbacks do not count)."""
