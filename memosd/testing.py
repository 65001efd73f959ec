"""Run a real memosd daemon in a subprocess, on a temporary store, for tests.

Used by memosd's own test suite and shipped for plugin authors::

    from memosd.testing import DaemonProcess

    def test_my_plugin(tmp_path):
        with DaemonProcess(tmp_path) as daemon:
            with daemon.client(namespace="t") as client:
                client.remember("hello")

With memosd installed, pytest also gets a ``memosd_daemon`` fixture (a started
:class:`DaemonProcess` on a fresh store) through the ``pytest11`` entry point.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memosd_client import AdminClient, AsyncClient, Client
from memosd_client.protocol.errors import MemosdError


class DaemonProcess:
    """A ``memosd serve`` subprocess with its own data dir and ipc sockets.

    The data dir survives :meth:`kill`/:meth:`stop` so a test can restart on the
    same store. Sockets live in a short temporary directory because ipc paths are
    limited to about 100 bytes.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        tcp: bool = False,
        startup_timeout: float = 30.0,
    ):
        self._own_data = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="memosd-data-"))
        self.sock_dir = Path(tempfile.mkdtemp(prefix="memosd-", dir="/tmp"))
        self.endpoint = f"ipc://{self.sock_dir}/memosd.sock"
        self.admin_endpoint = f"ipc://{self.sock_dir}/admin.sock"
        self.tcp_endpoint: str | None = None
        if tcp:
            import socket

            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.tcp_endpoint = f"tcp://127.0.0.1:{port}"
        self.extra_args = list(extra_args or [])
        self.env = env or {}
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.sock_dir / "daemon.log"

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "memosd", "serve", "--data-dir", str(self.data_dir),
               "--listen", self.endpoint, "--admin-listen", self.admin_endpoint, *self.extra_args]
        if self.tcp_endpoint:
            cmd += ["--listen", self.tcp_endpoint]
        return cmd

    def start(self) -> "DaemonProcess":
        # Each test daemon gets its own events socket unless the test chose one; a test that asks for
        # tcp without CURVE means a trusted test network, so plain tcp clients get full rights.
        env = {**os.environ, "MEMOSD_EVENTS_PUB_ENDPOINT": f"ipc://{self.sock_dir}/events.sock", **self.env}
        if self.tcp_endpoint:
            env.setdefault("MEMOSD_SECURITY_TCP_WITHOUT_CURVE", "admin")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"memosd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with AdminClient(self.admin_endpoint, timeout=0.5, retries=0) as admin:
                    admin.status()
                return
            except MemosdError:
                time.sleep(0.05)
        raise RuntimeError(f"memosd did not become ready in {self.startup_timeout}s:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send a signal (default SIGKILL) and wait for the process to end; returns its exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.proc = None
        return code

    def stop(self) -> int:
        """Stop cleanly with SIGTERM."""
        return self.kill(signal.SIGTERM)

    def restart(self) -> "DaemonProcess":
        if self.proc is not None:
            self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        if self.proc is not None:
            self.kill()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if self._own_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ clients

    def client(self, namespace: str | None = None, *, tcp: bool = False, **kwargs) -> Client:
        endpoint = self.tcp_endpoint if tcp else self.endpoint
        kwargs.setdefault("timeout", 10.0)
        return Client(endpoint, namespace=namespace, **kwargs)

    def async_client(self, namespace: str | None = None, *, tcp: bool = False, **kwargs) -> AsyncClient:
        endpoint = self.tcp_endpoint if tcp else self.endpoint
        kwargs.setdefault("timeout", 10.0)
        return AsyncClient(endpoint, namespace=namespace, **kwargs)

    def admin(self, **kwargs) -> AdminClient:
        return AdminClient(self.admin_endpoint, **kwargs)


def make_daemon_fixture():
    """Build the ``memosd_daemon`` fixture lazily so importing this module does not need pytest."""
    import pytest

    @pytest.fixture
    def memosd_daemon(tmp_path):
        """A running memosd on a fresh store under ``tmp_path``; stopped afterwards."""
        with DaemonProcess(tmp_path / "store") as daemon:
            yield daemon

    return memosd_daemon
