"""Start after a kill -9: what the index snapshot taken while serving saves, against a full rebuild.

    python bench/crash_restart.py                                  # 20 namespaces x 5,000 memories
    python bench/crash_restart.py --namespaces 100 --per-namespace 10000 --written 1

One daemon (``--no-fsync``: durability does not change what a start reads) is filled with generated
chat turns in ``--namespaces`` namespaces and left to settle (pages formed, consolidated); it writes
an index snapshot while serving (``store.checkpoint_interval_s``). Then ``--written`` namespaces take
one more write each and the daemon is killed with SIGKILL. The start after it is timed until the first
recall in a written namespace answers, twice on the same store: with the snapshot (the namespaces
written since are rebuilt, the others opened) and with the snapshot deleted (everything rebuilt).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memosd.bench.workload import Workload  # noqa: E402
from memosd.testing import DaemonProcess  # noqa: E402
from memosd_client.protocol.errors import MemosdError  # noqa: E402

INTERVAL_S = 2.0


def wait_settled(daemon: DaemonProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with daemon.admin(timeout=60) as admin:
        while admin.tiers().backlog:
            if time.monotonic() > deadline:
                raise SystemExit("the scheduler did not settle in time")
            time.sleep(0.5)


def wait_snapshot(daemon: DaemonProcess, after: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with daemon.admin(timeout=60) as admin:
        while admin.status().snapshot_at < after:
            if time.monotonic() > deadline:
                raise SystemExit("no snapshot was written while serving")
            time.sleep(0.2)


def timed_start(daemon: DaemonProcess, namespace: str, query: str) -> dict:
    """Start, and time until a recall in ``namespace`` answers; with what the start reports."""
    started = time.perf_counter()
    daemon.start()
    while True:
        try:
            with daemon.client(namespace=namespace, timeout=600) as client:
                hits = client.recall(query, k=10)
            break
        except MemosdError:
            time.sleep(0.05)
    answered = time.perf_counter() - started
    with daemon.admin(timeout=60) as admin:
        status = admin.status()
    return {"first_recall_s": round(answered, 3), "load_s": status.load_s, "indexes_from": status.indexes_from,
            "opened": status.namespaces_opened, "rebuilt": status.namespaces_rebuilt, "hits": len(hits)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=5000)
    parser.add_argument("--written", type=int, default=1, help="namespaces written after the snapshot")
    parser.add_argument("--settle-timeout", type=float, default=1800.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    workload = Workload(None, seed=7)
    names = [f"agent-{i:04d}" for i in range(args.namespaces)]
    with tempfile.TemporaryDirectory(prefix="memosd-crash-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "store", extra_args=["--no-fsync"], startup_timeout=1800,
                               env={"MEMOSD_STORE_CHECKPOINT_INTERVAL_S": str(INTERVAL_S)})
        try:
            daemon.start()
            for name in names:
                with daemon.client(namespace=name, timeout=120) as client:
                    for batch in workload.batches(args.per_namespace, 1000):
                        client.remember_many(batch)
            wait_settled(daemon, args.settle_timeout)
            with daemon.client(namespace=names[0]) as client:
                client.remember("a write that makes a snapshot due")
            settled_at = time.time()
            wait_snapshot(daemon, settled_at, args.settle_timeout)
            query = workload.queries(1)[0]
            for name in names[: args.written]:
                with daemon.client(namespace=name) as client:
                    client.remember("written after the snapshot, then the daemon was killed")
            daemon.kill(signal.SIGKILL)
            with_snapshot = timed_start(daemon, names[0], query)
            daemon.kill(signal.SIGKILL)
            (daemon.data_dir / "indexes" / "snapshot.pickle").unlink()
            rebuild = timed_start(daemon, names[0], query)
        finally:
            daemon.cleanup()
    rows = {"with the snapshot taken while serving": with_snapshot, "snapshot deleted (full rebuild)": rebuild}
    if args.json:
        print(json.dumps({"namespaces": args.namespaces, "per_namespace": args.per_namespace,
                          "written": args.written, "starts": rows}, indent=2))
        return 0
    print(f"{args.namespaces} namespaces x {args.per_namespace:,} memories, {args.written} written after the "
          f"snapshot, then kill -9")
    print("| start after kill -9 | first recall answered | load | indexes_from | opened | rebuilt |")
    print("|---|---|---|---|---|---|")
    for label, row in rows.items():
        print(f"| {label} | {row['first_recall_s']:.2f} s | {row['load_s']:.2f} s | {row['indexes_from']} | "
              f"{row['opened']} | {row['rebuilt']} |")
    print(f"ratio: {with_snapshot['first_recall_s'] / rebuild['first_recall_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
