"""Recall (or write) latency of this working tree against another git revision, in the same run.

    python bench/compare_revisions.py --base HEAD~1 [--memories 100000] [--sessions 0] [--queries 2000]
    python bench/compare_revisions.py --base HEAD~1 --writes 2500        # durable remembers instead

Both revisions run as real daemons on temporary stores, get the same memories
(the benchmark generator's; ``--sessions N`` spreads them over N sessions, so
that many short-term rings stay open), settle, and then answer the same queries
over ipc, each query to both with the order alternating, so that the machine's
noise falls on both alike. Prints p50/p99 as the client sees it and the engine
time the daemon reports, the ratio of p50s, and how many answers were
identical (ids and scores). With ``--writes N``, both daemons are durable (fsync)
and take 3,000 memories, then N single remembers and 40 batches of 1000, each
request to both with the order alternating: p50/p99 of the singles and the
batches' rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from memosd.bench.workload import Workload  # noqa: E402
from memosd_client import AdminClient, Client  # noqa: E402
from memosd_client.protocol import messages as m  # noqa: E402


def start(tree: Path, work: Path, name: str, durable: bool = False) -> tuple[subprocess.Popen, str, str]:
    endpoint, admin = f"ipc://{work}/{name}.sock", f"ipc://{work}/{name}-admin.sock"
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'clients' / 'python'}")
    # cwd outside both trees: `python -m` puts the current directory first on sys.path.
    proc = subprocess.Popen([sys.executable, "-m", "memosd", "serve", "--data-dir", str(work / name), "--listen",
                             endpoint, "--admin-listen", admin, *([] if durable else ["--no-fsync"]),
                             "--log-level", "warning"],
                            env=env, cwd=work)
    deadline = time.monotonic() + 60
    while True:
        try:
            with AdminClient(admin, timeout=1) as client:
                client.status()
            return proc, endpoint, admin
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the {name} daemon did not start")
            time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=0, help="spread the memories over this many sessions")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=0, help="compare N durable single remembers and batches instead")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="memosd-compare-"))
    base_tree = work / "base-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base], check=True)
    trees = {"base": base_tree, "this": ROOT}
    procs, clients = {}, {}
    try:
        for name, tree in trees.items():
            procs[name], endpoint, admin = start(tree, work, name, durable=bool(args.writes))
            clients[name] = (Client(endpoint, namespace="bench", timeout=120), admin)
        if args.writes:
            compare_writes({name: client for name, (client, _) in clients.items()}, args.writes, args.base)
            return 0
        for name, (client, admin) in clients.items():
            for number, batch in enumerate(Workload(seed=0).batches(args.memories, 1000)):
                if args.sessions:
                    batch = [m.MemoryIn(text=b.text, event_time=b.event_time,
                                        session=str((number * 1000 + i) % args.sessions)) for i, b in enumerate(batch)]
                client.remember_many(batch)
            with AdminClient(admin, timeout=60) as a:
                while a.tiers().backlog:
                    time.sleep(0.5)
        for query in Workload(seed=1).queries(200):  # warm both
            for client, _ in clients.values():
                client.recall(query)
        lat = {name: [] for name in trees}
        took = {name: [] for name in trees}
        same = 0
        queries = Workload(seed=2).queries(args.queries)
        for i, query in enumerate(queries):
            answers = {}
            for name in (list(trees) if i % 2 == 0 else list(trees)[::-1]):
                client = clients[name][0]
                started = time.perf_counter_ns()
                result = client.request("recall", m.RecallArgs(query=query, k=10), "bench")
                lat[name].append(time.perf_counter_ns() - started)
                took[name].append(result.took_us)
                answers[name] = [(h.memory.id, round(h.score, 5)) for h in result.hits]
            same += answers["base"] == answers["this"]
        print(f"{args.memories:,} memories, {args.sessions or 'generator'} sessions, {len(queries):,} queries, "
              f"base {args.base}")
        for name in trees:
            print(f"  {name:5s} client p50 {np.percentile(lat[name], 50) / 1e6:.2f} ms, "
                  f"p99 {np.percentile(lat[name], 99) / 1e6:.2f} ms; engine p50 {np.percentile(took[name], 50) / 1e3:.2f} ms")
        ratio = np.percentile(lat["this"], 50) / np.percentile(lat["base"], 50)
        print(f"  p50 this/base {ratio:.2f}x; identical answers {same:,}/{len(queries):,}")
    finally:
        for client, _ in clients.values():
            client.close()
        for proc in procs.values():
            proc.terminate()
            proc.wait()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def compare_writes(clients: dict[str, Client], singles: int, base: str) -> None:
    workload = Workload(seed=5)
    for client in clients.values():
        for batch in Workload(seed=0).batches(3000, 1000):
            client.remember_many(batch)
    names = list(clients)
    items = workload.memories(singles)
    lat = {name: [] for name in names}
    for i, item in enumerate(items):
        for name in (names if i % 2 == 0 else names[::-1]):
            started = time.perf_counter_ns()
            clients[name].remember(item.text, session=item.session)
            lat[name].append(time.perf_counter_ns() - started)
    took = {name: [] for name in names}
    for i, batch in enumerate(workload.batches(40_000, 1000)):
        for name in (names if i % 2 == 0 else names[::-1]):
            started = time.perf_counter()
            clients[name].remember_many(batch)
            took[name].append(time.perf_counter() - started)
    print(f"durable writes, base {base}: {singles:,} single remembers and 40 batches of 1000 to each")
    for name in names:
        single = np.array(lat[name][100:]) / 1e3
        print(f"  {name:5s} single p50 {np.percentile(single, 50):,.0f} us, p99 {np.percentile(single, 99):,.0f} us; "
              f"batches {1000 / np.mean(took[name][4:]):,.0f} memories/s")
    ratio = np.percentile(lat["this"], 50) / np.percentile(lat["base"], 50)
    print(f"  single p50 this/base {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
