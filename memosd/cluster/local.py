"""A whole cluster on this machine: real nats-server processes and real memosd nodes, on loopback.

Used by the cluster tests and by ``memosd reliability cluster``. Each node is a
``memosd serve`` subprocess with its own store and ipc sockets; every cluster
gets its own NATS name prefix, so clusters can share NATS servers.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import zmq

from memosd_client import AdminClient
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MemosdError

from ..testing import DaemonProcess
from .nats_servers import NatsCluster


class LocalCluster:
    """``nats`` servers and ``nodes`` memosd nodes named n0, n1, ... (a context manager)."""

    def __init__(self, nodes: int = 3, nats: int = 3, *, base_dir: str | os.PathLike | None = None,
                 lease_s: float | None = None, durable: bool = True, extra_env: dict[str, str] | None = None,
                 curve: bool = False):
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="memosd-cluster-"))
        self.nats = NatsCluster(nats, self.base_dir / "nats")
        self.prefix = "t" + uuid.uuid4().hex[:10]
        self.replicas = min(3, nats)
        self.lease_s = lease_s
        self.durable = durable
        self.extra_env = dict(extra_env or {})
        self.curve = curve
        """Nodes on CURVE tcp endpoints (advertised to clients), sharing one server key pair."""
        public, secret = zmq.curve_keypair()
        self._server_key = json.dumps({"public_key": public.decode(), "secret_key": secret.decode()})
        self.nodes: list[DaemonProcess] = []
        self.names = [f"n{i}" for i in range(nodes)]

    def env(self, name: str) -> dict[str, str]:
        env = {"MEMOSD_CLUSTER_ENABLED": "1", "MEMOSD_CLUSTER_SERVERS": ",".join(self.nats.urls),
               "MEMOSD_CLUSTER_NODE": name, "MEMOSD_CLUSTER_PREFIX": self.prefix,
               "MEMOSD_CLUSTER_REPLICAS": str(self.replicas),
               "MEMOSD_STORE_DURABLE": "1" if self.durable else "0", **self.extra_env}
        if self.lease_s is not None:
            env["MEMOSD_CLUSTER_LEASE_S"] = str(self.lease_s)
        return env

    def start(self) -> "LocalCluster":
        self.nats.start()
        self.nats.wait_ready()
        for name in list(self.names):
            self._start_node(name)
        return self

    def add_node(self) -> DaemonProcess:
        """Start one more node (it joins the running cluster and takes its share of the namespaces)."""
        name = f"n{len(self.names)}"
        self.names.append(name)
        return self._start_node(name)

    def _start_node(self, name: str) -> DaemonProcess:
        node = DaemonProcess(self.base_dir / name, env=self.env(name), tcp=self.curve)
        if self.curve:
            # Every node must present the key its clients were given (docs/cluster.md, "CURVE").
            node.env.update({"MEMOSD_SECURITY_CURVE": "true", "MEMOSD_CLUSTER_ADVERTISE": node.tcp_endpoint})
            key_file = node.data_dir / "curve" / "server.json"
            key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key_file.write_text(self._server_key)
            key_file.chmod(0o600)
        self.nodes.append(node)
        node.start()
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.send_signal(signal.SIGCONT)  # a node a test left stopped must be able to exit
                except ProcessLookupError:
                    pass
            node.cleanup()
        self.nats.stop()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ looking at it

    def info(self, i: int, timeout: float = 2.0) -> m.ClusterInfo | None:
        """Node i's view of the cluster (None if it does not answer)."""
        try:
            with AdminClient(self.nodes[i].admin_endpoint, timeout=timeout, retries=0) as admin:
                return admin.status().cluster
        except MemosdError:
            return None

    def owner(self, namespace: str) -> int | None:
        """The index of the live node that serves ``namespace`` now (None: none does)."""
        for i, node in enumerate(self.nodes):
            if node.proc is None:
                continue
            info = self.info(i)
            if info is not None and any(o.namespace == namespace and o.ready for o in info.owned):
                return i
        return None

    def wait_for_nodes(self, count: int, timeout: float = 15.0) -> None:
        """Until every live node's membership lists ``count`` nodes (heartbeats every third of a lease)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = [self.info(i) for i, node in enumerate(self.nodes) if node.proc is not None]
            if all(v is not None and len(v.nodes) == count for v in views):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the nodes did not all see {count} nodes within {timeout}s")
