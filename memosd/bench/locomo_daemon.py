"""One LoCoMo pass through a fresh temporary daemon started with given settings.

The tuner evaluates each grid point this way: settings are process-wide (the
index and the pages are built with them), so every point gets its own daemon
and store, and the daemon is the real one a user runs, not the index in-process.
"""

from __future__ import annotations

from collections.abc import Callable

from memosd_client import AdminClient, Client

from ..testing import DaemonProcess
from .evaluate import EvalRun, namespace_for, run_eval, settle_daemon
from .locomo import Conversation


def eval_with_settings(conversations: list[Conversation], ks: list[int], env: dict[str, str], *,
                       no_fsync: bool = True, timeout_s: float = 60.0,
                       progress: Callable[[str, int], None] | None = None) -> EvalRun:
    """Start a daemon on a temporary store with ``env`` (``MEMOSD_*`` settings), ingest, settle, ask; stop it.

    Durability does not change what recall returns, so ``no_fsync`` (the default) only saves time.
    """
    daemon = DaemonProcess(extra_args=["--no-fsync"] if no_fsync else [], env=dict(env))
    try:
        daemon.start()
        namespaces = [namespace_for(c) for c in conversations]
        with Client(daemon.endpoint, timeout=timeout_s) as client, \
                AdminClient(daemon.admin_endpoint, timeout=timeout_s) as admin:
            return run_eval(client, conversations, ks, progress=progress, settle=settle_daemon(admin, namespaces))
    finally:
        daemon.cleanup()
