"""The MCP server's side of the daemon: async clients per (namespace, key), and starting a daemon
on its embedded defaults when none answers.

The MCP server holds no data and decides no rights: every tool call becomes one request of
:mod:`memosd_client` to the daemon, which enforces namespaces, limits and (over CURVE) grants.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

from memosd_client import AsyncClient, Client, CurveKeys
from memosd_client.endpoints import default_endpoint, runtime_dir
from memosd_client.protocol.errors import InvalidNamespaceError, MemosdError


@dataclass(frozen=True, slots=True)
class Binding:
    """Who a tool call acts as: the namespace it is bound to and the CURVE keys it connects with
    (None on ipc, whose socket permissions are the access control)."""

    namespace: str | None
    curve: CurveKeys | None = None


class DaemonLink:
    """Async clients of one daemon endpoint, one per :class:`Binding`, created on first use.

    Made inside the server's event loop (the zmq asyncio sockets belong to it); the least
    recently used client is closed beyond ``max_clients`` (one per HTTP key and namespace).
    """

    def __init__(self, endpoint: str, *, timeout: float = 10.0, retries: int = 1, max_clients: int = 64):
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.max_clients = max_clients
        self._clients: OrderedDict[Binding, AsyncClient] = OrderedDict()

    async def client(self, binding: Binding) -> AsyncClient:
        """The client acting as ``binding`` (its namespace is fixed: tools pass none of their own)."""
        if not binding.namespace:
            # Without one, some requests (stats) would address the whole daemon: never from MCP.
            raise InvalidNamespaceError("no namespace: this MCP server or session is bound to none "
                                        "(start it with --namespace, or send the X-Memosd-Namespace header)")
        client = self._clients.get(binding)
        if client is not None:
            self._clients.move_to_end(binding)
            return client
        client = AsyncClient(self.endpoint, namespace=binding.namespace, timeout=self.timeout,
                             retries=self.retries, curve=binding.curve)
        self._clients[binding] = client
        while len(self._clients) > self.max_clients:
            _, evicted = self._clients.popitem(last=False)
            await evicted.close()
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.close()


def daemon_answers(endpoint: str, *, timeout: float = 1.0, curve: CurveKeys | None = None) -> bool:
    """Whether a daemon answers ``hello`` on ``endpoint`` within ``timeout`` seconds."""
    try:
        with Client(endpoint, timeout=timeout, retries=0, curve=curve) as client:
            client.hello("memosd-mcp")
        return True
    except MemosdError:
        return False


def start_daemon(endpoint: str, *, wait: float = 30.0) -> subprocess.Popen:
    """Start ``memosd serve`` on its embedded defaults (data dir, admin endpoint; it listens on
    ``endpoint`` too when that is not the default one), detached from this process (own session,
    no inherited stdio: the MCP protocol owns our stdout), and wait until it answers on ``endpoint``.
    Its output goes to ``<runtime_dir>/memosd-mcp-daemon.log``."""
    log_dir = runtime_dir()
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = log_dir / "memosd-mcp-daemon.log"
    command = [sys.executable, "-m", "memosd", "serve"]
    if endpoint != default_endpoint():
        command += ["--listen", endpoint]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"memosd serve exited with {proc.returncode}; see {log_path}")
        if daemon_answers(endpoint, timeout=0.5):
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"memosd serve did not answer on {endpoint} within {wait}s; see {log_path}")


def ensure_daemon(endpoint: str, *, curve: CurveKeys | None = None) -> bool:
    """Start a daemon unless one answers on ``endpoint``; True when one was started."""
    if daemon_answers(endpoint, curve=curve):
        return False
    start_daemon(endpoint)
    return True
