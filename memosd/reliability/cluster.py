"""Cluster suite: kill -9 of a memosd node and of a NATS server under writers, and a fenced old owner.

A three-server NATS cluster and three memosd nodes run on loopback. Writers send
memories to namespaces through any node (the client follows MOVED), each with
its own idempotency key, resent until acknowledged. Then:

- **node kill**: the node owning most namespaces gets SIGKILL; the time from the
  kill to the first acknowledged write of each namespace it owned is its
  failover time;
- **NATS kill**: one NATS server gets SIGKILL, and comes back later;
- **fencing**: a node is stopped with SIGSTOP past its lease, another takes its
  namespace, the node is resumed and sent a write for it directly: it must
  refuse it, and the write must be nowhere.

At the end every namespace is exported through the cluster: each acknowledged
memory must be there exactly once (lost, duplicated) and found by recall.
"""

from __future__ import annotations

import random
import signal
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from memosd_client import Client
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MemosdError

from ..cluster.local import LocalCluster
from .result import Say, Stopwatch, SuiteResult

FAILOVER_GOAL_S = 10.0


@dataclass(slots=True)
class ClusterOptions:
    writers: int = 4
    namespaces: int = 6
    phase_s: float = 12.0
    """Writing time after each fault (long enough for a lease to end and the namespace to move)."""
    store_dir: str | None = None
    seed: int | None = None


@dataclass(slots=True)
class _Ledger:
    """Every acknowledged write: namespace -> {token: id}, with ack times for failover."""

    acked: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    ack_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Writers:
    """Threads that write unique tokens through random nodes until told to stop."""

    def __init__(self, cluster: LocalCluster, namespaces: list[str], count: int, rng: random.Random):
        self.cluster, self.namespaces = cluster, namespaces
        self.ledger = _Ledger()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, rng.randrange(1 << 30)), daemon=True)
                         for i in range(count)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self, rng: random.Random) -> Client:
        live = [node for node in self.cluster.nodes if node.proc is not None]
        return Client(rng.choice(live).endpoint, timeout=2.0, retries=1)

    def _run(self, index: int, seed: int) -> None:
        rng = random.Random(seed)
        client = self._client(rng)
        serial = 0
        try:
            while not self._stop.is_set():
                namespace = rng.choice(self.namespaces)
                token = f"w{index}x{serial}z{rng.randrange(1 << 40):010x}"
                serial += 1
                while not self._stop.is_set():  # the same memory, same key, until it is acknowledged
                    try:
                        memory_id = client.remember(f"cluster memory {token}", idempotency_key=token,
                                                    namespace=namespace)
                    except MemosdError as err:
                        with self.ledger.lock:
                            self.ledger.errors[err.code.name] += 1
                        client.close()
                        time.sleep(0.05)
                        client = self._client(rng)  # a node may have died: start again from a live one
                        continue
                    with self.ledger.lock:
                        self.ledger.acked[namespace][token] = memory_id
                        self.ledger.ack_times[namespace].append(time.monotonic())
                    break
        finally:
            client.close()


def run_cluster(options: ClusterOptions, say: Say) -> SuiteResult:
    seed = options.seed if options.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    watch = Stopwatch()
    result = SuiteResult("cluster", "0 acknowledged writes lost or stored twice across kill -9 of a node and of a "
                         "NATS server; a resumed old owner cannot write; failover reported (goal <= 10 s)",
                         {"writers": options.writers, "namespaces": options.namespaces, "phase_s": options.phase_s,
                          "seed": seed})
    namespaces = [f"cl{i}" for i in range(options.namespaces)]
    with LocalCluster(3, 3, base_dir=_base_dir(options.store_dir)) as cluster:
        cluster.wait_for_nodes(3)
        say("cluster: 3 NATS servers and 3 nodes up; writers start")
        writers = _Writers(cluster, namespaces, options.writers, rng)
        writers.start()
        try:
            time.sleep(options.phase_s / 3)
            failover = _kill_node(cluster, writers, options, say)
            nats_killed = _kill_nats(cluster, rng, options, say)
        finally:
            writers.stop()
        fenced = _fencing(cluster, say)
        lost, duplicated, unrecalled = _verify(cluster, writers.ledger, rng, say)
    acknowledged = sum(len(tokens) for tokens in writers.ledger.acked.values())
    result.figures.update({
        "acknowledged": acknowledged, "lost": lost, "duplicated": duplicated, "not_recalled": unrecalled,
        "failover_s": failover, "nats_server_killed": nats_killed, "fenced_write_refused": fenced,
        "client_errors_retried": dict(writers.ledger.errors),
    })
    if acknowledged == 0:
        result.fail("no write was acknowledged")
    if lost:
        result.fail(f"{lost} acknowledged writes lost")
    if duplicated:
        result.fail(f"{duplicated} writes stored more than once")
    if unrecalled:
        result.fail(f"{unrecalled} sampled acknowledged writes not found by recall")
    if failover is None:
        result.fail("no namespace moved after the node kill (failover not measured)")
    if not fenced:
        result.fail("the resumed old owner accepted a write, or it was stored")
    result.seconds = watch.elapsed()
    return result


def _base_dir(store_dir: str | None) -> str | None:
    return None if store_dir is None else tempfile.mkdtemp(prefix="memosd-cluster-", dir=store_dir)


def _owned(cluster: LocalCluster) -> dict[int, list[str]]:
    owned: dict[int, list[str]] = {}
    for i, node in enumerate(cluster.nodes):
        info = cluster.info(i) if node.proc is not None else None
        owned[i] = [o.namespace for o in info.owned if o.ready] if info is not None else []
    return owned


def _kill_node(cluster: LocalCluster, writers: _Writers, options: ClusterOptions, say: Say) -> float | None:
    owned = _owned(cluster)
    victim = max(owned, key=lambda i: len(owned[i]))
    moved = owned[victim]
    killed_at = time.monotonic()
    cluster.nodes[victim].kill(signal.SIGKILL)
    say(f"cluster: kill -9 of node n{victim}, owner of {len(moved)} namespace(s)")
    time.sleep(options.phase_s)
    times = []
    with writers.ledger.lock:
        for namespace in moved:
            after = [t for t in writers.ledger.ack_times[namespace] if t > killed_at]
            if after:
                times.append(min(after) - killed_at)
    if not moved or len(times) < len(moved):
        return None
    failover = round(max(times), 3)
    say(f"cluster: its namespaces answered again after {failover:.2f} s; restarting it")
    cluster.nodes[victim].start()
    return failover


def _kill_nats(cluster: LocalCluster, rng: random.Random, options: ClusterOptions, say: Say) -> int:
    victim = rng.randrange(cluster.nats.size)
    cluster.nats.kill(victim)
    say(f"cluster: kill -9 of NATS server {victim}")
    time.sleep(options.phase_s / 2)
    cluster.nats.restart(victim)
    time.sleep(options.phase_s / 2)
    return victim


def _fencing(cluster: LocalCluster, say: Say) -> bool:
    """SIGSTOP an owner past its lease, let another node take over, resume it: its write must be refused."""
    owned = _owned(cluster)
    old = next(i for i in owned if owned[i])
    namespace = owned[old][0]
    process = cluster.nodes[old].proc
    process.send_signal(signal.SIGSTOP)
    say(f"cluster: node n{old} stopped (SIGSTOP) while owning {namespace!r}")
    others = [node for i, node in enumerate(cluster.nodes) if i != old]
    taken = False
    with Client(others[0].endpoint, timeout=2.0, retries=1) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not taken:
            try:
                client.remember("written by the new owner", namespace=namespace)
                taken = True
            except MemosdError:
                time.sleep(0.2)
    process.send_signal(signal.SIGCONT)
    if not taken:
        say("cluster: no other node took the namespace over")
        return False
    token = "fenced" + "0" * 8
    refused = False
    with Client(cluster.nodes[old].endpoint, timeout=5.0, retries=0) as direct:
        try:
            # No redirect followed: this asks the old owner itself to write.
            direct.request_here("remember", m.RememberArgs(items=[m.MemoryIn(text=f"cluster memory {token}")]), namespace)
        except MemosdError as err:
            refused = True
            say(f"cluster: the resumed node refused the write: {err.code.name}")
        else:
            info = cluster.info(old)
            say(f"cluster: the resumed node accepted the write; it owns {info.owned if info else '?'}")
    with Client(others[0].endpoint, timeout=5.0) as client:
        stored = any(token in hit.memory.text for hit in client.recall(token, k=5, namespace=namespace))
    return refused and not stored


def _verify(cluster: LocalCluster, ledger: _Ledger, rng: random.Random, say: Say) -> tuple[int, int, int]:
    """Export each namespace through the cluster: every acknowledged token exactly once, and recallable."""
    lost = duplicated = unrecalled = 0
    live = next(node for node in cluster.nodes if node.proc is not None)
    with Client(live.endpoint, timeout=10.0) as client:
        for namespace, tokens in ledger.acked.items():
            seen = Counter()
            for mem in client.export(namespace=namespace):
                words = mem.text.split()
                if len(words) == 3 and words[:2] == ["cluster", "memory"]:
                    seen[words[2]] += 1
            lost += sum(1 for token in tokens if seen[token] == 0)
            duplicated += sum(1 for token in tokens if seen[token] > 1)
            for token in rng.sample(sorted(tokens), min(5, len(tokens))):
                hits = client.recall(token, k=3, namespace=namespace)
                if not any(hit.memory.id == tokens[token] for hit in hits):
                    unrecalled += 1
    say(f"cluster: verified {sum(len(t) for t in ledger.acked.values())} acknowledged writes")
    return lost, duplicated, unrecalled
