"""load: many concurrent clients with mixed operations against one daemon, for a fixed time.

Each client is an :class:`~memosd_client.AsyncClient` with its own socket, in
one of a few shared namespaces (so recalls and lists see everyone's writes). A
client updates and forgets only memories it wrote itself, so no request can
legitimately fail: every error counts against the bar. At the end each client's
own record of its memories is compared with the store.
"""

from __future__ import annotations

import asyncio
import collections
import random
import shutil
import time
from dataclasses import dataclass, field

from memosd_client import Filters, MemoryIn
from memosd_client.protocol.errors import MemosdError

from .common import log_tail, new_daemon, sentence, temp_dir
from .result import Say, Stopwatch, SuiteResult, latency_ms

BAR = "0 errors in any operation, and every client's writes read back exactly as acknowledged"
MIX = {"remember": 20, "recall": 35, "get": 15, "list": 10, "update": 10, "forget": 10}
"""Relative weight of each operation."""


@dataclass
class LoadOptions:
    clients: int = 64
    duration_s: float = 30.0
    namespaces: int = 4
    seed_memories: int = 2_000
    """Memories per namespace written before the timed run."""
    store_dir: str | None = None
    seed: int | None = None


@dataclass
class Mine:
    """What one client wrote, as acknowledged: its current ids and their texts."""

    live: dict[int, str] = field(default_factory=dict)
    superseded: dict[int, int] = field(default_factory=dict)
    forgotten: dict[int, str] = field(default_factory=dict)


class Tally:
    """Latencies and errors per operation, shared by all client tasks (one loop, no locking)."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter = collections.Counter()
        self.messages: list[str] = []


async def _client_loop(index: int, client, rng: random.Random, until: float, tally: Tally, mine: Mine) -> None:
    ops, weights = list(MIX), list(MIX.values())
    session = f"client-{index}"
    while time.monotonic() < until:
        op = rng.choices(ops, weights)[0]
        if op in ("update", "forget", "get") and not mine.live:
            op = "remember"
        started = time.perf_counter()
        try:
            if op == "remember":
                text = f"{sentence(rng, rng.randint(4, 40))} from {session}"
                memory_id = await client.remember(text, session=session, tags=[rng.choice(("a", "b", "c"))])
                mine.live[memory_id] = text
            elif op == "recall":
                filters = Filters(session=session) if rng.random() < 0.2 else None
                await client.recall(sentence(rng, rng.randint(1, 4)), k=rng.choice((5, 10, 20)), filters=filters)
            elif op == "get":
                await client.get(rng.choice(list(mine.live)))
            elif op == "list":
                await client.list(limit=20, cursor=rng.choice((None, rng.randint(1, 5000))),
                                  filters=Filters(tags=[rng.choice(("a", "b", "c"))]) if rng.random() < 0.3 else None)
            elif op == "update":
                old = rng.choice(list(mine.live))
                text = f"{sentence(rng, rng.randint(4, 40))} revised by {session}"
                new = await client.update(old, text)
                del mine.live[old]
                mine.superseded[old] = new
                mine.live[new] = text
            else:
                victim = rng.choice(list(mine.live))
                await client.forget(victim)
                mine.forgotten[victim] = mine.live.pop(victim)
        except MemosdError as err:
            tally.errors[(op, err.code.name)] += 1
            if len(tally.messages) < 10:
                tally.messages.append(f"{op}: {err}")
            continue
        tally.latency[op].append(time.perf_counter() - started)


async def _check_mine(client, mine: Mine) -> list[str]:
    """Differences between what a client was acknowledged and what the store holds."""
    wrong = []
    expected = {**mine.live, **mine.forgotten}
    ids = list(expected) + list(mine.superseded)
    for start in range(0, len(ids), 1000):
        got = await client.get_many(ids[start:start + 1000])
        wrong += [f"memory {i} missing" for i in got.missing]
        for mem in got.memories:
            if mem.id in expected and mem.text != expected[mem.id]:
                wrong.append(f"memory {mem.id} has text {mem.text[:40]!r}")
            if mem.id in mine.forgotten and mem.forgotten_at is None:
                wrong.append(f"memory {mem.id} was forgotten but is not")
            if mem.id in mine.live and not mem.is_current:
                wrong.append(f"memory {mem.id} should be current")
            if mem.id in mine.superseded and mem.superseded_by != mine.superseded[mem.id]:
                wrong.append(f"memory {mem.id} superseded_by {mem.superseded_by}, not {mine.superseded[mem.id]}")
    return wrong


async def _run(daemon, opts: LoadOptions, rng: random.Random, say: Say, result: SuiteResult) -> None:
    names = [f"load-{n}" for n in range(opts.namespaces)]
    async with daemon.async_client(timeout=60.0) as seeder:
        for name in names:
            for start in range(0, opts.seed_memories, 500):
                count = min(500, opts.seed_memories - start)
                await seeder.remember_many([MemoryIn(text=sentence(rng, rng.randint(4, 40)), tags=["seed"])
                                            for _ in range(count)], namespace=name)
    say(f"load: {opts.seed_memories} memories in each of {len(names)} namespaces; "
        f"{opts.clients} clients for {opts.duration_s:g} s")
    # One attempt each: a timeout is an error here, not something to hide behind a retry.
    clients = [daemon.async_client(names[i % len(names)], timeout=30.0, retries=0) for i in range(opts.clients)]
    mines = [Mine() for _ in clients]
    tally = Tally()
    try:
        started = time.monotonic()
        until = started + opts.duration_s
        await asyncio.gather(*(_client_loop(i, c, random.Random(rng.random()), until, tally, mines[i])
                               for i, c in enumerate(clients)))
        elapsed = time.monotonic() - started
        wrong = []
        for client, mine in zip(clients, mines):
            wrong += await _check_mine(client, mine)
    finally:
        for client in clients:
            await client.close()
    total = sum(len(v) for v in tally.latency.values())
    errors = sum(tally.errors.values())
    for message in tally.messages:
        result.fail(message)
    result.failure_count += max(0, errors - len(tally.messages))
    for why in wrong:
        result.fail(f"read-back: {why}")
    result.figures = {
        "clients": opts.clients,
        "seconds": round(elapsed, 1),
        "operations": total,
        "ops/s": round(total / elapsed, 1),
        "errors": errors,
        "errors by op and code": {f"{op}:{code}": n for (op, code), n in tally.errors.items()},
        "read-back mismatches": len(wrong),
    }
    result.tables["latency per operation"] = [
        {"op": op, **latency_ms(tally.latency.get(op, [])),
         "ops/s": round(len(tally.latency.get(op, [])) / elapsed, 1),
         "errors": sum(n for (o, _), n in tally.errors.items() if o == op)}
        for op in MIX
    ]


def run_load(opts: LoadOptions, say: Say) -> SuiteResult:
    """Run the load suite; see the module docstring."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    result = SuiteResult("load", BAR, settings={"clients": opts.clients, "duration_s": opts.duration_s,
                                                 "namespaces": opts.namespaces,
                                                 "seed_memories_per_namespace": opts.seed_memories,
                                                 "mix": MIX, "seed": seed})
    clock = Stopwatch()
    root = temp_dir(opts.store_dir, "memosd-load-")
    daemon = new_daemon(root / "store")
    try:
        daemon.start()
        asyncio.run(_run(daemon, opts, random.Random(seed), say, result))
        if daemon.proc is None or daemon.proc.poll() is not None:
            result.fail(f"the daemon died under load:\n{log_tail(daemon)}")
    except MemosdError as exc:
        result.fail(f"load run failed: {exc}\n{log_tail(daemon)}")
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    result.seconds = clock.elapsed()
    return result
