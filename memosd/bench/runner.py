"""``memosd bench``: the whole run, phase by phase, producing one result dict.

Phases:
1. writes: single remember latency, batched throughput (100 and 1000 per
   batch) and concurrent single remembers, on a fresh durable daemon and a
   fresh ``--no-fsync`` one, alternating between them round by round;
2. recall: one daemon, one namespace filled in batches of 1000 up to each
   store size in turn; at each size, recall latency over ipc and tcp and the
   pyzmq floor over ipc and tcp, interleaved block by block; then store size on
   disk, daemon RSS and anonymous RSS (RAM per memory), and the restart time:
   stop the daemon, start it on the same store, time until a recall answers.

Writes get their own daemons so the recall store holds exactly the stated
number of memories and its bytes per memory are not inflated by them.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import zmq

from memosd_client.protocol import messages as m

from .floor import FloorClient, FloorServer, recall_reply_frame
from .latency import (
    MemosdRecall,
    Timed,
    batched_remember,
    concurrent_remember,
    fill,
    interleaved,
    single_remember,
)
from .stats import ratio, summarize_ns
from .target import Target
from .workload import Workload
from .write_floor import StoreFloor

TARGET_RECALL_P50_US = 2_000
TARGET_RECALL_P99_US = 10_000
TARGET_RECALL_SIZE = 100_000
TARGET_BATCH_1000_PER_S = 50_000
TARGET_CONCURRENT_PER_S = 5_000
TARGET_SINGLE_P50_US = 1_500
WARMUP = 50
"""Unrecorded recalls per path before timing (connections, caches, first-call costs)."""


@dataclass
class BenchOptions:
    sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    queries: int = 2_000
    k: int = 10
    data: str | None = None
    seed: int = 0
    endpoint: str | None = None
    admin_endpoint: str | None = None
    key_file: str | None = None
    namespace: str = "memosd-bench"
    tcp: bool = True
    writes: bool = True
    compare_no_fsync: bool = True
    single_writes: int = 500
    batch_sizes: list[int] = field(default_factory=lambda: [100, 1000])
    batch_memories: int = 10_000
    """Memories written per batch size (so batches of 100 run 100 times, of 1000 run 10 times)."""
    concurrency: int = 16
    concurrent_writes: int = 2_000
    store_dir: str | None = None
    keep: bool = False
    """With ``endpoint``: leave the benchmark namespace filled instead of purging it at the end."""
    restart: bool = True
    """At each size, restart the daemon we started and time it until the first recall answers."""
    crash_writes: int = 1000
    """Memories written, 10 to a request, between an index snapshot taken while serving and the kill -9."""
    budget_bytes: int | None = None
    """``tiers.budget_bytes`` of the daemon the recall measurements start (None: its default); the RAM
    bar of the engine issue is stated at 64 MiB."""


Say = Callable[[str], None]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine and library versions a result was measured with."""
    import os

    import psutil

    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- writes

WRITE_ROUNDS = 4
"""Each write test is split in this many rounds, alternating daemons (durable, --no-fsync) round by
round, so the comparison between them is not skewed by noise that comes and goes during the run."""

WRITES_NS = "memosd-bench-writes"


def _write_steps(opts: BenchOptions) -> list[tuple[str, dict, Callable, Callable]]:
    """(key, description, run(target, workload, rounds), floor(store floor, workload, rounds)) for each
    write test; each call does 1/rounds of the test. The floor writes the same records straight to
    LMDB, as many per commit as the test puts in one request (singles in flight: ``concurrency``,
    what a perfect group commit makes of them)."""
    steps: list[tuple[str, dict, Callable, Callable]] = []

    def single(target: Target, workload: Workload, n: int):
        with target.client(_transport(target), WRITES_NS) as client:
            return single_remember(client, workload, n)

    steps.append(("single", {}, lambda t, w, r: single(t, w, _share(opts.single_writes, r)),
                  lambda f, w, r: f.write(w, _share(opts.single_writes, r), 1)))
    for batch in opts.batch_sizes:
        batches = max(1, opts.batch_memories // batch)

        def batched(target: Target, workload: Workload, rounds: int, batch=batch, batches=batches):
            with target.client(_transport(target), WRITES_NS) as client:
                return batched_remember(client, workload, batch, _share(batches, rounds))

        steps.append((f"batch {batch}", {"batch": batch}, batched,
                      lambda f, w, r, batch=batch, batches=batches: f.write(w, batch * _share(batches, r), batch)))
    if opts.concurrency > 1 and opts.concurrent_writes:
        steps.append(("concurrent", {"concurrency": opts.concurrency},
                      lambda t, w, r: concurrent_remember(t.endpoints[_transport(t)], WRITES_NS, w,
                                                          _share(opts.concurrent_writes, r), opts.concurrency,
                                                          curve=t.curve),
                      lambda f, w, r: f.write(w, _share(opts.concurrent_writes, r), opts.concurrency)))
    return steps


def _share(total: int, rounds: int) -> int:
    return max(1, -(-total // rounds))


def _transport(target: Target) -> str:
    return "ipc" if "ipc" in target.endpoints else next(iter(target.endpoints))


def run_writes(opts: BenchOptions, say: Say) -> dict:
    """Write latency and throughput: durable, and --no-fsync beside it when we start the daemons.

    With ``--endpoint`` the writes go to that daemon's namespace ``memosd-bench-writes``,
    which is purged afterwards.
    """
    targets: dict[str, Target] = {}
    floors: dict[str, StoreFloor] = {}
    try:
        if opts.endpoint is None:
            say("writes: starting a durable daemon" + (" and a --no-fsync one" if opts.compare_no_fsync else ""))
            targets["durable"] = Target.start(tcp=False, store_dir=opts.store_dir)
            if opts.compare_no_fsync:
                targets["no_fsync"] = Target.start(tcp=False, no_fsync=True, store_dir=opts.store_dir)
        else:
            targets["durable"] = Target.connect(opts.endpoint, opts.admin_endpoint, opts.key_file)
        workloads = {mode: Workload(opts.data, seed=opts.seed + 7) for mode in targets}
        for mode, target in targets.items():  # warm-up: connections, namespace creation, first commits
            with target.client(_transport(target), WRITES_NS) as client:
                for _ in range(5):
                    client.remember("warm-up")
                client.remember_many(workloads[mode].memories(100))
        results: dict = {mode: {"transport": _transport(t), "batched": []} for mode, t in targets.items()}
        # The store's floor beside each daemon we started, with its fsync policy (not for --endpoint:
        # that daemon's store and settings are not ours to know).
        for mode, target in targets.items():
            if target.started:
                floors[mode] = StoreFloor(no_fsync=mode == "no_fsync", store_dir=opts.store_dir)
        floor_workloads = {mode: Workload(opts.data, seed=opts.seed + 7) for mode in floors}
        for key, extra, run, floor_run in _write_steps(opts):
            alternating = f", alternating {' / '.join(targets)}" if len(targets) > 1 else ""
            say(f"writes: {key} ({WRITE_ROUNDS} rounds{alternating}, each beside the bare LMDB floor)")
            timed = {mode: Timed() for mode in targets}
            floor_timed = {mode: Timed() for mode in floors}
            for _ in range(WRITE_ROUNDS):
                for mode, target in targets.items():
                    timed[mode] = timed[mode].merge(run(target, workloads[mode], WRITE_ROUNDS))
                    if mode in floors:
                        floor_timed[mode] = floor_timed[mode].merge(
                            floor_run(floors[mode], floor_workloads[mode], WRITE_ROUNDS))
            for mode in targets:
                row = {**extra, **timed[mode].summary()}
                if mode in floors:
                    floor = floor_timed[mode].summary()
                    row["floor"] = floor
                    row["vs_floor_per_s"] = ratio(row["per_s"], floor["per_s"])
                    row["vs_floor_p50"] = ratio(row["p50_us"], floor["p50_us"])
                if key.startswith("batch"):
                    results[mode]["batched"].append(row)
                else:
                    results[mode][key] = row
        return results
    finally:
        for floor in floors.values():
            floor.close()
        for target in targets.values():
            if target.started:
                target.close()
            else:
                with target.client(_transport(target), WRITES_NS) as client:
                    client.purge_namespace()


# --------------------------------------------------------------------------- recall


def _recall_at_size(target: Target, floor: FloorServer, opts: BenchOptions, queries: list[str],
                    say: Say) -> dict:
    clients = {t: target.client(t, opts.namespace) for t in target.endpoints}
    floors = {t: FloorClient(floor.endpoints[t], opts.namespace, opts.k) for t in floor.endpoints}
    try:
        probes: dict = {}
        memosd = {}
        for transport, client in clients.items():
            memosd[transport] = probes[f"memosd {transport}"] = MemosdRecall(client, opts.k)
        for transport, fc in floors.items():
            probes[f"floor {transport}"] = fc.round_trip
        cpu_before = target.cpu_seconds()
        samples = interleaved(probes, queries, warmup=WARMUP)
        cpu_after = target.cpu_seconds()
    finally:
        for client in clients.values():
            client.close()
        for fc in floors.values():
            fc.close()

    out: dict = {"paths": {}}
    for name, values in samples.items():
        out["paths"][name] = summarize_ns(values)
    for transport, probe in memosd.items():
        row = out["paths"][f"memosd {transport}"]
        engine = summarize_ns([t * 1000 for t in probe.took_us])
        row["engine_p50_us"], row["engine_p99_us"] = engine["p50_us"], engine["p99_us"]
        row["empty_results"] = probe.empty
        base = out["paths"].get(f"floor {transport}")
        if base:
            row["vs_floor_p50"] = ratio(row["p50_us"], base["p50_us"])
            row["vs_floor_p99"] = ratio(row["p99_us"], base["p99_us"])
    if cpu_before is not None and cpu_after is not None:
        recalls = sum(len(samples[f"memosd {t}"]) + min(WARMUP, len(queries)) for t in memosd)
        out["daemon_cpu_us_per_recall"] = round((cpu_after - cpu_before) * 1e6 / recalls, 1)
    return out


def settle(target: Target, say: Say, timeout_s: float = 1800.0) -> float | None:
    """Wait until the daemon's tier scheduler has paged (and consolidated) what was just written, so
    recall is measured on the store as it runs, not mid-import (docs/tiers.md); returns the seconds
    waited, or None without admin access."""
    if target.admin_endpoint is None:
        return None
    from memosd_client import AdminClient

    started = time.monotonic()
    with AdminClient(target.admin_endpoint, timeout=30.0) as admin:
        backlog = admin.tiers().backlog
        if backlog:
            say(f"recall: waiting for the scheduler to page {backlog:,} memories")
        while backlog and time.monotonic() - started < timeout_s:
            time.sleep(0.5)
            backlog = admin.tiers().backlog
    return round(time.monotonic() - started, 1)


def _ram(anon: int | None, memories: int, tiers: m.TiersResult | None) -> dict:
    """The daemon's own RAM (anonymous RSS, after the recalls), what that is per memory, and how much of
    it is page vectors under the residency budget (the rest does not shrink with the budget)."""
    return {"rss_anon_bytes": anon,
            "rss_anon_bytes_per_memory": round(anon / memories, 1) if anon is not None and memories else None,
            "page_vectors": None if tiers is None else {"budget_bytes": tiers.budget_bytes,
                                                        "resident_bytes": tiers.resident_bytes}}


_NO_RESTART = {"restart_s": None, "restart": None, "rebuild_s": None, "rebuild": None, "after_restart": None,
               "crash_s": None, "crash": None}

AFTER_RESTART_QUERIES = 500
"""Recalls timed again on the daemon restarted from its index snapshot."""


def _restart(target: Target, opts: BenchOptions, workload: Workload, queries: list[str], before: dict,
             say: Say) -> dict:
    """Stop and start the daemon on its store three times: opening the index snapshot of the clean stop
    (``restart_s``); after a snapshot taken while serving, ``crash_writes`` more memories and a kill -9,
    bringing the snapshot forward from the change log (``crash_s``); and rebuilding the indexes from the
    store without a snapshot (``rebuild_s``). After the first, recall is timed again on the indexes
    opened from the snapshot (``after_restart``, with its p50 as a ratio of ``before``'s): they must
    serve as fast as the ones they were written from. None figures for a daemon we did not start."""
    if target.daemon is None:
        return dict(_NO_RESTART)
    say("recall: restarting the daemon on the same store")
    timing = target.restart(opts.namespace, queries[0], opts.k)
    say(f"recall: {min(len(queries), AFTER_RESTART_QUERIES):,} queries on the indexes opened from the snapshot")
    with target.client(next(iter(target.endpoints)), opts.namespace) as client:
        probe = MemosdRecall(client, opts.k)
        after = summarize_ns(interleaved({"after": probe}, queries[:AFTER_RESTART_QUERIES], warmup=WARMUP)["after"])
    after["vs_before_p50"] = ratio(after["p50_us"], before["p50_us"]) if before else None
    say(f"recall: snapshot while serving, {opts.crash_writes:,} more memories, kill -9, start")

    def write_more() -> None:
        with target.client(next(iter(target.endpoints)), opts.namespace) as client:
            fill(client, workload, opts.crash_writes, batch=10)

    crashed = target.crash_restart(opts.namespace, queries[0], opts.k, before_kill=write_more)
    say("recall: restarting it without its index snapshot (a rebuild, as after a crash without one)")
    rebuilt = target.restart(opts.namespace, queries[0], opts.k, rebuild=True)
    return {"restart_s": timing.first_recall_s, "restart": asdict(timing), "crash_s": crashed.first_recall_s,
            "crash": asdict(crashed), "rebuild_s": rebuilt.first_recall_s, "rebuild": asdict(rebuilt),
            "after_restart": after}


def run_recall(opts: BenchOptions, say: Say) -> list[dict]:
    """Fill one namespace size by size; measure recall, floor, disk and RSS at each size."""
    workload = Workload(opts.data, seed=opts.seed)
    queries = workload.queries(opts.queries)
    if opts.endpoint is None:
        say("recall: starting daemon" + (" (ipc + tcp)" if opts.tcp else " (ipc)"))
        env = {} if opts.budget_bytes is None else {"MEMOSD_TIERS_BUDGET_BYTES": str(opts.budget_bytes)}
        target = Target.start(tcp=opts.tcp, store_dir=opts.store_dir, env=env)
    else:
        target = Target.connect(opts.endpoint, opts.admin_endpoint, opts.key_file)
    results = []
    floor: FloorServer | None = None
    try:
        transport = next(iter(target.endpoints))
        with target.client(transport, opts.namespace) as loader:
            if opts.endpoint is not None:
                loader.purge_namespace()  # our own benchmark namespace only
            stored = 0
            for size in sorted(opts.sizes):
                say(f"recall: filling to {size:,} memories")
                fill_result = fill(loader, workload, size - stored)
                stored = size
                settled_s = settle(target, say)
                if floor is None:
                    # The floor's reply imitates a real recall reply (k hits) from this store.
                    hits = loader.recall(queries[0], k=opts.k)
                    floor = FloorServer(recall_reply_frame(hits), list(target.endpoints)).__enter__()
                say(f"recall: {len(queries):,} queries x {len(target.endpoints)} transport(s) + floor "
                    f"at {size:,}")
                row = {"memories": size, "fill": fill_result, "settle_s": settled_s}
                row.update(_recall_at_size(target, floor, opts, queries, say))
                disk = target.disk_bytes()
                row["store"] = {
                    "disk_bytes": disk,
                    "used_bytes": target.used_bytes(),
                    "disk_bytes_per_memory": round(disk / size, 1) if disk else None,
                }
                row["rss_bytes"] = target.rss_bytes()
                row.update(_ram(target.rss_anon_bytes(), size, target.tiers()))
                before = row["paths"].get(f"memosd {transport}")
                if opts.restart:
                    row.update(_restart(target, opts, workload, queries, before, say))
                    stored += opts.crash_writes
                else:
                    row.update(_NO_RESTART)
                results.append(row)
    finally:
        if floor is not None:
            floor.__exit__(None, None, None)
        if not target.started and not opts.keep:
            with target.client(next(iter(target.endpoints)), opts.namespace) as client:
                client.purge_namespace()
        target.close()
    return results


# --------------------------------------------------------------------------- the run


def _targets(recall: list[dict], writes: dict) -> dict:
    """Check the issue's targets against what was measured (None: not measured in this run)."""
    out: dict = {}
    at = next((r for r in recall if r["memories"] == TARGET_RECALL_SIZE), None)
    ipc = at and at["paths"].get("memosd ipc")
    out["recall_ipc_100k_p50_le_2ms"] = None if not ipc else {
        "measured_us": ipc["p50_us"], "target_us": TARGET_RECALL_P50_US, "met": ipc["p50_us"] <= TARGET_RECALL_P50_US}
    out["recall_ipc_100k_p99_le_10ms"] = None if not ipc else {
        "measured_us": ipc["p99_us"], "target_us": TARGET_RECALL_P99_US, "met": ipc["p99_us"] <= TARGET_RECALL_P99_US}
    durable = writes.get("durable") or {}
    batch = next((b for b in durable.get("batched", []) if b["batch"] == 1000), None)
    out["durable_batch_1000_ge_50000_per_s"] = None if batch is None else {
        "measured_per_s": batch["per_s"], "target_per_s": TARGET_BATCH_1000_PER_S,
        "met": batch["per_s"] >= TARGET_BATCH_1000_PER_S}
    concurrent = durable.get("concurrent")
    out["durable_16_in_flight_ge_5000_per_s"] = None if not concurrent or concurrent["concurrency"] != 16 else {
        "measured_per_s": concurrent["per_s"], "target_per_s": TARGET_CONCURRENT_PER_S,
        "met": concurrent["per_s"] >= TARGET_CONCURRENT_PER_S}
    single = durable.get("single")
    out["durable_single_p50_le_1_5ms"] = None if not single else {
        "measured_us": single["p50_us"], "target_us": TARGET_SINGLE_P50_US,
        "met": single["p50_us"] <= TARGET_SINGLE_P50_US}
    return out


def run_bench(opts: BenchOptions, say: Say) -> dict:
    """Run every phase and return one JSON-ready dict."""
    started = time.perf_counter()
    writes = run_writes(opts, say) if opts.writes else {}
    recall = run_recall(opts, say) if opts.sizes else []
    return {
        "machine": machine_info(),
        "options": asdict(opts),
        "workload": "generated" if opts.data is None else f"locomo:{opts.data}",
        "writes": writes,
        "recall": recall,
        "targets": _targets(recall, writes),
        "seconds": round(time.perf_counter() - started, 1),
    }
