"""``memosd bench tiers``: the memory tiers at scale, under a residency budget.

For each store size, on a fresh daemon whose page vectors may use at most
``--budget-bytes``: fill the store, wait for the scheduler to page (and
consolidate) everything, then report the store size on disk against what is
resident, and recall latency over the real socket with the fault rate. Then
write a further batch and measure recall again *while the scheduler is busy*
paging and consolidating it, against the idle figure measured just before on
the same daemon (the tiers issue's bar: busy p99 within 2x of idle p99).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from memosd_client.protocol import messages as m

from ..testing import DaemonProcess
from .latency import MemosdRecall, fill
from .stats import ratio, summarize_ns
from .runner import Say
from .workload import Workload


@dataclass
class TierBenchOptions:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    budget_bytes: int = 32 * 1024 * 1024
    queries: int = 1_000
    busy_writes: int = 20_000
    k: int = 10
    data: str | None = None
    seed: int = 0
    consolidate: bool = True
    settle_timeout_s: float = 3_600.0
    namespace: str = "memosd-bench-tiers"


def _tiers(admin, namespace: str) -> tuple[m.TiersResult, m.NamespaceTiers]:
    result = admin.tiers(namespace)
    return result, result.namespaces[0]


def _settle(admin, namespace: str, timeout_s: float, say: Say) -> float:
    started = time.monotonic()
    last = 0.0
    while True:
        result, _ = _tiers(admin, namespace)
        if result.backlog == 0:
            return time.monotonic() - started
        if time.monotonic() - last > 30:
            say(f"  scheduler backlog {result.backlog:,}")
            last = time.monotonic()
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the scheduler still had a backlog of {result.backlog:,} after {timeout_s:g} s")
        time.sleep(0.5)


def _recall(client, queries: list[str], k: int, admin, namespace: str) -> dict:
    probe = MemosdRecall(client, k)
    _, before = _tiers(admin, namespace)
    samples = [probe(q) for q in queries]
    _, after = _tiers(admin, namespace)
    out = summarize_ns(samples)
    engine = summarize_ns([t * 1000 for t in probe.took_us])
    out["engine_p50_us"], out["engine_p99_us"] = engine["p50_us"], engine["p99_us"]
    asked = after.queries - before.queries
    out["fault_rate"] = round((after.fault_queries - before.fault_queries) / asked, 4) if asked else None
    out["faults_per_query"] = round((after.faults - before.faults) / asked, 2) if asked else None
    return out


def _steps_between(before: m.SchedulerInfo | None, after: m.SchedulerInfo | None) -> dict | None:
    """The scheduler's steps on the event loop between two readings: how many, and how many ran longer
    than the configured step."""
    if before is None or after is None:
        return None
    counts = [a - b for (_, a), (_, b) in zip(after.step_histogram, before.step_histogram)]
    over = sum(n for (bound, _), n in zip(after.step_histogram, counts) if bound is None or bound > after.step_s)
    return {"steps": after.steps - before.steps, "busy_s": round(after.busy_s - before.busy_s, 3),
            "over_step": over, "histogram": [[bound, n] for (bound, _), n in zip(after.step_histogram, counts)]}


def _one_size(size: int, opts: TierBenchOptions, say: Say) -> dict:
    env = {"MEMOSD_TIERS_BUDGET_BYTES": str(opts.budget_bytes),
           "MEMOSD_TIERS_CONSOLIDATE": "1" if opts.consolidate else "0"}
    workload = Workload(opts.data, opts.seed)
    queries = workload.queries(opts.queries)
    with DaemonProcess(extra_args=["--no-fsync"], env=env) as daemon, \
            daemon.client(namespace=opts.namespace, timeout=120) as client, daemon.admin(timeout=60) as admin:
        say(f"{size:,} memories: filling")
        filled = fill(client, workload, size)
        say(f"{size:,} memories: waiting for the scheduler")
        settle_s = _settle(admin, opts.namespace, opts.settle_timeout_s, say)
        result, tiers = _tiers(admin, opts.namespace)
        stats = client.stats()
        row = {
            "memories": size, "fill_per_s": filled["per_s"], "settle_s": round(settle_s, 1),
            # From the first write until nothing waits: the scheduler works while the store fills.
            "settle_per_s": round(size / (size / filled["per_s"] + settle_s)),
            "pages": tiers.pages, "consolidated_pages": tiers.consolidated_pages, "facts": tiers.facts,
            "store_bytes": stats.store_bytes, "resident_bytes": tiers.resident_bytes,
            "resident_pages": tiers.resident_pages, "fixed_bytes": tiers.fixed_bytes,
            "index_bytes": stats.namespaces[0].index_bytes, "rss_bytes": result.rss_bytes,
            "budget_bytes": result.budget_bytes,
        }
        say(f"{size:,} memories: recall, idle scheduler")
        for query in queries[:50]:
            client.recall(query, k=opts.k)  # warm-up
        row["idle"] = _recall(client, queries, opts.k, admin, opts.namespace)
        say(f"{size:,} memories: recall while the scheduler pages and consolidates {opts.busy_writes:,} more")
        # Acknowledged writes; the paging and consolidation they cause are what the scheduler is busy with.
        fill(client, workload, opts.busy_writes)
        before = admin.tiers()
        row["busy"] = _recall(client, queries, opts.k, admin, opts.namespace)
        after = admin.tiers()
        row["busy"]["backlog_at_start"] = before.backlog
        row["busy"]["backlog_at_end"] = after.backlog
        row["busy"]["scheduler_steps"] = _steps_between(before.scheduler, after.scheduler)
        row["longest_step_s"] = after.scheduler.longest_step_s if after.scheduler else None
        row["busy_vs_idle_p50"] = ratio(row["busy"]["p50_us"], row["idle"]["p50_us"])
        row["busy_vs_idle_p99"] = ratio(row["busy"]["p99_us"], row["idle"]["p99_us"])
        _, after = _tiers(admin, opts.namespace)
        row["resident_bytes_after"] = after.resident_bytes
    return row


def run_tier_bench(opts: TierBenchOptions, say: Say) -> dict:
    """Every size in turn on its own fresh daemon; returns rows for the report."""
    rows = [_one_size(size, opts, say) for size in opts.sizes]
    return {"budget_bytes": opts.budget_bytes, "queries": opts.queries, "busy_writes": opts.busy_writes,
            "k": opts.k, "data": opts.data or "generated", "consolidate": opts.consolidate, "sizes": rows}
