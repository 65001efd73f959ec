"""Timed operations against memosd over its real socket, as the client sees them.

Every measurement here goes through :class:`memosd_client.Client` (or
:class:`AsyncClient` for the concurrent case), so each figure includes the
client library, the socket, the daemon's framing and the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memosd_client import AsyncClient, Client
from memosd_client.protocol import messages as m

from .stats import summarize_ns
from .workload import Workload


class MemosdRecall:
    """One recall through the client library; keeps the daemon's own ``took_us`` for each call."""

    def __init__(self, client: Client, k: int):
        self.client = client
        self.k = k
        self.took_us: list[int] = []
        self.empty = 0

    def __call__(self, query: str) -> int:
        started = time.perf_counter_ns()
        # ``request`` is what ``Client.recall`` calls; using it directly keeps ``took_us`` visible.
        result = self.client.request("recall", m.RecallArgs(query=query, k=self.k), self.client.namespace)
        elapsed = time.perf_counter_ns() - started
        self.took_us.append(result.took_us)
        if not result.hits:
            self.empty += 1
        return elapsed


def interleaved(probes: dict[str, Callable[[str], int]], queries: Sequence[str], *,
                block: int = 100, warmup: int = 50, on_block: Callable[[int], None] | None = None
                ) -> dict[str, list[int]]:
    """Run every query on every probe, alternating probes block by block.

    Alternating in blocks (rather than all of one path, then all of the next)
    spreads the machine's noise evenly over the paths being compared, so their
    ratios hold even when absolute times drift during the run.
    """
    for probe in probes.values():
        for query in queries[:warmup]:
            probe(query)
    samples: dict[str, list[int]] = {name: [] for name in probes}
    for start in range(0, len(queries), block):
        chunk = queries[start:start + block]
        for name, probe in probes.items():
            record = samples[name].append
            for query in chunk:
                record(probe(query))
        if on_block is not None:
            on_block(len(chunk))
    return samples


def fill(client: Client, workload: Workload, count: int, batch: int = 1000,
         on_batch: Callable[[int], None] | None = None) -> dict[str, float]:
    """Store ``count`` memories in durable batches; returns the rate achieved."""
    started = time.perf_counter()
    for items in workload.batches(count, batch):
        client.remember_many(items)
        if on_batch is not None:
            on_batch(len(items))
    seconds = time.perf_counter() - started
    return {"memories": count, "seconds": round(seconds, 3),
            "per_s": round(count / seconds, 1) if seconds else None}


@dataclass
class Timed:
    """Raw timings of a write test: per-request samples, memories written and wall seconds.

    Kept raw so rounds run at different moments can be merged before summarising.
    """

    samples: list[int] = field(default_factory=list)
    items: int = 0
    seconds: float = 0.0

    def merge(self, other: "Timed") -> "Timed":
        return Timed(self.samples + other.samples, self.items + other.items, self.seconds + other.seconds)

    def summary(self) -> dict[str, float]:
        return {**summarize_ns(self.samples), "memories": self.items,
                "per_s": round(self.items / self.seconds, 1) if self.seconds else None}


def single_remember(client: Client, workload: Workload, count: int) -> Timed:
    """One-memory remembers, sequential (each reply means it is on disk)."""
    samples = []
    items = workload.memories(count)  # made before the clock starts: the workload is not the daemon's cost
    started = time.perf_counter()
    for item in items:
        t0 = time.perf_counter_ns()
        client.remember(item.text, session=item.session, event_time=item.event_time, meta=item.meta)
        samples.append(time.perf_counter_ns() - t0)
    return Timed(samples, count, time.perf_counter() - started)


def batched_remember(client: Client, workload: Workload, batch: int, batches: int) -> Timed:
    """Sequential batched remembers (each batch is committed, durably by default, before its reply)."""
    samples = []
    requests = list(workload.batches(batch * batches, batch))
    started = time.perf_counter()
    for items in requests:
        t0 = time.perf_counter_ns()
        client.remember_many(items)
        samples.append(time.perf_counter_ns() - t0)
    return Timed(samples, batch * batches, time.perf_counter() - started)


def concurrent_remember(endpoint: str, namespace: str, workload: Workload, count: int,
                        concurrency: int, curve=None) -> Timed:
    """Single-memory remembers with ``concurrency`` in flight on one asyncio client.

    This is the case group commit is for: many small writes share one fsync.
    """
    items = workload.memories(count)

    async def run() -> Timed:
        samples: list[int] = []
        async with AsyncClient(endpoint, namespace=namespace, timeout=30.0, curve=curve) as client:
            await client.remember("warm-up")
            queue = iter(items)

            async def worker() -> None:
                for item in queue:  # the shared iterator hands each item to exactly one worker
                    t0 = time.perf_counter_ns()
                    await client.remember(item.text, session=item.session, event_time=item.event_time,
                                          meta=item.meta)
                    samples.append(time.perf_counter_ns() - t0)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return Timed(samples, count, time.perf_counter() - started)

    return asyncio.run(run())
