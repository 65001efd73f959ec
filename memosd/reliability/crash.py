"""crash: kill -9 the daemon under concurrent writers, restart it, check every acknowledged write.

Writer threads (single and batched remembers, updates, forgets; one client each)
record every operation the daemon acknowledged in a :class:`Ledger`. The daemon
is killed with SIGKILL mid-stream, restarted on the same store, and then:

- every acknowledged version is present with the text it was written with;
- acknowledged updates (old version superseded by the acknowledged new one) and
  forgets are reflected, and nothing else was changed;
- a sample of this cycle's memories is recallable (the index is rebuilt), and
  forgotten ones are not;
- writes that were in flight at the kill (no reply) are resent with their
  idempotency keys; afterwards the store holds exactly the acknowledged
  versions: none missing, none extra, no idempotency key stored twice.
"""

from __future__ import annotations

import collections
import random
import shutil
import signal
import statistics
import threading
import time
from dataclasses import dataclass

from memosd_client import MemoryIn
from memosd_client.protocol.errors import MemosdError

from ..testing import DaemonProcess
from .common import log_tail, new_daemon, sentence, temp_dir, unique_token
from .result import Say, Stopwatch, SuiteResult

NAMESPACE = "crash"
BAR = ("0 acknowledged writes lost or altered across every kill -9; the store reopens each time; "
       "writes in flight at a kill, resent with their keys, are stored exactly once")


@dataclass
class CrashOptions:
    cycles: int = 20
    writers: int = 2
    """Threads per remember kind (single, batched); plus one updater and one forgetter."""
    min_acks: int = 80
    """Acknowledged remembers per cycle before the kill is armed."""
    max_delay_s: float = 0.4
    """The kill comes a random 0..max_delay_s after min_acks, so it lands anywhere in a commit."""
    store_dir: str | None = None
    seed: int | None = None


class Ledger:
    """Everything the daemon acknowledged, across all cycles, and what is in limbo in this one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: dict[int, str] = {}
        """Every acknowledged version id and its text."""
        self.superseded: dict[int, int] = {}
        """old id -> new id, for acknowledged updates."""
        self.forgotten: set[int] = set()
        self.targets: list[int] = []
        """Acknowledged versions never yet chosen for an update or forget."""
        self.counts: collections.Counter = collections.Counter()
        self.cycle_new: list[int] = []
        self.limbo_remembers: list[MemoryIn] = []
        self.limbo_updates: list[tuple[int, str, str]] = []
        self.limbo_forgets: list[int] = []
        self.anomalies: list[str] = []

    def limbo_targets(self) -> set[int]:
        return {t for t, _, _ in self.limbo_updates} | set(self.limbo_forgets)

    def ack_remember(self, items: list[MemoryIn], ids: list[int], *, retried: bool = False) -> None:
        with self.lock:
            for item, memory_id in zip(items, ids):
                if memory_id in self.texts:
                    self.anomalies.append(f"id {memory_id} acknowledged for two different writes")
                    continue
                self.texts[memory_id] = item.text
                self.targets.append(memory_id)
                self.cycle_new.append(memory_id)
            self.counts["remembered" if not retried else "resent"] += len(ids)

    def ack_update(self, old: int, new: int, text: str, *, retried: bool = False) -> None:
        with self.lock:
            if new in self.texts:
                self.anomalies.append(f"update of {old} acknowledged with the existing id {new}")
                return
            self.texts[new] = text
            self.superseded[old] = new
            self.cycle_new.append(new)
            self.counts["updated" if not retried else "resent"] += 1

    def ack_forget(self, memory_id: int, *, retried: bool = False) -> None:
        with self.lock:
            self.forgotten.add(memory_id)
            self.counts["forgotten" if not retried else "resent"] += 1

    def take_target(self, rng: random.Random) -> int | None:
        with self.lock:
            if not self.targets:
                return None
            i = rng.randrange(len(self.targets))
            self.targets[i], self.targets[-1] = self.targets[-1], self.targets[i]
            return self.targets.pop()

    def acked_this_cycle(self) -> int:
        with self.lock:
            return len(self.cycle_new)


class WriteStream:
    """The writer threads of one cycle; they run until :meth:`stop` (after the kill)."""

    def __init__(self, daemon: DaemonProcess, ledger: Ledger, opts: CrashOptions, cycle: int, seed: int):
        self.daemon = daemon
        self.ledger = ledger
        self.cycle = cycle
        self.halt = threading.Event()
        self._serial = 0
        self._serial_lock = threading.Lock()
        kinds = [("single", False)] * opts.writers + [("batch", True)] * opts.writers
        self.threads = [threading.Thread(target=self._remember_loop, args=(batched, random.Random(seed + n)),
                                         name=f"crash-{kind}-{n}", daemon=True)
                        for n, (kind, batched) in enumerate(kinds)]
        self.threads += [threading.Thread(target=self._mutate_loop, args=(kind, random.Random(seed + 100 + n)),
                                          name=f"crash-{kind}", daemon=True)
                         for n, kind in enumerate(("update", "forget"))]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _client(self):
        # One attempt with a short timeout: a write is either acknowledged once or left in limbo.
        return self.daemon.client(NAMESPACE, timeout=1.0, retries=0)

    def _key(self) -> str:
        with self._serial_lock:
            self._serial += 1
            return f"c{self.cycle}-{self._serial}"

    def _text(self, rng: random.Random, what: str) -> str:
        return f"{what} in cycle {self.cycle}: {sentence(rng, rng.randint(3, 30))} {unique_token()}"

    def _remember_loop(self, batched: bool, rng: random.Random) -> None:
        with self._client() as client:
            while not self.halt.is_set():
                items = [MemoryIn(text=self._text(rng, "memory"), tags=[f"cycle-{self.cycle}"],
                                  meta={"writer": "batch" if batched else "single"}, idempotency_key=self._key())
                         for _ in range(rng.randint(2, 16) if batched else 1)]
                try:
                    if batched:
                        ids = client.remember_many(items).ids
                    else:
                        item = items[0]
                        ids = [client.remember(item.text, tags=item.tags, meta=item.meta,
                                               idempotency_key=item.idempotency_key)]
                except MemosdError:
                    with self.ledger.lock:
                        self.ledger.limbo_remembers.extend(items)
                    continue
                self.ledger.ack_remember(items, ids)

    def _mutate_loop(self, kind: str, rng: random.Random) -> None:
        with self._client() as client:
            while not self.halt.is_set():
                target = self.ledger.take_target(rng)
                if target is None:
                    self.halt.wait(0.01)
                    continue
                if kind == "update":
                    text, key = self._text(rng, "revision"), self._key()
                    try:
                        new_id = client.update(target, text, idempotency_key=key)
                    except MemosdError:
                        with self.ledger.lock:
                            self.ledger.limbo_updates.append((target, text, key))
                        continue
                    self.ledger.ack_update(target, new_id, text)
                else:
                    try:
                        result = client.forget(target)
                    except MemosdError:
                        with self.ledger.lock:
                            self.ledger.limbo_forgets.append(target)
                        continue
                    if target in result.changed:
                        self.ledger.ack_forget(target)
                    else:
                        with self.ledger.lock:
                            self.ledger.anomalies.append(f"forget of acknowledged memory {target} said missing")
                self.halt.wait(rng.uniform(0, 0.004))  # leave most new memories untouched


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def verify(client, ledger: Ledger, result: SuiteResult, rng: random.Random, tally: collections.Counter) -> None:
    """Check every acknowledged operation against the restarted daemon."""
    stored = {}
    for chunk in _chunks(sorted(ledger.texts), 1000):
        got = client.get_many(chunk)
        for memory_id in got.missing:
            tally["lost"] += 1
            result.fail(f"lost: acknowledged memory {memory_id} ({ledger.texts[memory_id][:60]!r}) is missing")
        stored.update({mem.id: mem for mem in got.memories})
    in_limbo = ledger.limbo_targets()
    for memory_id, text in ledger.texts.items():
        mem = stored.get(memory_id)
        if mem is None:
            continue
        if mem.text != text:
            tally["altered"] += 1
            result.fail(f"altered: memory {memory_id} reads {mem.text[:60]!r}, acknowledged {text[:60]!r}")
        if memory_id in ledger.superseded:
            if mem.superseded_by != ledger.superseded[memory_id]:
                tally["wrong_state"] += 1
                result.fail(f"update lost: {memory_id} superseded_by={mem.superseded_by}, "
                            f"acknowledged {ledger.superseded[memory_id]}")
        elif memory_id not in in_limbo and mem.superseded_by is not None:
            tally["wrong_state"] += 1
            result.fail(f"memory {memory_id} superseded by {mem.superseded_by} without an acknowledged update")
        if memory_id in ledger.forgotten:
            if mem.forgotten_at is None:
                tally["wrong_state"] += 1
                result.fail(f"forget lost: memory {memory_id} is not forgotten")
        elif memory_id not in in_limbo and mem.forgotten_at is not None:
            tally["wrong_state"] += 1
            result.fail(f"memory {memory_id} forgotten without an acknowledged forget")
    # The RAM index is rebuilt from the store at start: this cycle's memories must be findable.
    current = [i for i in ledger.cycle_new
               if i not in ledger.superseded and i not in ledger.forgotten and i not in in_limbo]
    for memory_id in rng.sample(current, min(25, len(current))):
        token = ledger.texts[memory_id].rsplit(" ", 1)[-1]
        if memory_id not in [hit.memory.id for hit in client.recall(token, k=3)]:
            tally["not_recallable"] += 1
            result.fail(f"memory {memory_id} is stored but not recallable after the restart")
    gone = [i for i in ledger.cycle_new if i in ledger.forgotten]
    for memory_id in rng.sample(gone, min(10, len(gone))):
        token = ledger.texts[memory_id].rsplit(" ", 1)[-1]
        if memory_id in [hit.memory.id for hit in client.recall(token, k=3)]:
            tally["wrong_state"] += 1
            result.fail(f"forgotten memory {memory_id} is recalled after the restart")


def resend_limbo(client, ledger: Ledger) -> int:
    """Resend what got no reply before the kill (keys make it safe); returns how many were resent."""
    resent = 0
    for chunk in _chunks(ledger.limbo_remembers, 500):
        ledger.ack_remember(chunk, client.remember_many(chunk).ids, retried=True)
        resent += len(chunk)
    for target, text, key in ledger.limbo_updates:
        ledger.ack_update(target, client.update(target, text, idempotency_key=key), text, retried=True)
        resent += 1
    if ledger.limbo_forgets:
        for target in client.forget(ledger.limbo_forgets).changed:
            ledger.ack_forget(target, retried=True)
        resent += len(ledger.limbo_forgets)
    ledger.limbo_remembers, ledger.limbo_updates, ledger.limbo_forgets = [], [], []
    return resent


def check_exact(client, ledger: Ledger, result: SuiteResult, tally: collections.Counter) -> int:
    """After resending, the store holds exactly the acknowledged versions, each key once."""
    keys: collections.Counter = collections.Counter()
    ids = set()
    for mem in client.export():
        ids.add(mem.id)
        if mem.idempotency_key is not None:
            keys[mem.idempotency_key] += 1
    for memory_id in sorted(ids - set(ledger.texts))[:5]:
        result.fail(f"memory {memory_id} is stored but was never acknowledged")
    tally["extra"] += len(ids - set(ledger.texts))
    doubled = [key for key, count in keys.items() if count > 1]
    tally["stored_twice"] += len(doubled)
    for key in doubled[:5]:
        result.fail(f"idempotency key {key!r} is stored {keys[key]} times")
    return len(ids)


def run_crash(opts: CrashOptions, say: Say) -> SuiteResult:
    """Run the crash suite; see the module docstring."""
    result = SuiteResult("crash", BAR, settings={"cycles": opts.cycles, "writer_threads": 2 * opts.writers + 2,
                                                  "min_acks_per_cycle": opts.min_acks, "seed": opts.seed})
    clock = Stopwatch()
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    result.settings["seed"] = seed
    rng = random.Random(seed)
    ledger = Ledger()
    tally: collections.Counter = collections.Counter()
    restarts: list[float] = []
    exit_codes: collections.Counter = collections.Counter()
    stored = 0
    root = temp_dir(opts.store_dir, "memosd-crash-")
    daemon = new_daemon(root / "store")
    try:
        daemon.start()
        for cycle in range(opts.cycles):
            ledger.cycle_new = []
            stream = WriteStream(daemon, ledger, opts, cycle, rng.randrange(1 << 30))
            stream.start()
            deadline = time.monotonic() + 60
            while ledger.acked_this_cycle() < opts.min_acks and time.monotonic() < deadline:
                time.sleep(0.01)
            if ledger.acked_this_cycle() < opts.min_acks:
                stream.stop()
                result.fail(f"cycle {cycle}: only {ledger.acked_this_cycle()} writes acknowledged in 60 s:\n"
                            f"{log_tail(daemon)}")
                break
            time.sleep(rng.uniform(0, opts.max_delay_s))
            exit_codes[daemon.kill()] += 1
            stream.stop()
            started = time.perf_counter()
            try:
                daemon.start()
            except RuntimeError as exc:
                result.fail(f"cycle {cycle}: the store did not reopen after kill -9: {exc}")
                break
            restarts.append(time.perf_counter() - started)
            with daemon.client(NAMESPACE, timeout=30.0) as client:
                verify(client, ledger, result, rng, tally)
                tally["resent"] += resend_limbo(client, ledger)
                stored = check_exact(client, ledger, result, tally)
            with daemon.admin(timeout=10.0) as admin:
                if not admin.status().writer_alive:
                    result.fail(f"cycle {cycle}: writer thread not alive after restart")
            say(f"crash: cycle {cycle + 1}/{opts.cycles}: {len(ledger.cycle_new)} acknowledged, "
                f"{tally['lost']} lost so far, {stored} versions stored")
    except MemosdError as exc:
        result.fail(f"checking the store failed: {exc}\n{log_tail(daemon)}")
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    for anomaly in ledger.anomalies:
        tally["anomalies"] += 1
        result.fail(anomaly)
    acked = ledger.counts["remembered"] + ledger.counts["updated"] + ledger.counts["forgotten"]
    result.figures = {
        "cycles": len(restarts),
        "acknowledged ops": acked,
        "acknowledged remembers": ledger.counts["remembered"],
        "acknowledged updates": ledger.counts["updated"],
        "acknowledged forgets": ledger.counts["forgotten"],
        "in flight at a kill, resent": tally["resent"],
        "lost": tally["lost"],
        "altered": tally["altered"],
        "wrong update/forget state": tally["wrong_state"],
        "not recallable": tally["not_recallable"],
        "extra or stored twice": tally["extra"] + tally["stored_twice"],
        "versions stored at the end": stored,
        "kill exit codes": ", ".join(f"{code} x{n}" for code, n in exit_codes.items()),
        "restart s (median / max)": [round(statistics.median(restarts), 2), round(max(restarts), 2)]
        if restarts else None,
    }
    if exit_codes and set(exit_codes) != {-signal.SIGKILL}:
        result.fail(f"the daemon did not die by SIGKILL every time: {dict(exit_codes)}")
    if len(restarts) < opts.cycles and not result.failures:
        result.fail(f"only {len(restarts)} of {opts.cycles} cycles ran")
    result.seconds = clock.elapsed()
    return result
