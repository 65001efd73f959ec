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

    def __init__(self, off, on, k: int):
        self.off, self.on, self.k = off, on, k
        self.lat = {"off": [], "on": []}
        self.agreement: list[float] = []
        self._flip = False

    def ask(self, namespace: str, query: str) -> None:
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
        for client in (self.off, self.on):
            client.remember_many(items, namespace=namespace)


def _settle(admin) -> None:
    while admin.tiers().backlog:
        time.sleep(0.1)


def _slb(admin) -> m.SlbInfo:
    return admin.tiers().slb


def run_slb_bench(conversations: list[Conversation], *, k: int = 10, threshold: float | None = None,
                  say: Say = print) -> dict:
    env_on = {"MEMOSD_SLB_ENABLED": "1"}
    if threshold is not None:
        env_on["MEMOSD_SLB_THRESHOLD"] = str(threshold)
    out: dict = {"k": k, "conversations": len(conversations), "workloads": {}}
    with DaemonProcess(extra_args=["--no-fsync"]) as off_daemon, \
            DaemonProcess(extra_args=["--no-fsync"], env=env_on) as on_daemon, \
            off_daemon.client(timeout=60) as off, on_daemon.client(timeout=60) as on, \
            on_daemon.admin() as on_admin, off_daemon.admin() as off_admin:
        pair = _Pair(off, on, k)
        say("workload 1: store each conversation, then ask its questions in order")
        for conv in conversations:
            pair.remember(namespace_for(conv, "q-"), turn_items(conv))
        _settle(on_admin)
        _settle(off_admin)
        before = _slb(on_admin)
        for conv in conversations:
            for q in conv.questions:
                pair.ask(namespace_for(conv, "q-"), q.question)
        out["workloads"]["questions"] = _row(pair, before, _slb(on_admin))

        say("workload 2: replay each conversation, recalling with each turn before remembering it")
        pair = _Pair(off, on, k)
        before = _slb(on_admin)
        for conv in conversations:
            namespace = namespace_for(conv, "r-")
            for item in turn_items(conv):
                pair.ask(namespace, item.text)
                pair.remember(namespace, [item])
        out["workloads"]["replay"] = _row(pair, before, _slb(on_admin))
    out["settings"] = {"threshold": threshold if threshold is not None else "default"}
    return out


def _row(pair: _Pair, before: m.SlbInfo, after: m.SlbInfo) -> dict:
    lookups = after.lookups - before.lookups
    hits = after.hits - before.hits
    off, on = summarize_ns(pair.lat["off"]), summarize_ns(pair.lat["on"])
    return {
        "queries": len(pair.agreement), "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
        "off_p50_us": off["p50_us"], "off_p99_us": off["p99_us"], "on_p50_us": on["p50_us"], "on_p99_us": on["p99_us"],
        "p50_ratio": ratio(on["p50_us"], off["p50_us"]), "p99_ratio": ratio(on["p99_us"], off["p99_us"]),
        "agreement": round(sum(pair.agreement) / len(pair.agreement), 4) if pair.agreement else None,
        "verified_agreement": after.agreement,
    }
