"""memosd as one of the compared stores: a real daemon, the real client, over ipc.

The daemon is started with the :mod:`.vector_encoder` plugin selected, so its
dense channel holds exactly the peers' vectors; everything else is its default
configuration (exact numpy backend, durable commits, memory tiers on).
Insert time runs until every vector is in the dense channel, not just until
the writes are acknowledged: memosd embeds off the request path, and a memory
is not searchable by vector before that.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from memosd_client import AdminClient
from memosd_client.protocol import messages as m

from .runner import Say, settle
from .target import Target
from .vector_encoder import ENV, NAME, memory_text, query_text, write_plugin_package

NAMESPACE = "memosd-bench-peers"


class MemosdStore:
    """The daemon under test, fed and queried through the client library (a ``PeerStore``)."""

    def __init__(self, vectors_dir: Path, store_dir: str | None = None, backend: str = "") -> None:
        """``backend``: a ``memosd.backends`` plugin for the dense channel ("" = the built-in exact numpy)."""
        self.name = f"memosd-{backend}" if backend else "memosd"
        plugin_dir = write_plugin_package(vectors_dir / "plugin")
        # The daemon inherits our PYTHONPATH (so it runs this checkout's memosd); the plugin's metadata
        # goes in front of it.
        path = os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH", "")) if p)
        env = {"PYTHONPATH": path, ENV: str(vectors_dir), "MEMOSD_PLUGINS_ENCODER": NAME,
               "MEMOSD_PLUGINS_TIMEOUT_S": "30"}
        if backend:
            env["MEMOSD_PLUGINS_BACKEND"] = backend
        self.target = Target.start(tcp=False, store_dir=store_dir, env=env)
        self._client = None
        try:
            plugins = self._plugins()
            if not plugins.dense:
                failed = [p.error for p in plugins.plugins if p.name == NAME]
                raise RuntimeError(f"the daemon did not load the {NAME} encoder: {failed or 'not found'}")
            if backend and not plugins.backend.startswith(backend):
                # memosd falls back to numpy when a backend fails: that would be measured under the wrong name.
                raise RuntimeError(f"the daemon did not load the {backend} backend (it uses {plugins.backend})")
            self.config = f"daemon over ipc, dense channel {plugins.encoder}, backend {plugins.backend}, durable"
            self._client = self.target.client("ipc", NAMESPACE)
        except BaseException:
            self.target.close()
            raise
        self._row_of: dict[int, int] = {}
        self.took_us: list[int] = []
        self.settle_s: float | None = None

    def _plugins(self) -> m.PluginsResult:
        with AdminClient(self.target.admin_endpoint, timeout=30.0) as admin:
            return admin.request("plugins", m.PluginsArgs())

    def add(self, start: int, rows: np.ndarray) -> None:
        texts = [memory_text(i) for i in range(start, start + len(rows))]
        result = self._client.remember_many(texts)
        self._row_of.update(zip(result.ids, range(start, start + len(rows))))

    def finish(self, timeout_s: float = 1800.0) -> None:
        """Wait until every written memory has its vector in the dense channel."""
        deadline = time.monotonic() + timeout_s
        while True:
            migration = self._plugins().migration
            if migration is None or (migration.queued == 0 and migration.state != "running"):
                return
            if migration.state == "stopped" or time.monotonic() > deadline:
                raise RuntimeError(f"the dense channel did not catch up: {migration}")
            time.sleep(0.02)

    def settle(self, say: Say) -> None:
        """Let the tier scheduler page what was written, so it does not share the CPU with the queries."""
        self.settle_s = settle(self.target, say)

    def query(self, row: int, vector: np.ndarray, k: int) -> list[int]:
        # ``request`` is what Client.recall calls; using it keeps the daemon's took_us visible.
        result = self._client.request("recall", m.RecallArgs(query=query_text(row), k=k), NAMESPACE)
        self.took_us.append(result.took_us)
        return [self._row_of.get(hit.memory.id, -1) for hit in result.hits]

    def ram(self) -> dict:
        """The daemon's RSS and anonymous RSS now."""
        return {"rss_bytes": self.target.rss_bytes(), "rss_anon_bytes": self.target.rss_anon_bytes()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.target.close()
