"""``memosd bench-slb``: the semantic lookaside buffer on real query streams, on vs off in the same run.

Two daemons on temporary stores, one with the buffer and one without, get the same writes and the
same queries, alternating which is asked first. Reported per workload: the buffer's hit rate, recall
p50/p99 over the socket with and without it, and the top-10 agreement (the share of the unbuffered
top-10 that the buffered recall also returned).

- Workload 1 ("questions"): each LoCoMo conversation stored in its namespace, then its questions
  asked in order.
- Workload 2 ("replay"): each conversation replayed turn by turn; before a turn is remembered its
  text is used as a recall query, the way an agent asks its memory at every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from memosd_client.protocol import messages as m

from ..testing import DaemonProcess
from .evaluate import namespace_for, turn_items
from .locomo import Conversation
from .stats import ratio, summarize_ns

Say = Callable[[str], None]


def _recall(client, namespace: str, query: str, k: int) -> tuple[int, list[int]]:
    started = time.perf_counter_ns()
    result = client.request("recall", m.RecallArgs(query=query, k=k), namespace)
    return time.perf_counter_ns() - started, [h.memory.id for h in result.hits]


class _Pair:
    """The same operation on both daemons, the order alternating to spread the machine's noise."""

    def __init__(self, off, on, k: int, think_s: float = 0.0):
        self.off, self.on, self.k = off, on, k
        self.think_s = think_s
        self.lat = {"off": [], "on": []}
        self.agreement: list[float] = []
        self._flip = False
        self._write_flip = False

    def ask(self, namespace: str, query: str) -> None:
        if self.think_s:
            time.sleep(self.think_s)  # the agent's own work between two recalls: idle time for the daemons
        order = [("off", self.off), ("on", self.on)]
        if self._flip:
            order.reverse()
        self._flip = not self._flip
        ids = {}
        for name, client in order:
            ns, got = _recall(client, namespace, query, self.k)
            self.lat[name].append(ns)
            ids[name] = got
        expected = set(ids["off"])
        self.agreement.append(len(expected & set(ids["on"])) / len(expected) if expected else float(not ids["on"]))

    def remember(self, namespace: str, items: list[m.MemoryIn]) -> None:
        # Alternate which daemon gets the write first too: the one written first then waits longest.
        self._write_flip = not self._write_flip
        for client in (self.off, self.on) if self._write_flip else (self.on, self.off):
            client.remember_many(items, namespace=namespace)


def _settle(admin) -> None:
    while admin.tiers().backlog:
        time.sleep(0.1)


def _snapshot(admin) -> dict:
    """The buffer's counters and the tiers' fault counters of every namespace, summed."""
    tiers = admin.tiers()
    faults = {name: sum(getattr(ns, name) for ns in tiers.namespaces) for name in ("faults", "fault_queries", "queries")}
    return {"slb": tiers.slb, **faults}


COMPARISONS = {
    "buffer": "MEMOSD_SLB_ENABLED",
    "prefetch": "MEMOSD_SLB_PREFETCH",
}
"""What differs between the two daemons: the lookaside buffer, or prefetching (the buffer off in both)."""


def run_slb_bench(conversations: list[Conversation], *, k: int = 10, threshold: float | None = None,
                  compare: str = "buffer", budget_bytes: int | None = None, think_ms: float = 0.0,
                  say: Say = print) -> dict:
    """Both workloads on two daemons that differ only in ``compare``; see the module docstring."""
    common = {} if budget_bytes is None else {"MEMOSD_TIERS_BUDGET_BYTES": str(budget_bytes)}
    env_on = {**common, COMPARISONS[compare]: "1"}
    if threshold is not None:
        env_on["MEMOSD_SLB_THRESHOLD"] = str(threshold)
    out: dict = {"k": k, "conversations": len(conversations), "workloads": {}}
    with DaemonProcess(extra_args=["--no-fsync"], env=common) as off_daemon, \
            DaemonProcess(extra_args=["--no-fsync"], env=env_on) as on_daemon, \
            off_daemon.client(timeout=60) as off, on_daemon.client(timeout=60) as on, \
            on_daemon.admin() as on_admin, off_daemon.admin() as off_admin:
        admins = {"off": off_admin, "on": on_admin}
        say("workload 1: store each conversation, then ask its questions in order")
        pair = _Pair(off, on, k, think_ms / 1000)
        for conv in conversations:
            pair.remember(namespace_for(conv, "q-"), turn_items(conv))
        _settle(on_admin)
        _settle(off_admin)
        before = {name: _snapshot(a) for name, a in admins.items()}
        for conv in conversations:
            for q in conv.questions:
                pair.ask(namespace_for(conv, "q-"), q.question)
        out["workloads"]["questions"] = _row(pair, before, {name: _snapshot(a) for name, a in admins.items()})

        say("workload 2: replay each conversation, recalling with each turn before remembering it")
        pair = _Pair(off, on, k, think_ms / 1000)
        before = {name: _snapshot(a) for name, a in admins.items()}
        for conv in conversations:
            namespace = namespace_for(conv, "r-")
            for item in turn_items(conv):
                pair.ask(namespace, item.text)
                pair.remember(namespace, [item])
        out["workloads"]["replay"] = _row(pair, before, {name: _snapshot(a) for name, a in admins.items()})
    out["settings"] = {"compare": compare, "threshold": threshold if threshold is not None else "default",
                       "budget_bytes": budget_bytes, "think_ms": think_ms}
    return out


def _row(pair: _Pair, before: dict, after: dict) -> dict:
    slb_before, slb_after = before["on"]["slb"], after["on"]["slb"]
    lookups = slb_after.lookups - slb_before.lookups
    hits = slb_after.hits - slb_before.hits
    off, on = summarize_ns(pair.lat["off"]), summarize_ns(pair.lat["on"])
    queries = len(pair.agreement)
    row = {
        "queries": queries, "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
        "off_p50_us": off["p50_us"], "off_p99_us": off["p99_us"], "on_p50_us": on["p50_us"], "on_p99_us": on["p99_us"],
        "p50_ratio": ratio(on["p50_us"], off["p50_us"]), "p99_ratio": ratio(on["p99_us"], off["p99_us"]),
        "agreement": round(sum(pair.agreement) / len(pair.agreement), 4) if pair.agreement else None,
        "verified_agreement": slb_after.agreement,
    }
    for name in ("off", "on"):
        faults = after[name]["faults"] - before[name]["faults"]
        row[f"{name}_faults_per_recall"] = round(faults / queries, 3) if queries else 0.0
    used = slb_after.prefetch_used - slb_before.prefetch_used
    settled = used + slb_after.prefetch_wasted - slb_before.prefetch_wasted
    row["prefetched"] = slb_after.prefetched - slb_before.prefetched
    row["prefetch_usefulness"] = round(used / settled, 4) if settled else None
    return row


SIMILARITY_LEVELS = (0.5, 0.7, 0.85, 0.95)


def query_similarity(conversations: list[Conversation], encoder: str = "") -> dict:
    """How close each query of both workloads is to the nearest earlier query of its namespace.

    That is the best hit rate any buffer keyed by query vectors can reach at a threshold, whatever
    it caches. ``encoder`` "" measures the buffer's own key space (the hashed n-gram vectors);
    an encoder plugin's name measures that plugin's embeddings instead (it must be installed).
    """
    encode = _plugin_encoder(encoder) if encoder else _hashed_encoder()
    streams = {"questions": [[q.question for q in conv.questions] for conv in conversations],
               "replay": [[item.text for item in turn_items(conv)] for conv in conversations]}
    out = {"encoder": encoder or "hashed n-grams (the buffer's key)", "workloads": {}}
    for name, per_namespace in streams.items():
        nearest = []
        for texts in per_namespace:
            vectors = encode(texts)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
            sims = vectors @ vectors.T
            nearest.extend(float(sims[i, :i].max()) for i in range(1, len(texts)))
        values = np.asarray(nearest)
        out["workloads"][name] = {
            "queries": len(values), "p50": round(float(np.median(values)), 3),
            "p90": round(float(np.percentile(values, 90)), 3),
            **{f"at_least_{level}": round(float((values >= level).mean()), 4) for level in SIMILARITY_LEVELS},
        }
    return out


def _hashed_encoder() -> Callable[[list[str]], np.ndarray]:
    from ..retrieval import RetrievalConfig
    from ..tiers.fine import Featurizer

    cfg = RetrievalConfig()
    feat = Featurizer(cfg.hash_dim, cfg.bigram_weight, cfg.hash_norm_exponent)

    def encode(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), feat.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            buckets, weights = feat.query(text)
            np.add.at(out[i], buckets, weights)
        return out

    return encode


def _plugin_encoder(name: str) -> Callable[[list[str]], np.ndarray]:
    from ..config import PluginsConfig
    from ..plugins.registry import PluginRegistry

    registry = PluginRegistry(PluginsConfig(encoder=name, timeout_s=600.0))
    registry.load()
    if registry.encoder is None or not registry.encoder.ok:
        raise SystemExit(f"encoder plugin {name!r} is not installed or failed to load (memosd plugins)")
    return lambda texts: np.asarray(registry.encoder.encode(texts), dtype=np.float32)
