"""Prometheus metrics: per-operation latency and outcomes on the hot path, everything else
read from the daemon when scraped (so gauges cost nothing between scrapes)."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from memosd_client.protocol import messages as m

from .cluster.node import ClusterNode
from .engine.engine import Engine
from .events import EventBus
from .events.mqtt import MqttBridge
from .plugins.registry import PluginRegistry
from .store import Environment, WriterThread
from .store.writer import GroupSizes
from .tiers.manager import TierManager
from .tiers.pacing import Pacer
from .tiers.scheduler import Scheduler


class MetricsSource(Protocol):
    """What the collector reads at scrape time: the running daemon's parts (the daemon satisfies
    it; naming the parts rather than the daemon keeps ``daemon`` -> ``metrics`` one-way)."""

    engine: Engine
    env: Environment
    writer: WriterThread
    tiers: TierManager
    scheduler: Scheduler
    events: EventBus
    plugins: PluginRegistry
    mqtt: MqttBridge | None
    cluster: ClusterNode | None
    loop_lag_ms: float

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class Metrics:
    """The daemon's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("memosd_requests", "Requests answered, by operation and outcome",
                                ["op", "outcome"], registry=self.registry)
        self.latency = Histogram("memosd_request_seconds", "Time from a request's arrival to its reply",
                                 ["op"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._children: dict[tuple[str, str], tuple] = {}
        self._server = None

    def observe(self, op: str, outcome: str, seconds: float) -> None:
        key = (op, outcome)
        children = self._children.get(key)
        if children is None:  # labels() is slow; cache the children per (op, outcome)
            children = self._children[key] = (self.requests.labels(op, outcome), self.latency.labels(op))
        children[0].inc()
        children[1].observe(seconds)

    def count(self, op: str, outcome: str, n: int = 1) -> None:
        """Count ``n`` requests with no latency to record (dropped, refused before serving)."""
        key = (op, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(op, outcome), self.latency.labels(op))
        children[0].inc(n)

    def watch(self, daemon: MetricsSource) -> None:
        self.registry.register(DaemonCollector(daemon))

    def serve(self, listen: str) -> tuple[str, int]:
        """Start the /metrics HTTP endpoint in a background thread; returns the bound (host, port)."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_address[:2]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class DaemonCollector:
    """Gauges and counters read from the running daemon at scrape time."""

    def __init__(self, daemon: MetricsSource):
        self.daemon = daemon

    def describe(self):
        return []

    def collect(self):
        d = self.daemon
        states = list(d.engine.namespaces.values())
        memories = GaugeMetricFamily("memosd_memories", "Stored versions by state", labels=["state"])
        totals = {"current": 0, "superseded": 0, "forgotten": 0}
        for state in states:
            counts = state.counts()
            for key in totals:
                totals[key] += counts[key]
        for key, value in totals.items():
            memories.add_metric([key], value)
        yield memories
        yield GaugeMetricFamily("memosd_namespaces", "Namespaces with data", value=len(states))
        yield GaugeMetricFamily("memosd_resident_bytes", "RAM used by in-memory indexes and tables",
                                value=sum(s.resident_bytes() for s in states))
        used, size = d.env.usage()
        yield GaugeMetricFamily("memosd_lmdb_used_bytes", "LMDB pages in use", value=used)
        yield GaugeMetricFamily("memosd_lmdb_map_bytes", "LMDB map size", value=size)
        yield GaugeMetricFamily("memosd_writer_queue", "Write jobs waiting for the writer", value=d.writer.pending)
        yield CounterMetricFamily("memosd_writer_commits", "LMDB write transactions committed",
                                  value=d.writer.commits)
        yield CounterMetricFamily("memosd_writer_jobs", "Write jobs committed (group commit: jobs >= commits)",
                                  value=d.writer.jobs)
        yield _group_sizes(d.writer.groups)
        slb = d.engine.slb_info()
        yield CounterMetricFamily("memosd_slb_lookups", "Recalls looked up in the semantic lookaside buffer",
                                  value=slb.lookups)
        yield CounterMetricFamily("memosd_slb_hits", "Recalls answered through the buffer", value=slb.hits)
        if slb.agreement is not None:
            yield GaugeMetricFamily("memosd_slb_agreement", "Mean top-k agreement of verified buffer hits "
                                    "with the full search", value=slb.agreement)
        yield GaugeMetricFamily("memosd_slb_hit_mean_seconds", "Mean engine time of recalls answered through "
                                "the buffer", value=slb.hit_mean_us / 1e6)
        yield GaugeMetricFamily("memosd_slb_miss_mean_seconds", "Mean engine time of recalls the buffer missed",
                                value=slb.miss_mean_us / 1e6)
        if slb.prefetch_usefulness is not None:
            yield GaugeMetricFamily("memosd_prefetch_usefulness", "Share of settled prefetched pages that a "
                                    "later recall used", value=slb.prefetch_usefulness)
        yield CounterMetricFamily("memosd_prefetch_pages", "Pages made resident by prefetching", value=slb.prefetched)
        yield CounterMetricFamily("memosd_prefetch_used", "Prefetched pages a later recall needed while resident",
                                  value=slb.prefetch_used)
        yield CounterMetricFamily("memosd_prefetch_wasted", "Prefetched pages evicted before any recall needed them",
                                  value=slb.prefetch_wasted)
        tiers = d.tiers
        yield GaugeMetricFamily("memosd_tiers_resident_bytes", "Page vectors resident (the budgeted part)",
                                value=tiers.resident_bytes())
        yield CounterMetricFamily("memosd_tiers_faults", "Pages faulted back in",
                                  value=sum(s.counters.faults for s in tiers.states.values()))
        yield CounterMetricFamily("memosd_tiers_evictions", "Pages whose vectors were evicted",
                                  value=sum(s.counters.evictions for s in tiers.states.values()))
        yield GaugeMetricFamily("memosd_tiers_backlog", "Scheduler backlog", value=d.scheduler.backlog())
        yield _steps(d.scheduler.pacer)
        yield GaugeMetricFamily("memosd_scheduler_longest_step_seconds",
                                "Longest stretch the tier scheduler held the event loop",
                                value=d.scheduler.pacer.longest_s)
        yield GaugeMetricFamily("memosd_loop_lag_seconds", "Event-loop lag", value=d.loop_lag_ms / 1000)
        events = CounterMetricFamily("memosd_events", "Events by sink and fate", labels=["sink", "fate"])
        for sink in d.events.sinks:
            events.add_metric([sink.name, "published"], getattr(sink, "published", 0))
            events.add_metric([sink.name, "dropped"], getattr(sink, "dropped", 0))
        yield events
        yield GaugeMetricFamily("memosd_plugin_errors", "Plugins that failed and are bypassed",
                                value=len(d.plugins.errors()))
        if d.mqtt is not None:
            yield GaugeMetricFamily("memosd_mqtt_connected", "1 while connected to the MQTT broker",
                                    value=1 if d.mqtt.connected else 0)
        if d.cluster is not None:
            yield from _cluster(d.cluster.info())


def _cluster(info: m.ClusterInfo):
    """Cluster mode: this node's connection, ownership and log, and what its clients were told."""
    yield GaugeMetricFamily("memosd_cluster_connected", "1 while connected to NATS", value=int(info.connected))
    yield GaugeMetricFamily("memosd_cluster_nodes", "Live nodes this node knows of", value=len(info.nodes))
    yield GaugeMetricFamily("memosd_cluster_owned_namespaces", "Namespaces this node owns", value=len(info.owned))
    yield GaugeMetricFamily("memosd_cluster_pending_writes", "Writes waiting for the log or being applied",
                            value=sum(ns.pending for ns in info.owned))
    events = CounterMetricFamily("memosd_cluster_ownership", "Ownership changes and redirects", labels=["event"])
    for event in ("takeovers", "handed_over", "lost", "moved", "unavailable"):
        events.add_metric([event], getattr(info, event))
    yield events
    entries = CounterMetricFamily("memosd_cluster_log_entries", "Log entries of owned namespaces, by origin",
                                  labels=["origin"])
    entries.add_metric(["appended"], sum(ns.appended_entries for ns in info.owned))
    entries.add_metric(["replayed"], sum(ns.replayed_entries for ns in info.owned))
    yield entries
    if info.log is not None:
        yield GaugeMetricFamily("memosd_cluster_log_messages", "Entries in the cluster's log stream",
                                value=info.log.messages)
        lag = GaugeMetricFamily("memosd_cluster_log_replica_lag", "Operations a log replica is behind its leader",
                                labels=["replica"])
        for replica in info.log.replicas:
            lag.add_metric([replica.name], replica.lag)
        yield lag


def _cumulative(counts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Prometheus buckets from per-bucket counts: each ``le`` counts everything up to it."""
    buckets, total = [], 0
    for le, count in counts:
        total += count
        buckets.append((le, total))
    return buckets


def _steps(pacer: Pacer) -> HistogramMetricFamily:
    """The tier scheduler's stretches of work on the event loop, by length."""
    counts = [("+Inf" if bound is None else repr(bound), n) for bound, n in pacer.histogram()]
    return HistogramMetricFamily("memosd_scheduler_step_seconds", "Tier scheduler work on the event loop, per step",
                                 buckets=_cumulative(counts), sum_value=pacer.total_s)


def _group_sizes(groups: GroupSizes) -> HistogramMetricFamily:
    """Jobs per commit as a Prometheus histogram (bucket ``le`` = the largest size of each bucket)."""
    histogram = groups.histogram()
    counts = [("+Inf" if i == len(histogram) - 1 else str(2 * smallest - 1), n)
              for i, (smallest, n) in enumerate(histogram)]
    return HistogramMetricFamily("memosd_writer_group_size", "Write jobs per LMDB commit (group commit)",
                                 buckets=_cumulative(counts), sum_value=groups.jobs)
