"""Benchmark: the memosd-ann ``hnsw`` backend vs memosd's built-in exact ``numpy`` backend.

Data shaped like real text embeddings (uniform random vectors are the worst case
for graph indexes and unlike any encoder's output): points near a random
``--subspace``-dimensional subspace of R^dim plus isotropic noise, L2-normalised.
Queries are fresh points from the same distribution. Ground truth is exact
(one batched GEMM). Both backends run in the same process, one after the other.

    python plugins/memosd-ann/bench_ann.py --sizes 100000 1000000

``--ef-search`` takes several values (``auto`` = the backend's default, scaled
with the index size): the graph is built once and every value is measured on
it. ``--index-cache DIR`` saves each built graph there and reuses it on the next
run with the same data and graph parameters (a 1M-vector build takes ~11
minutes on 2 cores); the build column then reads ``cached``.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from memosd.plugins.builtin import NumpyBackend
from memosd_ann import HnswBackend


def subspace_vectors(n: int, dim: int = 256, subspace: int = 32, noise: float = 0.15, seed: int = 0, basis_seed: int = 1234) -> np.ndarray:
    """``n`` unit float32 vectors near a fixed random ``subspace``-dim subspace (same basis for the same ``basis_seed``)."""
    basis = np.random.default_rng(basis_seed).standard_normal((subspace, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = rng.standard_normal((m, subspace)).astype(np.float32) @ basis
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x += (noise / np.sqrt(dim)) * rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    truth = []
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ data.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        truth.extend(set(row.tolist()) for row in part)
    return truth


def build(factory, data: np.ndarray, batch: int) -> tuple[object, float]:
    """A backend holding ``data`` under keys 0..n-1, added in ``batch``-row calls as memosd does; and the seconds it took."""
    backend = factory(data.shape[1])
    keys = np.arange(len(data), dtype=np.int64)
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        backend.add(keys[start : start + batch], data[start : start + batch])
    return backend, time.perf_counter() - t0


def cached_hnsw(cache: Path, data: np.ndarray, batch: int, tag: str, **kw) -> tuple[HnswBackend, float | None]:
    """An hnsw backend over ``data``, its graph read from ``cache`` when a previous run saved it (build time None)."""
    path = cache / f"hnsw-sq8-{tag}.faiss"  # graphs over 8-bit codes (older caches held float32 rows)
    if not path.exists():
        backend, seconds = build(lambda dim: HnswBackend(dim, **kw), data, batch)
        cache.mkdir(parents=True, exist_ok=True)
        faiss.write_index(backend._index, str(path))
        return backend, seconds
    backend = HnswBackend(data.shape[1], **kw)
    # Keys were added as 0..n-1 with no replacement, so slot == key: restore the key maps to match.
    backend._index = faiss.read_index(str(path))
    assert backend._index.ntotal == len(data)
    backend._key_of_slot = np.arange(len(data), dtype=np.int64)
    backend._slot_of_key = np.arange(len(data), dtype=np.int64)
    backend._live = len(data)
    backend._rows = np.ascontiguousarray(data, dtype=np.float32)  # the float32 rows the re-ranking reads
    return backend, None


def measure(backend, queries: np.ndarray, truth: list[set[int]], k: int, mask: np.ndarray) -> dict:
    """Latency percentiles (ms), 50%-filtered p50 and recall@k of single-query searches."""
    for q in queries[:20]:  # warm-up
        backend.search(q, k)
    latencies, hits = [], 0
    for q, expected in zip(queries, truth):
        t = time.perf_counter()
        found, _ = backend.search(q, k)
        latencies.append(time.perf_counter() - t)
        hits += len(expected & set(found.tolist()))
    filtered = []
    for q in queries[:200]:
        t = time.perf_counter()
        found, _ = backend.search(q, k, allowed=mask)
        filtered.append(time.perf_counter() - t)
        assert mask[found].all()
    lat = np.array(latencies) * 1e3
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "filtered_p50": float(np.percentile(np.array(filtered) * 1e3, 50)),
        "recall": hits / (k * len(queries)),
        "mib": backend.nbytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--subspace", type=int, default=32)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4096, help="rows per add() call while building")
    parser.add_argument("--ef-search", nargs="+", default=["auto"], help="efSearch values to measure on one build; auto = the backend's default")
    parser.add_argument("--m", type=int, default=None, help="HNSW graph degree (default: the backend's)")
    parser.add_argument("--index-cache", type=Path, default=None, help="directory to save built graphs in and reuse them from")
    parser.add_argument("--backends", nargs="+", default=["numpy", "hnsw"])
    args = parser.parse_args()
    console = Console(width=160)
    table = Table(title=f"top-{args.k}, {args.dim}-d unit vectors near a {args.subspace}-d subspace, {args.queries} single queries")
    for col in ("vectors", "backend", "efSearch", "build (s)", "query p50 (ms)", "query p99 (ms)", "50%-filtered p50 (ms)", f"recall@{args.k} vs exact", "RAM (MiB)"):
        table.add_column(col, justify="right")
    for n in args.sizes:
        data = subspace_vectors(n, args.dim, args.subspace, seed=0)
        queries = subspace_vectors(args.queries, args.dim, args.subspace, seed=1)
        truth = exact_top(data, queries, args.k)
        mask = np.random.default_rng(2).random(n) < 0.5
        for name in args.backends:
            if name == "numpy":
                backend, seconds = build(NumpyBackend, data, args.batch)
                sweep = [("-", None)]
            else:
                kw = {"m": args.m} if args.m else {}
                probe = HnswBackend(args.dim, **kw)
                if args.index_cache is not None:
                    tag = f"n{n}-d{args.dim}-s{args.subspace}-M{probe.m}-efc{probe.ef_construction}-b{args.batch}"
                    backend, seconds = cached_hnsw(args.index_cache, data, args.batch, tag, **kw)
                else:
                    backend, seconds = build(lambda dim: HnswBackend(dim, **kw), data, args.batch)
                sweep = [(v, None if v == "auto" else int(v)) for v in args.ef_search]
            for label, ef in sweep:
                if name == "hnsw":
                    backend.ef_search = ef  # None: the size-scaled default
                    label = f"{backend.effective_ef_search(args.k)}" + (" (auto)" if ef is None else "")
                r = measure(backend, queries, truth, args.k, mask)
                console.print({"backend": name, "n": n, "ef": label, "build_s": seconds, **r})
                built = "cached" if seconds is None else f"{seconds:.1f}"
                table.add_row(f"{n:,}", name, label, built, f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['filtered_p50']:.2f}", f"{r['recall']:.4f}", f"{r['mib']:.0f}")
            del backend
            gc.collect()
    console.print(table)


if __name__ == "__main__":
    main()
