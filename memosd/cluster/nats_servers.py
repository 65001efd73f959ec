"""Run real ``nats-server`` processes with JetStream, alone or clustered, on 127.0.0.1.

For cluster tests and tools::

    from memosd.cluster.nats_servers import NatsCluster

    with NatsCluster(3, tmp_path) as cluster:
        cluster.wait_ready()
        nc = await nats.connect(servers=cluster.urls)
        ...
        cluster.kill(0)      # SIGKILL one server
        cluster.restart(0)   # same ports, name and store dir
        cluster.wait_ready()

The binary comes from Debian's ``nats-server`` package (``make setup`` installs it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import weakref
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")
CLUSTER_NAME = "memosd"


def find_nats_server() -> str:
    """The path of the ``nats-server`` binary; RuntimeError if it is not installed."""
    found = shutil.which("nats-server")
    if found:
        return found
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    for directory in _SEARCH_DIRS:
        candidate = os.path.join(directory, "nats-server")
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "nats-server is not installed (looked on PATH and in " + ", ".join(_SEARCH_DIRS) + "); "
        "run `make setup` (or `make system-deps`) to install Debian's nats-server package"
    )


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are bound so the kernel cannot hand out one port twice.
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass(frozen=True)
class _Server:
    name: str
    port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config: Path
    log: Path


def _terminate(procs: list[subprocess.Popen[bytes] | None]) -> None:
    """SIGTERM every live server, wait a little, then SIGKILL the stragglers."""
    live = [p for p in procs if p is not None and p.poll() is None]
    for proc in live:
        proc.terminate()
    deadline = time.monotonic() + 10.0
    for proc in live:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NatsCluster:
    """``size`` JetStream-enabled ``nats-server`` processes, clustered when size > 1.

    Each server ``i`` is named ``n{i+1}`` and has its own client, cluster-route and
    HTTP-monitoring ports, a config file, a store dir and a log file under ``base_dir``
    (a temporary dir removed on :meth:`stop` when none is given). Ports are chosen once,
    so :meth:`restart` brings a server back exactly as it was.
    """

    def __init__(self, size: int = 3, base_dir: str | os.PathLike[str] | None = None) -> None:
        if size < 1:
            raise ValueError("a NATS cluster needs at least one server")
        self.size = size
        self._binary = find_nats_server()
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="memosd-nats-"))
        ports = _free_ports(3 * size)
        self._servers = [
            _Server(
                name=f"n{i + 1}",
                port=ports[3 * i],
                cluster_port=ports[3 * i + 1],
                http_port=ports[3 * i + 2],
                store_dir=self.base_dir / f"n{i + 1}" / "jetstream",
                config=self.base_dir / f"n{i + 1}" / "nats.conf",
                log=self.base_dir / f"n{i + 1}" / "nats.log",
            )
            for i in range(size)
        ]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * size
        # Servers must not outlive an owner that forgets stop(): the finalizer also runs at exit.
        self._finalizer = weakref.finalize(self, _terminate, self._procs)

    @property
    def urls(self) -> list[str]:
        """Client URLs of all servers, e.g. ``nats://127.0.0.1:4222``."""
        return [f"nats://127.0.0.1:{s.port}" for s in self._servers]

    def log_path(self, i: int) -> Path:
        """The file server ``i``'s stdout and stderr go to (appended across restarts)."""
        return self._servers[i].log

    def start(self) -> None:
        """Start every server that is not already running."""
        for i in range(self.size):
            if not self.alive(i):
                self._spawn(i)

    def alive(self, i: int) -> bool:
        """Whether server ``i``'s process is running."""
        proc = self._procs[i]
        return proc is not None and proc.poll() is None

    def kill(self, i: int) -> None:
        """SIGKILL server ``i`` (no clean shutdown), and reap it."""
        proc = self._procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self, i: int) -> None:
        """Start server ``i`` again with the same ports, name and store dir (killing it first if alive)."""
        self.kill(i)
        self._spawn(i)

    def stop(self) -> None:
        """Terminate all servers and wait for them; remove the base dir if this object made it."""
        _terminate(self._procs)
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until JetStream accepts a stream with ``num_replicas=size``.

        Monitoring says when each server has JetStream and the cluster has a meta
        leader, but only creating a replicated stream proves the peers agree, so a
        probe stream is created and deleted (retried) before returning. Raises
        RuntimeError if a server died or ``timeout`` passed. Safe to call from inside
        a running event loop (the probe runs on its own loop in a worker thread).
        """
        deadline = time.monotonic() + timeout
        while not all(self._healthy(i) for i in range(self.size)):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats servers not healthy after {timeout:.0f}s{self._log_tails()}")
            time.sleep(0.1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            error = pool.submit(asyncio.run, self._probe(deadline)).result()
        if error is not None:
            raise RuntimeError(
                f"JetStream did not accept a {self.size}-replica stream within {timeout:.0f}s: {error!r}"
                f"{self._log_tails()}"
            )

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, i: int) -> None:
        server = self._servers[i]
        server.store_dir.mkdir(parents=True, exist_ok=True)
        server.config.write_text(self._config(server))
        with open(server.log, "ab") as log:
            # A file, not a pipe: nobody reads the output and a full pipe would stall the server.
            # A session of its own keeps terminal signals (Ctrl-C) aimed at the test runner off it.
            self._procs[i] = subprocess.Popen(
                [self._binary, "-c", str(server.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _config(self, server: _Server) -> str:
        lines = [
            f"server_name: {server.name}",
            f"listen: 127.0.0.1:{server.port}",
            f"http: 127.0.0.1:{server.http_port}",
            f'jetstream {{ store_dir: "{server.store_dir}" }}',
        ]
        if self.size > 1:
            routes = ", ".join(
                f"nats-route://127.0.0.1:{other.cluster_port}" for other in self._servers if other is not server
            )
            lines.append(
                f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{server.cluster_port}, routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n"

    def _healthy(self, i: int) -> bool:
        url = f"http://127.0.0.1:{self._servers[i].http_port}"
        try:
            with urllib.request.urlopen(f"{url}/healthz?js-enabled-only=true", timeout=1.0) as resp:
                if resp.status != 200:
                    return False
            if self.size == 1:
                return True
            with urllib.request.urlopen(f"{url}/jsz", timeout=1.0) as resp:
                jsz = json.load(resp)
        except (OSError, ValueError):
            return False
        return bool((jsz.get("meta_cluster") or {}).get("leader"))

    async def _probe(self, deadline: float) -> BaseException | None:
        import nats  # imported here so that merely importing this module does not need nats-py

        last: BaseException | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            nc = None
            try:
                nc = await nats.connect(servers=self.urls, connect_timeout=1, allow_reconnect=False)
                js = nc.jetstream(timeout=5.0)
                name = f"memosd_probe_{uuid.uuid4().hex[:12]}"
                await js.add_stream(name=name, subjects=[f"{name}.>"], num_replicas=self.size)
                await js.delete_stream(name)
                return None
            except Exception as err:  # any failure here means "not ready yet"; keep the last one to report
                last = err
                await asyncio.sleep(0.25)
            finally:
                if nc is not None:
                    await nc.close()
        return last or TimeoutError("no time left to probe JetStream")

    def _check_alive(self) -> None:
        dead = [s.name for i, s in enumerate(self._servers) if not self.alive(i)]
        if dead:
            raise RuntimeError(f"nats-server {', '.join(dead)} is not running{self._log_tails()}")

    def _log_tails(self) -> str:
        parts = []
        for server in self._servers:
            try:
                tail = server.log.read_text(errors="replace")[-1500:]
            except OSError:
                tail = "(no log)"
            parts.append(f"\n--- {server.name} ({server.log}) ---\n{tail}")
        return "".join(parts)
