"""``memosd bench --peers``: memosd against the embedded vector stores a user might pick instead.

Same vectors, same queries, same run: memosd over ipc (real daemon, real
client, the vectors reaching its dense channel through an encoder plugin)
against chromadb and lancedb in the caller's process, and numpy brute force as
the exact reference. Each store gets the rows in batches (insert rate until
searchable), then every query, the stores alternating every 100 queries so
the machine's noise spreads evenly over them. Recall@k is against exact search
over the same vectors.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .embeddings import make_vector_set, recall_at_k
from .latency import interleaved
from .peer_memosd import MemosdStore
from .peer_stores import PeerStore, missing_package, open_store
from .runner import Say, machine_info
from .stats import ratio, summarize_ns

PEERS = ["memosd", "memosd-hnsw", "chromadb", "lancedb", "numpy"]
"""memosd-hnsw: memosd with the memosd-ann plugin's faiss HNSW backend in its dense channel."""


@dataclass
class PeerBenchOptions:
    """What ``memosd bench --peers`` runs; the defaults are the issue's comparison."""

    size: int = 100_000
    queries: int = 1_000
    dim: int = 384
    k: int = 10
    batch: int = 1_000
    """Rows per insert call, for every store."""
    seed: int = 0
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    store_dir: str | None = None
    """Where the stores' files go (default: the system temp dir)."""


def _open(name: str, where: Path, opts: PeerBenchOptions) -> PeerStore:
    if name == "memosd":
        return MemosdStore(where, opts.store_dir)
    if name == "memosd-hnsw":
        return MemosdStore(where, opts.store_dir, backend="hnsw")
    return open_store(name, where, opts.size, opts.dim)


def _insert(store: PeerStore, memories: np.ndarray, batch: int) -> dict:
    """Rows in batches, then ``finish``; the rate counts until the store can search every row."""
    started = time.perf_counter()
    for start in range(0, len(memories), batch):
        store.add(start, memories[start:start + batch])
    acked = time.perf_counter()
    store.finish()
    done = time.perf_counter()
    n = len(memories)
    return {"rows": n, "batch": batch, "acked_s": round(acked - started, 3), "seconds": round(done - started, 3),
            "per_s": round(n / (done - started), 1), "acked_per_s": round(n / (acked - started), 1)}


def run_peer_bench(opts: PeerBenchOptions, say: Say) -> dict:
    """Fill every available store, query them all interleaved, and return one JSON-ready dict."""
    unknown = [p for p in opts.peers if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    began = time.perf_counter()
    say(f"peers: {opts.size:,} vectors and {opts.queries:,} queries, {opts.dim}-d, exact top {opts.k} by numpy")
    vs = make_vector_set(opts.size, opts.queries, opts.dim, opts.k, opts.seed)
    where = Path(tempfile.mkdtemp(prefix="memosd-peers-", dir=opts.store_dir))
    np.save(where / "memories.npy", vs.memories)
    np.save(where / "queries.npy", vs.queries)
    stores: dict[str, PeerStore] = {}
    skipped: dict[str, str] = {}
    rows: dict[str, dict] = {}
    try:
        for name in opts.peers:
            reason = missing_package(name)
            if reason:
                say(f"peers: {name} skipped: {reason}")
                skipped[name] = reason
                continue
            say(f"peers: {name}: inserting {opts.size:,} rows in batches of {opts.batch:,}")
            store = stores[name] = _open(name, where, opts)
            rows[name] = {"store": name, "config": store.config, "insert": _insert(store, vs.memories, opts.batch)}
            if isinstance(store, MemosdStore):
                store.settle(say)
        found: dict[str, dict[int, list[int]]] = {name: {} for name in stores}

        def probe(name: str, store: PeerStore):
            answers = found[name]

            def run(row: int) -> int:
                t0 = time.perf_counter_ns()
                got = store.query(row, vs.queries[row], opts.k)
                elapsed = time.perf_counter_ns() - t0
                answers[row] = got
                return elapsed

            return run

        say(f"peers: {opts.queries:,} queries on each of {', '.join(stores)}, alternating every 100")
        samples = interleaved({name: probe(name, store) for name, store in stores.items()},
                              list(range(opts.queries)), warmup=min(50, opts.queries))
        for name, store in stores.items():
            row = rows[name]
            row.update(summarize_ns(samples[name]))
            row["recall_at_k"] = recall_at_k([found[name][i] for i in range(opts.queries)], vs.truth)
            if isinstance(store, MemosdStore):
                row["engine_p50_us"] = summarize_ns([t * 1000 for t in store.took_us])["p50_us"]
                row["settle_s"] = store.settle_s
                row.update(store.ram())
        base = rows.get("memosd")
        for row in rows.values():
            row["vs_memosd_p50"] = ratio(row["p50_us"], base["p50_us"]) if base else None
    finally:
        for store in stores.values():
            store.close()
        shutil.rmtree(where, ignore_errors=True)
    return {
        "machine": machine_info(),
        "options": asdict(opts),
        "vectors": {"count": opts.size, "queries": opts.queries, "dim": opts.dim,
                    "shape": "unit rows near a 32-d subspace plus noise (0.1 per dimension), fixed seed"},
        "k": opts.k,
        "peers": list(rows.values()),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - began, 1),
    }
