"""Run the store's operations on a sync or an asyncio memosd client.

Each operation is written once, as a generator that yields :class:`Request`
objects (or lists of them, to be sent concurrently) and receives their results;
a memosd error is thrown back into the generator at the ``yield``. The sync
driver calls :class:`memosd_client.Client`, the async one awaits
:class:`memosd_client.AsyncClient`, so both paths run the same logic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from memosd_client import AsyncClient, Client

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """One client call: ``getattr(client, method)(**kwargs)``."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


Plan = Generator["Request | list[Request]", Any, T]


def run_sync(plan: Plan[T], client: Client) -> T:
    """Drive a plan to its result with blocking calls."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(reply)
        except StopIteration as stop:
            return stop.value
        reply, error = None, None
        try:
            if isinstance(step, list):
                reply = [getattr(client, r.method)(**r.kwargs) for r in step]
            else:
                reply = getattr(client, step.method)(**step.kwargs)
        except Exception as exc:  # handed to the plan, which re-raises what it does not handle
            error = exc


async def run_async(plan: Plan[T], client: AsyncClient) -> T:
    """Drive a plan to its result on the event loop; a list of requests is sent concurrently."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(reply)
        except StopIteration as stop:
            return stop.value
        reply, error = None, None
        try:
            if isinstance(step, list):
                reply = list(await asyncio.gather(*(getattr(client, r.method)(**r.kwargs) for r in step)))
            else:
                reply = await getattr(client, step.method)(**step.kwargs)
        except Exception as exc:
            error = exc
