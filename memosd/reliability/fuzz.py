"""fuzz: hostile requests for every operation, and mutated frames, over the real sockets.

Cases come from :mod:`.fuzz_cases` (Hypothesis). Each is sent to a daemon with
small limits and must be answered within a timeout by a valid reply: a success
whose result decodes as the operation's result type, or a typed error whose
code is one the daemon may send. INTERNAL counts as a failure too: it means a
handler raised something it did not expect. After the run the daemon must still
answer, a namespace written before the run (which no case names) must have the
same checksum, and the store must stop cleanly and reopen.

Two operations are sent to the admin socket only when harmless: ``shutdown``
never (it would end the run; on the agent socket it must be refused), and
``backup`` only with a destination inside a sandbox directory.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.configuration import set_hypothesis_home_dir

from memosd_client import MemoryIn
from memosd_client.protocol import OPERATIONS, PROTOCOL_VERSION, codec
from memosd_client.protocol.errors import ErrorCode, MemosdError

from ..testing import DaemonProcess
from .common import export_digest, log_tail, new_daemon, sentence, temp_dir
from .fuzz_cases import NAMESPACES, Builder, Case, mutate
from .result import Say, Stopwatch, SuiteResult

BAR = ("0 crashes, 0 hangs, every reply a valid result or a typed non-INTERNAL error, "
       "untouched data unchanged, clean stop and reopen afterwards")
GUARD = "reliability-guard"
"""Written before the run; no case names it, so its checksum must not change."""
LIMITS = {"MEMOSD_LIMITS_MAX_MESSAGE_BYTES": "65536", "MEMOSD_LIMITS_MAX_BATCH": "50",
          "MEMOSD_LIMITS_MAX_K": "100", "MEMOSD_LIMITS_MAX_TEXT_BYTES": "4096"}
"""Small limits, so over-limit cases stay cheap to build."""
CLIENT_SIDE = (ErrorCode.TIMEOUT, ErrorCode.CONNECTION)


@dataclass
class FuzzOptions:
    cases: int = 20_000
    timeout_s: float = 10.0
    """How long one case may wait for its reply before it counts as a hang."""
    store_dir: str | None = None
    seed: int | None = None
    tidy_every: int = 20_000
    """Purge what the cases wrote every this many cases, so a long run meets a store of the same size
    throughout (left to grow, a million cases fill gigabytes and every backup case copies them all)."""


class _Stop(Exception):
    """The daemon died: no point sending more cases."""


class Target:
    """The daemon under fuzz, with one bare DEALER socket per endpoint."""

    def __init__(self, daemon: DaemonProcess):
        self.daemon = daemon
        self.ctx = zmq.Context.instance()
        self.socks: dict[bool, zmq.Socket] = {}

    def sock(self, admin: bool) -> zmq.Socket:
        if admin not in self.socks:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.daemon.admin_endpoint if admin else self.daemon.endpoint)
            self.socks[admin] = sock
        return self.socks[admin]

    def exchange(self, frames: tuple[bytes, ...], admin: bool, timeout: float) -> list[bytes] | None:
        """Send the frames as one message; the reply's frames, or None after ``timeout``."""
        sock = self.sock(admin)
        sock.send_multipart(list(frames))
        if not sock.poll(timeout * 1000):
            self.reset(admin)  # a late reply must not be taken for the next case's
            return None
        return sock.recv_multipart()

    def reset(self, admin: bool) -> None:
        sock = self.socks.pop(admin, None)
        if sock is not None:
            sock.close(0)

    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def close(self) -> None:
        for admin in list(self.socks):
            self.reset(admin)


def _request(frame: bytes):
    """The frame as the daemon will read it, or None when it will not get past the envelope."""
    try:
        return codec.decode_envelope(frame)
    except MemosdError:
        return None


def _admin_safe(frame: bytes, sandbox: str) -> bool:
    """False for frames that would stop the daemon or back it up outside the sandbox."""
    env = _request(frame)
    if env is None:
        return True
    if env.op == "shutdown":
        return False
    if env.op == "backup":
        try:
            dest = codec.decode_args("backup", env.args).dest
        except MemosdError:
            return True
        return not os.path.isabs(dest) or os.path.normpath(dest).startswith(sandbox + "/")
    return True


def check_reply(case: Case, sent_admin: bool, reply_frames: list[bytes]) -> tuple[str, str | None]:
    """(outcome, problem): outcome is ``ok`` or an error code name; problem is None when the reply is valid."""
    if len(reply_frames) != 1:
        return "invalid", f"reply has {len(reply_frames)} frames"
    try:
        reply = codec.decode_reply(reply_frames[0])
    except MemosdError as exc:
        return "invalid", f"reply is not a memosd reply: {exc}"
    if reply.v != PROTOCOL_VERSION:
        return "invalid", f"reply has protocol version {reply.v}"
    if not reply.ok and reply.error is not None and reply.error.code == ErrorCode.INTERNAL:
        return "INTERNAL", f"INTERNAL: {reply.error.message[:200]}"
    env = _request(case.frames[0]) if len(case.frames) == 1 else None
    if env is not None and reply.id != env.id:
        return "invalid", f"reply id {reply.id} for request id {env.id}"
    if reply.ok:
        if env is None:
            return "ok", "success reply to a frame that is not a valid request"
        if OPERATIONS[env.op].admin and not sent_admin:
            return "ok", f"admin operation {env.op!r} served on the agent socket"
        try:
            codec.reply_result(env.op, reply)
        except RecursionError:
            pass  # nested deeper than this process can decode; the daemon produced it, so it is valid msgpack
        except MemosdError as exc:
            return "invalid", f"result of {env.op!r} does not decode: {exc}"
        return "ok", None
    body = reply.error
    if body is None:
        return "invalid", "error reply without an error body"
    try:
        code = ErrorCode(body.code)
    except ValueError:
        return "invalid", f"unknown error code {body.code}"
    if body.name != code.name:
        return code.name, f"error code {body.code} named {body.name!r}"
    if code in CLIENT_SIDE:
        return code.name, f"daemon sent the client-side code {code.name}"
    return code.name, None


def _seed_data(daemon: DaemonProcess, rng: random.Random) -> str:
    """Write the guard namespace and some data in the fuzzed ones; returns the guard's checksum."""
    with daemon.client(GUARD, timeout=30.0) as client:
        ids = client.remember_many([
            MemoryIn(text=f"guarded memory {i}: {sentence(rng)}", tags=["guard", f"g{i % 3}"],
                     meta={"n": i, "nested": {"list": [1, 2.5, "x"]}}, session=f"s{i % 4}",
                     event_time=1_700_000_000.0 + i, idempotency_key=f"guard-{i}")
            for i in range(40)]).ids
        client.update(ids[0], "guarded memory 0, revised", reason="seeded")
        client.forget([ids[1], ids[2]])
        for name in NAMESPACES:
            client.remember_many([f"fuzz seed {i}: {sentence(rng)}" for i in range(50)], namespace=name)
        return export_digest(client)[0]


def _tidy(daemon: DaemonProcess, sandbox: Path, rng: random.Random) -> int:
    """Purge every namespace but the guard, reseed the fuzzed ones, and empty the backup sandbox.

    Returns how many versions were purged. Goes through the daemon's own purge, so this is
    also a recurring check that hard deletes of odd, fuzz-written data work.
    """
    _clear_backups(sandbox)
    purged = 0
    with daemon.client(GUARD, timeout=60.0) as client:
        for stats in client.stats(all_namespaces=True).namespaces:
            if stats.name != GUARD:
                purged += client.purge_namespace(namespace=stats.name)
        for name in NAMESPACES:
            client.remember_many([f"fuzz seed {i}: {sentence(rng)}" for i in range(50)], namespace=name)
    return purged


def _clear_backups(sandbox: Path) -> None:
    """Remove what backup cases wrote; ``full`` (the occupied destination) stays."""
    for entry in sandbox.iterdir():
        if entry.name == "full":
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


WRITES_FIRST = sorted(OPERATIONS, key=lambda op: (not OPERATIONS[op].writes, op))
"""Writes first in each round, so the reads after them meet whatever odd data got stored."""
MUTATED_SHARE, GARBAGE_SHARE = 0.2, 0.1


def _given(strategy, examples: int, seed: int, handle) -> None:
    """Feed ``examples`` draws of ``strategy`` to ``handle``: generation only, no shrinking or replay."""

    @hypothesis_seed(seed)
    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False)
    @given(strategy)
    def body(case: Case) -> None:
        handle(case)

    body()


def _fuzz(target: Target, builder: Builder, opts: FuzzOptions, seed: int, sandbox: Path, result: SuiteResult,
          say: Say) -> dict:
    tally = {"tidied": 0, "purged": 0, "sent": 0, "frames": 0, "kinds": collections.Counter(), "outcomes": collections.Counter(),
             "per_op": collections.defaultdict(collections.Counter), "hangs": 0, "invalid": 0, "internal": 0,
             "crashed": False, "redirected": 0, "problems": collections.Counter(),
             "seconds": collections.Counter()}
    rng = random.Random(seed)
    result.tables["failing frames"] = []
    corpus: list[Case] = []
    last_report = time.monotonic()

    def record(problem: str, case: Case, admin: bool) -> None:
        """Count a problem; keep the first frame that caused each distinct one, whole, for replaying."""
        tally["problems"][problem] += 1
        if tally["problems"][problem] > 1:
            result.failure_count += 1
            return
        where = "admin" if admin else "agent"
        result.fail(f"{problem} ({case.kind} {case.op or '-'} on the {where} socket; "
                    f"frame {b''.join(case.frames)[:96].hex()}...)")
        result.tables["failing frames"].append({"problem": problem, "socket": where,
                                                "frames_hex": [frame.hex() for frame in case.frames]})

    def send(case: Case) -> None:
        nonlocal last_report
        if tally["crashed"]:
            raise _Stop
        admin = case.admin and _admin_safe(case.frames[0], str(sandbox))
        tally["redirected"] += case.admin and not admin
        op = case.op or "-"
        timeout = 60.0 if op == "backup" else opts.timeout_s
        started = time.perf_counter()
        reply = target.exchange(case.frames, admin, timeout)
        tally["seconds"][op] += time.perf_counter() - started
        tally["sent"] += 1
        # A case is one message; garbage cases may be 2-4 frames (the bar counts frames).
        tally["frames"] += len(case.frames)
        tally["kinds"][case.kind] += 1
        if reply is None:
            if not target.alive():
                tally["crashed"] = True
                record(f"CRASH after a {case.kind} {op} frame:\n{log_tail(target.daemon)}", case, admin)
                raise _Stop
            tally["hangs"] += 1
            tally["per_op"][op]["hang"] += 1
            record(f"HANG: no reply in {timeout:g} s to a {case.kind} {op} frame", case, admin)
            return
        outcome, problem = check_reply(case, admin, reply)
        tally["outcomes"][outcome] += 1
        tally["per_op"][op][outcome] += 1
        if problem is not None:
            tally["internal" if outcome == "INTERNAL" else "invalid"] += 1
            record(problem, case, admin)
        if not target.alive():
            tally["crashed"] = True
            record(f"CRASH after a {case.kind} {op} frame:\n{log_tail(target.daemon)}", case, admin)
            raise _Stop
        if op == "backup" and admin:
            _clear_backups(sandbox)
        if opts.tidy_every and tally["sent"] % opts.tidy_every == 0:
            tally["purged"] += _tidy(target.daemon, sandbox, rng)
            tally["tidied"] += 1
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            say(f"fuzz: {tally['sent']}/{opts.cases} cases ({tally['frames']} frames), "
                f"{result.failure_count} failures")

    def structured(case: Case) -> None:
        send(case)
        if len(corpus) < 2000:
            corpus.append(case)
        else:
            corpus[rng.randrange(len(corpus))] = case
        # Mutations of earlier frames ride along, at the rate that makes them their share of all cases.
        if rng.random() < MUTATED_SHARE / (1 - MUTATED_SHARE - GARBAGE_SHARE):
            send(mutate(rng.choice(corpus), rng))

    per_op = max(2, round(opts.cases * (1 - MUTATED_SHARE - GARBAGE_SHARE) / len(OPERATIONS)))
    try:
        for half in (per_op // 2, per_op - per_op // 2):
            for op in WRITES_FIRST:
                _given(builder.structured(op), half, rng.randrange(1 << 30), structured)
        _given(builder.garbage(), max(1, round(opts.cases * GARBAGE_SHARE)), rng.randrange(1 << 30), send)
    except Exception:  # _Stop (the daemon died), possibly wrapped by Hypothesis; anything else is ours
        if not tally["crashed"]:
            raise
    return tally


def _after(daemon: DaemonProcess, digest: str, result: SuiteResult) -> dict:
    """Checks once the cases are done: still serving, guard unchanged, clean stop, clean reopen."""
    checks = {}
    with daemon.client(GUARD, timeout=10.0, retries=0) as client:
        checks["answers hello"] = client.hello().protocol == PROTOCOL_VERSION
        checks["guard checksum unchanged"] = export_digest(client)[0] == digest
        checks["guard recallable"] = any(h.memory.text.startswith("guarded") for h in client.recall("guarded", k=5))
    with daemon.admin(timeout=10.0) as admin:
        checks["writer alive"] = admin.status().writer_alive
    checks["stops cleanly (exit 0)"] = daemon.stop() == 0
    try:
        daemon.start()
    except RuntimeError as exc:
        checks["reopens"] = False
        result.fail(f"the store did not reopen after the fuzz run: {exc}")
    else:
        checks["reopens"] = True
        with daemon.client(GUARD, timeout=10.0) as client:
            checks["guard unchanged after reopen"] = export_digest(client)[0] == digest
    for name, ok in checks.items():
        if not ok:
            result.fail(f"after the run: {name} failed")
    return checks


def run_fuzz(opts: FuzzOptions, say: Say) -> SuiteResult:
    """Run the fuzz suite; see the module docstring."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    result = SuiteResult("fuzz", BAR, settings={"cases": opts.cases, "timeout_s": opts.timeout_s, "seed": seed,
                                                 "tidy_every": opts.tidy_every,
                                                 "operations": sorted(OPERATIONS),
                                                 "limits": {k.removeprefix("MEMOSD_LIMITS_").lower(): int(v)
                                                            for k, v in LIMITS.items()}})
    clock = Stopwatch()
    # Deep cases are encoded here before the daemon refuses them; the default limit stops short of that.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 6000))
    root = temp_dir(opts.store_dir, "memosd-fuzz-")
    sandbox = root / "backups"
    (sandbox / "full").mkdir(parents=True)
    (sandbox / "full" / "occupied").write_text("a backup destination that is not empty\n")
    daemon = new_daemon(root / "store", env=LIMITS)
    target = Target(daemon)
    # Hypothesis keeps caches in ./.hypothesis by default: not in whatever directory this runs from.
    set_hypothesis_home_dir(root / "hypothesis")
    tally: dict = {}
    checks: dict = {}
    try:
        daemon.start()
        digest = _seed_data(daemon, random.Random(seed))
        with daemon.client(timeout=10.0) as client:
            dim = client.hello().encoder.dim
        say(f"fuzz: {opts.cases} cases over {len(OPERATIONS)} operations (seed {seed})")
        started = time.perf_counter()
        tally = _fuzz(target, Builder(dim, str(sandbox)), opts, seed, sandbox, result, say)
        fuzz_seconds = time.perf_counter() - started
        target.close()
        if not tally["crashed"]:
            checks = _after(daemon, digest, result)
    except MemosdError as exc:
        result.fail(f"fuzz run failed: {exc}\n{log_tail(daemon)}")
        fuzz_seconds = 0.0
    finally:
        target.close()
        daemon.cleanup()
        set_hypothesis_home_dir(None)
        shutil.rmtree(root, ignore_errors=True)
    outcomes = tally.get("outcomes", collections.Counter())
    result.figures = {
        "cases": tally.get("sent", 0),
        "frames": tally.get("frames", 0),
        "cases/s": round(tally.get("sent", 0) / fuzz_seconds, 1) if fuzz_seconds else None,
        "by kind": dict(tally.get("kinds", {})),
        "success replies": outcomes.get("ok", 0),
        "typed error replies": sum(n for k, n in outcomes.items() if k not in ("ok", "invalid")),
        "crashes": int(bool(tally.get("crashed"))),
        "hangs": tally.get("hangs", 0),
        "invalid replies": tally.get("invalid", 0),
        "INTERNAL errors": tally.get("internal", 0),
        "admin cases kept off the admin socket": tally.get("redirected", 0),
        "store tidied (every namespace but the guard purged)": {"times": tally.get("tidied", 0),
                                                                 "versions purged": tally.get("purged", 0)},
        "error codes": {k: n for k, n in sorted(outcomes.items()) if k != "ok"},
        "distinct problems": {k: n for k, n in tally.get("problems", collections.Counter()).most_common(10)},
        "checks after the run": checks,
    }
    result.tables["cases per operation"] = [
        {"op": op, "cases": sum(c.values()), "ok": c.get("ok", 0),
         "daemon s": round(tally["seconds"][op], 2),
         "errors": ", ".join(f"{k} {n}" for k, n in c.most_common() if k != "ok")}
        for op, c in sorted(tally.get("per_op", {}).items())
    ]
    if tally and tally.get("sent", 0) < opts.cases * 0.9 and not tally.get("crashed"):
        result.fail(f"only {tally['sent']} of {opts.cases} cases were generated")
    result.seconds = clock.elapsed()
    return result

