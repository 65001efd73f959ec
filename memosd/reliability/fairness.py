"""fairness: one client that floods and never reads must not slow the polite ones.

32 polite raw DEALER clients (:mod:`.polite`, one request in flight each, mixed
remember/recall/update/forget) run against one daemon on its default limits, in
four phases on the same daemon and the same store:

1. warm-up (not counted),
2. baseline, first half: polite clients only,
3. flood: the same, plus one flooding process (:mod:`.flooder`) that sends
   100,000 recalls (k=100) and never reads a reply,
4. baseline, second half: polite clients only again.

The two baseline halves bracket the flood phase, so a drift over the run (the
store changing, a neighbour's load) weighs on both sides of the comparison
instead of on one. The bar: the polite clients' p50 and p99 in the flood phase
are within 1.5x of the baseline's, no polite request fails, and the daemon's own
counters show that the flooder was answered BUSY or cut off.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from memosd_client import MemoryIn
from memosd_client.protocol.errors import MemosdError

from .common import log_tail, new_daemon, sentence, temp_dir
from .polite import MIX, PhaseTally, PoliteClients
from .result import Say, Stopwatch, SuiteResult, latency_ms

MAX_RATIO = 1.5
BAR = (f"polite clients' p50 and p99 with the flooder within {MAX_RATIO}x of without it, 0 polite errors, "
       "and the flooder answered BUSY or cut off (daemon counters)")
EVENTS = ("busy", "peers_cut_off", "cut_off_dropped", "deadline_dropped")
"""Requests the daemon counts but does not serve (status ``ops``)."""


@dataclass
class FairnessOptions:
    clients: int = 32
    duration_s: float = 30.0
    """Length of the flood phase; the two baseline halves add up to the same."""
    flood_requests: int = 100_000
    flood_k: int = 100
    namespaces: int = 4
    seed_memories: int = 2_000
    """Memories per namespace written before the run."""
    store_dir: str | None = None
    seed: int | None = None


def _counters(daemon) -> dict[str, int]:
    """The daemon's request counters (served operations and unserved events) from status."""
    with daemon.admin(timeout=10.0) as admin:
        return {op: stats.count for op, stats in admin.status().ops.items()}


def _delta(after: dict[str, int], before: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


class Flooder:
    """The flooding process: started (connected, idle) ahead of time, released at the flood phase."""

    def __init__(self, endpoint: str, namespace: str, count: int, k: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "memosd.reliability.flooder", endpoint, namespace,
                                      str(count), str(k)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the flooding client did not start")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> dict:
        """Disconnect it; what it reported sending (empty when it never finished sending)."""
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=120)
        return json.loads(out) if out.strip() else {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _row(phase: str, tally: PhaseTally) -> dict:
    samples = tally.all_latencies()
    lat = latency_ms(samples)
    return {"phase": phase, "seconds": round(tally.seconds, 1), "polite ops": len(samples),
            "ops/s": round(len(samples) / tally.seconds, 1) if tally.seconds else 0.0,
            "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "max_ms": lat["max_ms"],
            "errors": sum(tally.errors.values())}


def judge(result: SuiteResult, base: dict, flood: dict, flooder: dict) -> None:
    """Fail ``result`` where the flood phase's p50 or p99 is over :data:`MAX_RATIO` times the
    baseline's, or where the daemon neither answered the flooder BUSY nor cut it off."""
    for key in ("p50_ms", "p99_ms"):
        if base[key] is None or flood[key] is None:
            result.fail(f"no polite requests were served in a phase ({key} missing)")
        elif flood[key] > MAX_RATIO * base[key]:
            result.fail(f"polite {key[:3]} with the flooder {flood[key]:.1f} ms is over {MAX_RATIO}x the "
                        f"{base[key]:.1f} ms without it")
    if flooder["busy replies"] + flooder["times cut off"] == 0:
        result.fail("the flooder was neither answered BUSY nor cut off")


def _seed(daemon, names: list[str], count: int, rng: random.Random) -> None:
    with daemon.client(timeout=60.0) as seeder:
        for name in names:
            for start in range(0, count, 500):
                seeder.remember_many([MemoryIn(text=sentence(rng, rng.randint(4, 40)), tags=["seed"])
                                      for _ in range(min(500, count - start))], namespace=name)


def _run(daemon, opts: FairnessOptions, rng: random.Random, say: Say, result: SuiteResult) -> None:
    names = [f"fair-{n}" for n in range(opts.namespaces)]
    _seed(daemon, names, opts.seed_memories, rng)
    polite = PoliteClients(daemon.endpoint, names, opts.clients, rng)
    flooder = Flooder(daemon.endpoint, names[0], opts.flood_requests, opts.flood_k)
    try:
        half = opts.duration_s / 2
        say(f"fairness: {opts.clients} polite clients, warm-up {min(5.0, half):g} s")
        polite.run(min(5.0, half))
        say(f"fairness: baseline {half:g} s")
        first = polite.run(half)
        before = _counters(daemon)
        say(f"fairness: flood phase {opts.duration_s:g} s, {opts.flood_requests:,} recalls (k={opts.flood_k}) "
            "never read")
        flooder.go()
        flood_started = time.perf_counter()
        flood = polite.run(opts.duration_s)
        sent = flooder.finish()
        say(f"fairness: baseline again {half:g} s")
        second = polite.run(half)
        # Read at the end: the daemon may still be taking the flooder's last frames off the socket
        # after the flood phase, and those count for the flooder too.
        after = _counters(daemon)
    finally:
        flooder.kill()
        polite.close()
    baseline = PhaseTally(seconds=first.seconds + second.seconds)
    for part in (first, second):
        for op, samples in part.latency.items():
            baseline.latency[op] += samples
        baseline.errors.update(part.errors)
        baseline.messages += part.messages
    rows = [_row("baseline, first half", first), _row("flood", flood), _row("baseline, second half", second)]
    base, hit = _row("baseline", baseline), rows[1]
    for message in (baseline.messages + flood.messages)[:10]:
        result.fail(f"polite request failed: {message}")
    errors = base["errors"] + hit["errors"]
    result.failure_count += max(0, errors - min(10, len(baseline.messages + flood.messages)))
    polite_recalls = len(flood.latency.get("recall", [])) + len(second.latency.get("recall", []))
    flooder_got = {
        "sent": sent.get("sent", 0), "send seconds": sent.get("send_s"),
        "busy replies": _delta(after, before, "busy"), "times cut off": _delta(after, before, "peers_cut_off"),
        "dropped while cut off": _delta(after, before, "cut_off_dropped"),
        "deadline dropped": _delta(after, before, "deadline_dropped"),
        # Recalls the daemon served from the flood phase on, beyond the polite clients' own.
        "recalls computed": max(0, _delta(after, before, "recall") - polite_recalls),
    }
    judge(result, base, hit, flooder_got)
    # Not part of the bar: the polite requests sent while the flooder was still sending (the
    # daemon reads and drops its frames then), to see where in the phase any slowdown sits.
    sending_until = flood_started + (sent.get("send_s") or 0.0)
    during = latency_ms([lat for at, lat in flood.timeline if at < sending_until])
    result.figures = {
        "polite clients": opts.clients,
        "polite ops, baseline": base["polite ops"],
        "polite ops, flood": hit["polite ops"],
        "polite ops/s, baseline / flood": [base["ops/s"], hit["ops/s"]],
        "polite p50 ms, baseline / flood": [base["p50_ms"], hit["p50_ms"]],
        "polite p99 ms, baseline / flood": [base["p99_ms"], hit["p99_ms"]],
        "p50 ratio": round(hit["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] and hit["p50_ms"] else None,
        "p99 ratio": round(hit["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] and hit["p99_ms"] else None,
        "polite errors": errors,
        "polite p50 / p99 ms while the flooder was sending": [during["p50_ms"], during["p99_ms"]],
        "polite requests sent while the flooder was sending": during["count"],
        "flooder": flooder_got,
    }
    result.tables["polite clients per phase"] = [*rows, base]


def run_fairness(opts: FairnessOptions, say: Say) -> SuiteResult:
    """Run the fairness suite; see the module docstring."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    result = SuiteResult("fairness", BAR, settings={
        "clients": opts.clients, "flood_phase_s": opts.duration_s, "baseline_s": opts.duration_s,
        "flood_requests": opts.flood_requests, "flood_k": opts.flood_k, "namespaces": opts.namespaces,
        "seed_memories_per_namespace": opts.seed_memories, "mix": MIX, "max_ratio": MAX_RATIO, "seed": seed})
    clock = Stopwatch()
    root = temp_dir(opts.store_dir, "memosd-fairness-")
    daemon = new_daemon(root / "store")  # the default limits: what an agent host runs
    try:
        daemon.start()
        _run(daemon, opts, random.Random(seed), say, result)
        if daemon.proc is None or daemon.proc.poll() is not None:
            result.fail(f"the daemon died under the flood:\n{log_tail(daemon)}")
    except (MemosdError, RuntimeError, subprocess.TimeoutExpired) as exc:
        result.fail(f"fairness run failed: {exc}\n{log_tail(daemon)}")
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    result.seconds = clock.elapsed()
    return result
