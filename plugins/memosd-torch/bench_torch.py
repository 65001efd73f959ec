"""Benchmark: the memosd-torch ``torch`` backend vs memosd's built-in exact ``numpy`` backend.

Both are exact, so the data's shape does not matter: unit float32 vectors drawn
uniformly on the sphere, fresh queries, top-``k`` single queries as memosd sends
them. Rows are added in batches of 4,096 (memosd's ``LOAD_CHUNK``). Both backends
run in the same process, one after the other, on the same vectors and queries;
their answers are compared (keys equal wherever scores are not within 1e-5).

    python plugins/memosd-torch/bench_torch.py --sizes 100000 1000000 --device auto

Throughput is sequential single-query throughput (1 / mean latency): memosd
sends one query per recall, one at a time per backend. Backend ``torch-mv`` is
the torch backend computing the scores with ``torch.mv`` on the CPU too (its
CUDA path) instead of numpy's BLAS (``MEMOSD_TORCH_CPU_GEMV=torch``).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from memosd.plugins.builtin import NumpyBackend
from memosd_torch import TorchBackend, resolve_device


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` float32 unit vectors, generated in chunks to bound the temporary float64 memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + len(x)] = x
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(name: str, backend, data: np.ndarray, queries: np.ndarray, k: int, batch: int, mask: np.ndarray, device: torch.device) -> tuple[dict, list]:
    keys = np.arange(len(data), dtype=np.int64)
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        backend.add(keys[start : start + batch], data[start : start + batch])
    sync(device)
    build = time.perf_counter() - t0
    for q in queries[:10]:  # warm-up (CUDA kernels, caches)
        backend.search(q, k)
    latencies, answers = [], []
    for q in queries:
        t = time.perf_counter()
        answers.append(backend.search(q, k))  # returns host arrays: the device work is complete
        latencies.append(time.perf_counter() - t)
    filtered = []
    for q in queries[:100]:
        t = time.perf_counter()
        found, _ = backend.search(q, k, allowed=mask)
        filtered.append(time.perf_counter() - t)
        assert mask[found].all()
    lat = np.array(latencies) * 1e3
    return {
        "backend": name,
        "n": len(data),
        "build_s": build,
        "add_per_s": len(data) / build,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "qps": 1e3 / float(lat.mean()),
        "filtered_p50": float(np.percentile(np.array(filtered) * 1e3, 50)),
        "mib": backend.nbytes / 2**20,
    }, answers


def agree(a: list, b: list) -> bool:
    """Same keys in the same order, except where the reference's scores are within float32 rounding of each other."""
    for (ka, sa), (kb, sb) in zip(a, b):
        if not np.allclose(sa, sb, rtol=0, atol=1e-5):
            return False
        if ka.tolist() != kb.tolist() and (len(sb) < 2 or np.min(np.abs(np.diff(sb))) >= 1e-5):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=50, help="results per query (memosd asks for max(k, 50))")
    parser.add_argument("--batch", type=int, default=4096, help="rows per add() call while building")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (as MEMOSD_TORCH_DEVICE)")
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch", "torch-mv"], choices=["numpy", "torch", "torch-mv"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    console = Console(width=170)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    console.print(f"torch {torch.__version__} on {device} ({where}); numpy {np.__version__}")
    table = Table(title=f"top-{args.k} exact search, {args.dim}-d unit vectors, {args.queries} single queries; torch on {device}")
    for col in ("vectors", "backend", "build (s)", "add (vectors/s)", "query p50 (ms)", "query p99 (ms)", "queries/s", "50%-filtered p50 (ms)", "same results", "memory (MiB)"):
        table.add_column(col, justify="right")
    for n in args.sizes:
        data = unit_vectors(n, args.dim, seed=0)
        queries = unit_vectors(args.queries, args.dim, seed=1)
        mask = np.random.default_rng(2).random(n) < 0.5
        reference = None
        for name in args.backends:
            if name == "numpy":
                backend = NumpyBackend(args.dim)
            elif name == "torch-mv" and device.type != "cpu":
                continue  # the same as torch off the CPU
            else:
                backend = TorchBackend(args.dim, device=device, cpu_gemv="torch" if name == "torch-mv" else "numpy")
            r, answers = run(name, backend, data, queries, args.k, args.batch, mask, device if name == "torch" else torch.device("cpu"))
            same = "reference" if reference is None else ("yes" if agree(answers, reference) else "NO")
            reference = reference or answers
            console.print({**r, "same": same})
            table.add_row(f"{n:,}", name, f"{r['build_s']:.1f}", f"{r['add_per_s']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['qps']:.1f}", f"{r['filtered_p50']:.2f}", same, f"{r['mib']:.0f}")
            del backend, answers
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del data, reference
        gc.collect()
    console.print(table)


if __name__ == "__main__":
    main()
