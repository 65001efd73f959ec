"""Where a daemon listens by default, computed the same way by daemon and clients."""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    """Directory for the ipc sockets.

    systemd's ``RUNTIME_DIRECTORY`` wins, then ``MEMOSD_RUNTIME_DIR``, then
    ``$XDG_RUNTIME_DIR/memosd``, then ``/tmp/memosd-<uid>``.
    """
    for var in ("RUNTIME_DIRECTORY", "MEMOSD_RUNTIME_DIR"):
        value = os.environ.get(var)
        if value:
            return Path(value.split(":")[0])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "memosd"
    return Path(f"/tmp/memosd-{os.getuid()}")


def default_endpoint() -> str:
    """The agent socket: ``MEMOSD_ENDPOINT`` or ``ipc://<runtime_dir>/memosd.sock``."""
    return os.environ.get("MEMOSD_ENDPOINT") or f"ipc://{runtime_dir() / 'memosd.sock'}"


def default_admin_endpoint() -> str:
    """The admin socket: ``MEMOSD_ADMIN_ENDPOINT`` or ``ipc://<runtime_dir>/memosd-admin.sock``."""
    return os.environ.get("MEMOSD_ADMIN_ENDPOINT") or f"ipc://{runtime_dir() / 'memosd-admin.sock'}"
