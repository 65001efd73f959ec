"""``memosd top``: a live terminal view of a running daemon (rich), fed by the admin endpoint."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from memosd_client import AdminClient
from memosd_client.protocol import messages as m


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render(status: m.StatusResult, stats: m.StatsResult, previous: m.StatusResult | None, elapsed: float) -> Group:
    """One frame: the daemon line, per-operation rates and latencies, namespaces."""
    parts = [
        f"[b]memosd {status.version}[/b] pid {status.pid}",
        f"up {status.uptime_s:,.0f}s",
        f"{status.memories:,} memories / {status.namespaces} namespaces",
        f"rss {_bytes(status.rss_bytes)}",
        f"loop lag {status.loop_lag_ms:.1f} ms",
        f"writer queue {status.writer_queue}",
        f"lmdb {_bytes(status.map_used_bytes)} / {_bytes(status.map_size_bytes)}",
    ]
    if status.mqtt:
        parts += [f"mqtt {'connected' if status.mqtt.get('connected') else '[red]disconnected[/red]'}",
                  f"queued {status.mqtt.get('queued', 0)}", f"dropped {status.mqtt.get('dropped', 0)}"]
    head = Text.from_markup("  ·  ".join(parts))
    ops = Table("operation", "requests", "req/s", "errors", "p50 ms", "p99 ms", title="requests")
    for name, op in sorted(status.ops.items()):
        before = previous.ops.get(name) if previous else None
        rate = (op.count - before.count) / elapsed if before and elapsed > 0 else 0.0
        ops.add_row(name, f"{op.count:,}", f"{rate:,.1f}", str(op.errors), f"{op.p50_ms:.3f}", f"{op.p99_ms:.3f}")
    spaces = Table("namespace", "current", "superseded", "forgotten", "index", title="namespaces")
    for ns in sorted(stats.namespaces, key=lambda s: -s.memories)[:20]:
        spaces.add_row(ns.name, f"{ns.current:,}", f"{ns.superseded:,}", f"{ns.forgotten:,}", _bytes(ns.index_bytes))
    return Group(head, ops, spaces)


def run_top(endpoint: str | None, interval: float, once: bool, timeout: float) -> None:
    console = Console()
    with AdminClient(endpoint, timeout=timeout) as admin:
        def frame(previous, elapsed):
            status = admin.status()
            stats = admin.request("stats", m.StatsArgs())
            return status, render(status, stats, previous, elapsed)

        status, view = frame(None, 0.0)
        if once:
            console.print(view)
            return
        with Live(view, console=console, refresh_per_second=4, screen=False) as live:
            while True:
                started = time.monotonic()
                time.sleep(interval)
                status, view = frame(status, time.monotonic() - started)
                live.update(view)
