"""``memosd bench-cluster``: what the cluster's log costs, against a single node in the same run.

For a single daemon (the baseline), then clusters of 1, 2 and 3 memosd nodes
on a three-server NATS cluster (log replicas = 3), it runs ``memosd bench
--endpoint`` against the first node (recall and remember latency and
throughput; the client follows MOVED to the namespace's owner), and an
aggregate write test: several clients, each writing single memories into its
own namespaces through every node in turn. With two nodes or more it also
stops a namespace's owner and times the take-over, which replays the log. On one small machine every node,
NATS server and client share the same cores, so this measures the log's cost,
not scaling.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memosd_client import Client

from ..cluster.local import LocalCluster
from ..reliability.result import Say
from ..testing import DaemonProcess


@dataclass(slots=True)
class ClusterBenchOptions:
    nodes: list[int] = field(default_factory=lambda: [1, 2, 3])
    size: int = 10_000
    queries: int = 500
    writers: int = 4
    write_seconds: float = 10.0
    takeover_writes: int = 2_000
    """Single memories written to one namespace before its owner is stopped (clusters of 2+ nodes)."""
    store_dir: str | None = None


def _bench(endpoint: str, admin_endpoint: str, options: ClusterBenchOptions) -> dict[str, Any]:
    command = [sys.executable, "-m", "memosd", "bench", "--endpoint", endpoint, "--admin-endpoint", admin_endpoint,
               "--sizes", str(options.size), "--queries", str(options.queries), "--no-compare", "--no-tcp",
               "--no-restart", "--json", "--timeout", "30"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"memosd bench failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    recall = report["recall"][0]["paths"]["memosd ipc"]
    durable = report["writes"]["durable"]
    batched = {row["batch"]: row for row in durable["batched"]}
    return {"recall_p50_us": recall["p50_us"], "recall_p99_us": recall["p99_us"],
            "single_p50_us": durable["single"]["p50_us"], "batch_1000_per_s": batched[1000]["per_s"],
            "in_flight_per_s": durable["concurrent"]["per_s"]}


def _aggregate_writes(endpoints: list[str], options: ClusterBenchOptions) -> float:
    """Single remembers per second, summed over ``writers`` clients, each over its own namespaces."""
    stop = time.monotonic() + options.write_seconds
    counts = [0] * options.writers

    def run(index: int) -> None:
        clients = [Client(endpoint, timeout=30.0) for endpoint in endpoints]
        try:
            while time.monotonic() < stop:
                client = clients[counts[index] % len(clients)]
                client.remember(f"aggregate write {counts[index]}", namespace=f"bench-agg-{index}-{counts[index] % 3}")
                counts[index] += 1
        finally:
            for client in clients:
                client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(options.writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(counts) / (time.monotonic() - started), 1)


def _takeover(cluster: LocalCluster, options: ClusterBenchOptions) -> dict[str, Any]:
    """Write single memories to a namespace, stop its owner cleanly, time the first recall on another node:
    that node replays the whole namespace from the log."""
    namespace, writers = "bench-takeover", 4

    def write(index: int) -> None:
        with Client(cluster.nodes[0].endpoint, timeout=30.0) as client:
            for i in range(options.takeover_writes // writers):
                client.remember(f"takeover memory {index} {i} about the river", namespace=namespace)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owner = cluster.owner(namespace)
    cluster.nodes[owner].stop()
    try:
        taker = next(i for i in range(len(cluster.nodes)) if i != owner)
        started = time.perf_counter()
        with Client(cluster.nodes[taker].endpoint, timeout=300.0) as client:
            client.recall("river", namespace=namespace)
        seconds = time.perf_counter() - started
        taken = next(o for o in cluster.info(cluster.owner(namespace)).owned if o.namespace == namespace)
    finally:
        cluster.nodes[owner].start()
    return {"entries": taken.replayed_entries, "seconds": round(seconds, 3),
            "entries_per_s": round(taken.replayed_entries / seconds, 1)}


def run_cluster_bench(options: ClusterBenchOptions, say: Say) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="memosd-bench-cluster-", dir=options.store_dir))
    rows = []
    say("bench-cluster: single node (no cluster), the baseline")
    with DaemonProcess(base / "single") as daemon:
        row = {"config": "single node", "nodes": 1, **_bench(daemon.endpoint, daemon.admin_endpoint, options)}
        row["aggregate_writes_per_s"] = _aggregate_writes([daemon.endpoint], options)
        rows.append(row)
    for count in options.nodes:
        say(f"bench-cluster: {count} node(s) on 3 NATS servers")
        with LocalCluster(count, 3, base_dir=base / f"cluster-{count}") as cluster:
            cluster.wait_for_nodes(count)
            first = cluster.nodes[0]
            row = {"config": f"cluster, {count} node(s)", "nodes": count,
                   **_bench(first.endpoint, first.admin_endpoint, options)}
            row["aggregate_writes_per_s"] = _aggregate_writes([node.endpoint for node in cluster.nodes], options)
            if count >= 2 and options.takeover_writes:
                row["takeover"] = _takeover(cluster, options)
            rows.append(row)
    baseline = rows[0]
    for row in rows:
        row["vs_single"] = {key: round(row[key] / baseline[key], 2) if baseline[key] else None
                            for key in ("recall_p50_us", "single_p50_us", "batch_1000_per_s", "in_flight_per_s",
                                        "aggregate_writes_per_s")}
    return {"options": {"nodes": options.nodes, "size": options.size, "queries": options.queries,
                        "writers": options.writers, "write_seconds": options.write_seconds,
                        "takeover_writes": options.takeover_writes,
                        "nats_servers": 3, "log_replicas": 3},
            "rows": rows}


def print_cluster_bench(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    o = result["options"]
    table = Table("config", "recall p50", "recall p99", "remember p50", "batch 1000", "16 in flight",
                  f"{o['writers']} writers", "vs single (p50s, rates)",
                  title=f"{o['size']:,} memories, {o['queries']} recalls; log on {o['nats_servers']} NATS servers, "
                        f"{o['log_replicas']} replicas")
    for row in result["rows"]:
        v = row["vs_single"]
        table.add_row(row["config"], f"{row['recall_p50_us'] / 1000:.2f} ms", f"{row['recall_p99_us'] / 1000:.2f} ms",
                      f"{row['single_p50_us'] / 1000:.2f} ms", f"{row['batch_1000_per_s']:,.0f}/s",
                      f"{row['in_flight_per_s']:,.0f}/s", f"{row['aggregate_writes_per_s']:,.0f}/s",
                      f"{v['recall_p50_us']}x, {v['single_p50_us']}x; {v['batch_1000_per_s']}x, "
                      f"{v['in_flight_per_s']}x, {v['aggregate_writes_per_s']}x")
    console = Console()
    console.print(table)
    for row in result["rows"]:
        if "takeover" in row:
            t = row["takeover"]
            console.print(f"{row['config']}: owner stopped, the next node replayed {t['entries']:,} log entries "
                          f"in {t['seconds']:.2f} s ({t['entries_per_s']:,.0f} entries/s) before its first answer")
