"""soak: sustained writes and recalls for a while, with the daemon's memory sampled every second.

The live data is held steady: a window of memories per namespace is written
first, and from then on every remember is matched by purging the oldest
memories, so the store stops growing and so should the daemon. RSS is sampled
with psutil every second, as two figures: total RSS, and anonymous RSS (RSS
less file-backed pages). LMDB's data file is mapped into the daemon, so its
pages count in total RSS although they are page cache sized by the store; the
anonymous part is the daemon's own heap, where a leak would show.

The daemon runs with a small residency budget (:attr:`SoakOptions.budget_bytes`) so that the tiers
evict and fault pages all along; the page vectors resident are sampled too, and must stay within
the budget (plus :data:`BUDGET_SLACK_BYTES` for the open pages a scheduler tick faults in before it
evicts at the end of the tick).

Bar: over the second half, anonymous RSS grows by less than
:data:`GROWTH_FRACTION` of its value at the half-way point or
:data:`GROWTH_FLOOR_BYTES`, whichever is larger, and no request fails. With the
live data steady, memory that keeps growing is a leak; the 10% and the floor
leave room for allocator noise (a daemon of this size holds some 50 MiB of
heap, so a floor of 50 MiB would hide anything). The growth rate is reported
too: a slow leak passes a short run and fails a longer one.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass

from memosd_client import MemoryIn
from memosd_client.protocol.errors import MemosdError

from .common import log_tail, new_daemon, rss_bytes, sentence, temp_dir
from .result import Say, Stopwatch, SuiteResult, latency_ms

GROWTH_FRACTION = 0.10
GROWTH_FLOOR_BYTES = 8 << 20
BUDGET_SLACK_BYTES = 1 << 20
BAR = ("anonymous RSS grows < max(10% of its half-way value, 8 MiB) over the second half, "
       "at a steady store size; resident page vectors <= budget + 1 MiB in every sample; 0 errors")
MIB = 1 << 20


@dataclass
class SoakOptions:
    duration_s: float = 120.0
    window: int = 5_000
    """Live memories per namespace, held steady by purging the oldest."""
    namespaces: int = 2
    workers: int = 8
    store_dir: str | None = None
    seed: int | None = None
    budget_bytes: int = 1 << 20
    """tiers.budget_bytes of the soaked daemon: small, so pages are evicted and faulted throughout."""


@dataclass
class Sample:
    t: float
    rss: int
    anon: int
    data_file: int
    resident: int = 0
    """Page vectors resident (the tiers' budgeted RAM)."""


def _slope_per_min(samples: list[Sample], attr: str) -> float:
    """Least-squares slope of ``attr`` against time, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [s.t for s in samples]
    ys = [getattr(s, attr) / MIB for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def _steady(values: list[int]) -> float:
    """Median of a few samples: one reading is too noisy to compare."""
    return statistics.median(values)


async def _worker(client, names: list[str], windows: dict[str, collections.deque], opts: SoakOptions,
                  rng: random.Random, until: float, latency: dict, errors: collections.Counter,
                  messages: list[str]) -> None:
    while time.monotonic() < until:
        ns = rng.choice(names)
        live = windows[ns]
        roll = rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.35:
                op = "remember"
                live.append(await client.remember(sentence(rng, rng.randint(5, 40)), namespace=ns))
            elif roll < 0.45:
                op = "remember_batch"
                result = await client.remember_many([MemoryIn(text=sentence(rng, rng.randint(5, 40)))
                                                     for _ in range(8)], namespace=ns)
                live.extend(result.ids)
            elif roll < 0.5 and live:
                op = "update"
                # The new version takes the oldest one's place; purging it later removes both.
                live.append(await client.update(live.popleft(), sentence(rng, 20), namespace=ns))
            else:
                op = "recall"
                await client.recall(sentence(rng, rng.randint(1, 4)), k=10, namespace=ns)
            latency[op].append(time.perf_counter() - started)
            if len(live) > opts.window + 50:
                doomed = [live.popleft() for _ in range(50)]
                started = time.perf_counter()
                op = "purge"
                await client.purge(doomed, namespace=ns)
                latency[op].append(time.perf_counter() - started)
        except MemosdError as err:
            errors[(op, err.code.name)] += 1
            if len(messages) < 10:
                messages.append(f"{op}: {err}")


async def _index_bytes(client) -> int:
    """The daemon's own count of the RAM its namespaces' indexes hold."""
    return sum(ns.index_bytes for ns in (await client.stats(all_namespaces=True)).namespaces)


async def _sampler(daemon, started: float, until: float, out: list[Sample]) -> None:
    pid, data_file = daemon.proc.pid, str(daemon.data_dir / "data.mdb")
    admin = daemon.admin(timeout=10.0)
    due = time.monotonic()
    try:
        while True:
            rss, anon = rss_bytes(pid)
            try:
                size = os.path.getsize(data_file)
            except OSError:
                size = 0
            resident = (await asyncio.to_thread(admin.tiers)).resident_bytes
            out.append(Sample(round(time.monotonic() - started, 2), rss, anon, size, resident))
            if time.monotonic() >= until:
                return
            # On a one-second cadence, not a second after each reading: a daemon slow to answer under
            # load must not thin out the samples the slopes are fitted to.
            due = max(due + 1.0, time.monotonic() - 0.5)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    finally:
        admin.close()


async def _run(daemon, opts: SoakOptions, rng: random.Random, say: Say, result: SuiteResult) -> list[Sample]:
    names = [f"soak-{n}" for n in range(opts.namespaces)]
    windows = {name: collections.deque() for name in names}
    async with daemon.async_client(timeout=60.0) as seeder:
        for name in names:
            for start in range(0, opts.window, 500):
                batch = [MemoryIn(text=sentence(rng, rng.randint(5, 40))) for _ in range(min(500, opts.window - start))]
                windows[name].extend((await seeder.remember_many(batch, namespace=name)).ids)
    say(f"soak: {opts.window} live memories in each of {len(names)} namespaces; "
        f"{opts.workers} workers for {opts.duration_s:g} s")
    latency: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter = collections.Counter()
    messages: list[str] = []
    samples: list[Sample] = []
    clients = [daemon.async_client(timeout=30.0, retries=0) for _ in range(opts.workers)]
    index_before = await _index_bytes(clients[0])
    started = time.monotonic()
    until = started + opts.duration_s
    try:
        await asyncio.gather(
            _sampler(daemon, started, until, samples),
            *(_worker(c, names, windows, opts, random.Random(rng.random()), until, latency, errors, messages)
              for c in clients))
        elapsed = time.monotonic() - started
        index_after = await _index_bytes(clients[0])
    finally:
        for client in clients:
            await client.close()
    for message in messages:
        result.fail(message)
    result.failure_count += max(0, sum(errors.values()) - len(messages))
    total = sum(len(v) for v in latency.values())
    result.figures.update({"operations": total, "ops/s": round(total / elapsed, 1), "errors": sum(errors.values()),
                           "live memories at the end": sum(len(w) for w in windows.values()),
                           "index MiB start / end (daemon's count)": [round(index_before / MIB, 2),
                                                                     round(index_after / MIB, 2)]})
    result.tables["latency per operation"] = [{"op": op, **latency_ms(v)} for op, v in sorted(latency.items())]
    return samples


def judge(samples: list[Sample], result: SuiteResult, budget_bytes: int = 0) -> None:
    """Apply the bar to the samples and put the memory figures in ``result``."""
    if len(samples) < 4:
        result.fail(f"only {len(samples)} RSS samples")
        return
    half = samples[len(samples) // 2:]
    head, tail = half[:3], half[-3:]
    base = _steady([s.anon for s in head])
    growth = _steady([s.anon for s in tail]) - base
    bound = max(GROWTH_FRACTION * base, GROWTH_FLOOR_BYTES)
    rss = [s.rss for s in samples]
    anon = [s.anon for s in samples]
    result.figures.update({
        "samples": len(samples),
        "RSS MiB min / median / max": [round(min(rss) / MIB, 1), round(statistics.median(rss) / MIB, 1),
                                       round(max(rss) / MIB, 1)],
        "anon RSS MiB min / median / max": [round(min(anon) / MIB, 1), round(statistics.median(anon) / MIB, 1),
                                            round(max(anon) / MIB, 1)],
        "RSS slope, 2nd half (MiB/min)": round(_slope_per_min(half, "rss"), 2),
        "anon RSS slope, 2nd half (MiB/min)": round(_slope_per_min(half, "anon"), 2),
        "anon RSS growth, 2nd half (MiB)": round(growth / MIB, 2),
        "anon RSS growth per hour at that slope (MiB)": round(60 * _slope_per_min(half, "anon"), 1),
        "allowed growth (MiB)": round(bound / MIB, 1),
        "data file MiB start / end": [round(samples[0].data_file / MIB, 1), round(samples[-1].data_file / MIB, 1)],
        "page vectors resident MiB max (budget)": [round(max(s.resident for s in samples) / MIB, 2),
                                                   round(budget_bytes / MIB, 2)],
    })
    if budget_bytes and max(s.resident for s in samples) > budget_bytes + BUDGET_SLACK_BYTES:
        result.fail(f"resident page vectors reached {max(s.resident for s in samples) / MIB:.2f} MiB, over the "
                    f"{budget_bytes / MIB:.2f} MiB budget")
    result.tables["RSS samples"] = [{"t_s": s.t, "rss_mib": round(s.rss / MIB, 1),
                                     "anon_mib": round(s.anon / MIB, 1),
                                     "data_file_mib": round(s.data_file / MIB, 1),
                                     "resident_mib": round(s.resident / MIB, 2)} for s in samples]
    if growth >= bound:
        result.fail(f"anonymous RSS grew {growth / MIB:.1f} MiB over the second half "
                    f"(allowed {bound / MIB:.1f} MiB)")


def run_soak(opts: SoakOptions, say: Say) -> SuiteResult:
    """Run the soak suite; see the module docstring."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    result = SuiteResult("soak", BAR, settings={"duration_s": opts.duration_s, "window": opts.window,
                                                 "namespaces": opts.namespaces, "workers": opts.workers,
                                                 "budget_bytes": opts.budget_bytes, "seed": seed})
    clock = Stopwatch()
    root = temp_dir(opts.store_dir, "memosd-soak-")
    daemon = new_daemon(root / "store", env={"MEMOSD_TIERS_BUDGET_BYTES": str(opts.budget_bytes)})
    try:
        daemon.start()
        samples = asyncio.run(_run(daemon, opts, random.Random(seed), say, result))
        if daemon.proc is None or daemon.proc.poll() is not None:
            result.fail(f"the daemon died during the soak:\n{log_tail(daemon)}")
        judge(samples, result, opts.budget_bytes)
    except MemosdError as exc:
        result.fail(f"soak run failed: {exc}\n{log_tail(daemon)}")
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    result.seconds = clock.elapsed()
    return result
