"""The daemon under test: started on a temporary store, or an existing one (``--endpoint``).

Also reads what the client cannot see through the protocol: the process's RSS
and CPU time (psutil, by the pid the admin endpoint reports) and the store's
size on disk. Those need the daemon on this machine; when it is not (or no
admin endpoint is known) they are reported as missing, not guessed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from memosd_client import AdminClient, Client, CurveKeys
from memosd_client.protocol import messages as m

from ..testing import DaemonProcess


@dataclass(frozen=True)
class RestartTiming:
    """One stop and start of the daemon on the same store, as :meth:`Target.restart` measured it."""

    stop_s: float
    """SIGTERM until the old process exited (its clean shutdown)."""
    ready_s: float
    """New process spawned until its admin endpoint answered ``status``."""
    first_recall_s: float
    """New process spawned until the first recall was answered: what an agent waits for."""
    first_recall_hits: int
    """Hits of that first recall (0 would mean the daemon answered before its indexes were back)."""
    indexes_from: str = ""
    """Where the new process got its indexes: "snapshot" (of the clean stop) or "store" (rebuilt)."""
    replayed_entries: int = 0
    """Change-log entries the start replayed to bring the snapshot forward (after a kill -9)."""
    rebuilt: int = 0
    """Namespaces the start rebuilt from the store."""
    memories_before: int | None = None
    """Memories the namespace held before the stop or kill (``stats``), and after the start: they must
    be equal (an acknowledged write is never lost)."""
    memories_after: int | None = None


@dataclass
class Target:
    """Endpoints to measure (by transport) plus optional admin access and process handle."""

    endpoints: dict[str, str]
    admin_endpoint: str | None = None
    daemon: DaemonProcess | None = None
    started: bool = False
    curve: CurveKeys | None = None
    """CURVE keys for a tcp endpoint (``--key-file``); None uses ``$MEMOSD_KEY_FILE`` if set."""
    _process: psutil.Process | None = field(default=None, repr=False)
    _data_dir: Path | None = field(default=None, repr=False)
    _remove_dir: Path | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, *, tcp: bool = True, no_fsync: bool = False, store_dir: str | None = None,
              env: dict[str, str] | None = None) -> "Target":
        """Start a fresh daemon on a temporary store (ipc, plus tcp when asked); ``env`` adds settings."""
        data_dir = None
        if store_dir is not None:
            data_dir = tempfile.mkdtemp(prefix="memosd-bench-", dir=store_dir)
        daemon = DaemonProcess(data_dir, tcp=tcp, extra_args=["--no-fsync"] if no_fsync else [], env=env)
        try:
            daemon.start()
        except BaseException:
            daemon.cleanup()  # its temporary sockets and store would otherwise stay behind
            if data_dir:
                shutil.rmtree(data_dir, ignore_errors=True)
            raise
        endpoints = {"ipc": daemon.endpoint}
        if daemon.tcp_endpoint:
            endpoints["tcp"] = daemon.tcp_endpoint
        # DaemonProcess deletes only a store it created itself; one made under --store-dir is ours to delete.
        return cls(endpoints=endpoints, admin_endpoint=daemon.admin_endpoint, daemon=daemon, started=True,
                   _remove_dir=Path(data_dir) if data_dir else None)

    @classmethod
    def connect(cls, endpoint: str, admin_endpoint: str | None, key_file: str | None = None) -> "Target":
        """Use a running daemon; only its one endpoint's transport is measured."""
        transport = endpoint.split("://", 1)[0]
        curve = CurveKeys.from_file(key_file) if key_file else None
        return cls(endpoints={transport: endpoint}, admin_endpoint=admin_endpoint, curve=curve)

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.cleanup()
            self.daemon = None
        if self._remove_dir is not None:
            shutil.rmtree(self._remove_dir, ignore_errors=True)
            self._remove_dir = None

    def restart(self, namespace: str, query: str, k: int = 10, timeout_s: float = 3600.0,
                rebuild: bool = False) -> RestartTiming | None:
        """Stop the daemon we started and start it again on the same store; None for ``--endpoint``.

        The first recall is retried until answered, so the figure holds whether the daemon loads its
        indexes before it listens or after. With ``rebuild`` the index snapshot of the stop is deleted
        first, so the start rebuilds the indexes from the store (as after a crash).
        """
        if self.daemon is None:
            return None
        t0 = time.perf_counter()
        self.daemon.stop()
        stopped = time.perf_counter()
        if rebuild:
            (self.daemon.data_dir / "indexes" / "snapshot.pickle").unlink(missing_ok=True)
        return self._timed_start(namespace, query, k, timeout_s, t0, stopped)

    def crash_restart(self, namespace: str, query: str, k: int = 10, timeout_s: float = 3600.0,
                      before_kill: Callable[[], None] | None = None) -> RestartTiming | None:
        """Take an index snapshot while serving, run ``before_kill`` (writes), kill -9 the daemon and
        start it again on the same store; None for ``--endpoint``."""
        if self.daemon is None:
            return None
        with self.daemon.admin(timeout=timeout_s) as admin:
            admin.snapshot()
        if before_kill is not None:
            before_kill()
        before = self._count(namespace, timeout_s)
        t0 = time.perf_counter()
        self.daemon.kill(signal.SIGKILL)
        timing = self._timed_start(namespace, query, k, timeout_s, t0, time.perf_counter())
        return dataclasses.replace(timing, memories_before=before, memories_after=self._count(namespace, timeout_s))

    def _count(self, namespace: str, timeout_s: float) -> int:
        with self.client(next(iter(self.endpoints)), namespace, timeout=timeout_s) as client:
            return sum(ns.memories for ns in client.stats().namespaces)

    def _timed_start(self, namespace: str, query: str, k: int, timeout_s: float, t0: float,
                     stopped: float) -> RestartTiming:
        from memosd_client.protocol.errors import MemosdError

        self._process = None  # the new process has another pid
        self.daemon.startup_timeout = timeout_s  # a large store takes a while to load
        self.daemon.start()
        ready = time.perf_counter()
        deadline = stopped + timeout_s
        while True:
            try:
                with self.client(next(iter(self.endpoints)), namespace, timeout=timeout_s) as client:
                    hits = client.recall(query, k=k)
                break
            except MemosdError:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.05)
        answered = time.perf_counter()
        with self.daemon.admin(timeout=timeout_s) as admin:
            status = admin.status()
        return RestartTiming(stop_s=round(stopped - t0, 3), ready_s=round(ready - stopped, 3),
                             first_recall_s=round(answered - stopped, 3), first_recall_hits=len(hits),
                             indexes_from=status.indexes_from, replayed_entries=status.replayed_entries,
                             rebuilt=status.namespaces_rebuilt)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def client(self, transport: str, namespace: str, **kwargs) -> Client:
        kwargs.setdefault("timeout", 30.0)  # a 1000-memory durable batch on a busy box can be slow
        return Client(self.endpoints[transport], namespace=namespace, curve=self.curve, **kwargs)

    # ------------------------------------------------------------------ introspection

    def status(self) -> m.StatusResult | None:
        return self._ask(lambda admin: admin.status(), timeout=5.0)

    def tiers(self) -> m.TiersResult | None:
        """The daemon's tiers report (residency budget, resident page vectors)."""
        return self._ask(lambda admin: admin.tiers(), timeout=30.0)

    def _ask(self, call, timeout: float):
        """``call(admin)`` on the admin endpoint; None without admin access or when it does not answer."""
        if not self.admin_endpoint:
            return None
        try:
            with AdminClient(self.admin_endpoint, timeout=timeout, retries=0) as admin:
                return call(admin)
        except Exception:
            return None

    def _locate(self) -> None:
        if self._process is not None:
            return
        status = self.status()
        if status is None:
            return
        try:
            self._process = psutil.Process(status.pid)
        except psutil.Error:
            self._process = None
        path = Path(status.data_dir)
        self._data_dir = path if path.is_dir() else None

    def rss_bytes(self) -> int | None:
        """Resident set size of the daemon (includes LMDB pages it has touched through the map)."""
        self._locate()
        try:
            return self._process.memory_info().rss if self._process else None
        except psutil.Error:
            return None

    def rss_anon_bytes(self) -> int | None:
        """Anonymous resident memory of the daemon (``RssAnon``): heap, numpy arrays, Python objects.

        Unlike RSS it leaves out file pages mapped from the store, which the OS can drop and re-read,
        so it is the RAM the daemon itself holds. Linux only; None elsewhere.
        """
        self._locate()
        if self._process is None:
            return None
        try:
            with open(f"/proc/{self._process.pid}/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024  # the kernel reports kB
        except (OSError, ValueError, IndexError):
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the daemon has used so far (all threads)."""
        self._locate()
        try:
            if not self._process:
                return None
            times = self._process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return None

    def disk_bytes(self) -> int | None:
        """Bytes allocated on disk by the store's files (LMDB files are sparse up to the map size)."""
        self._locate()
        if self._data_dir is None:
            return None
        total = 0
        for root, _, files in os.walk(self._data_dir):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    pass
        return total

    def used_bytes(self) -> int | None:
        """Bytes of the LMDB map in use, as the daemon reports them."""
        status = self.status()
        return status.map_used_bytes if status else None
