"""The event bus: the engine emits after each commit; sinks publish without ever blocking it."""

from __future__ import annotations

import time
from typing import Any, Protocol

from memosd_client.protocol.messages import Event

from ..logs import get_logger

log = get_logger("memosd.events")


class EventSink(Protocol):
    """Something that publishes events. ``offer`` must return at once (queue or drop, never wait)."""

    name: str

    def offer(self, event: Event) -> None: ...


class EventBus:
    """Fans each event out to every sink; a failing sink is counted and skipped."""

    def __init__(self) -> None:
        self.sinks: list[EventSink] = []
        self.seq = 0
        self.sink_errors = 0

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, kind: str, namespace: str, ids: list[int], **details: Any) -> None:
        if not self.sinks:
            return
        self.seq += 1
        event = Event(kind=kind, namespace=namespace, ids=ids, at=time.time(), seq=self.seq, details=details)
        for sink in self.sinks:
            try:
                sink.offer(event)
            except Exception:  # an event sink must never fail a write that is already committed
                self.sink_errors += 1
                log.exception("event sink failed", sink=sink.name)
