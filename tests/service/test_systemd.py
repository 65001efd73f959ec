"""memosd under systemd: the unit file verifies, sd_notify messages and watchdog reach a real
NOTIFY_SOCKET, SIGHUP reloads without dropping clients, SIGTERM stops cleanly."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memosd.testing import DaemonProcess
from memosd_client.protocol.errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp_path):
    unit = (ROOT / "systemd" / "memosd.service").read_text()
    # verify checks that ExecStart exists: point it at this environment's memosd.
    memosd_bin = Path(sys.executable).with_name("memosd")
    assert memosd_bin.exists()
    target = tmp_path / "memosd.service"
    target.write_text(unit.replace("/usr/bin/memosd", str(memosd_bin)))
    result = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "ExecReload=" in unit
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                      "RestrictAddressFamilies=", "StateDirectory=memosd", "RuntimeDirectory=memosd"):
        assert hardening in unit


class NotifySocket:
    """A real unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, timeout: float = 20.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages:
                if key in msg:
                    self.messages.remove(msg)
                    return msg
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        raise AssertionError(f"no {key} message; got {self.messages}")

    def close(self):
        self.sock.close()


def test_notify_ready_watchdog_reload_stopping(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    config = tmp_path / "memosd.toml"
    config.write_text("[limits]\nmax_k = 1000\n")
    daemon = DaemonProcess(
        tmp_path / "store",
        extra_args=["--config", str(config)],
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"},
    )
    try:
        daemon.start()
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1" and "STATUS" in ready
        notify.wait_for("WATCHDOG")
        notify.wait_for("WATCHDOG")  # pinged repeatedly, not once

        with daemon.client("reload") as client:
            client.remember("a memory that must survive a reload")
            assert len(client.recall("memory", k=50)) == 1
            config.write_text("[limits]\nmax_k = 5\n")
            daemon.proc.send_signal(signal.SIGHUP)
            reloading = notify.wait_for("RELOADING")
            assert "MONOTONIC_USEC" in reloading
            notify.wait_for("READY")
            # Same client, same connection: the new limit applies and the data is there.
            with pytest.raises(InvalidArgumentError):
                client.recall("memory", k=50)
            assert client.recall("memory", k=5)[0].memory.text == "a memory that must survive a reload"

        assert daemon.stop() == 0
        notify.wait_for("STOPPING")
    finally:
        daemon.cleanup()
        notify.close()


def test_reload_with_a_broken_config_keeps_serving(tmp_path):
    config = tmp_path / "memosd.toml"
    config.write_text("[limits]\nmax_k = 7\n")
    with DaemonProcess(tmp_path / "store", extra_args=["--config", str(config)]) as daemon:
        with daemon.client("x") as client:
            client.remember("still here")
            config.write_text("[limits]\nmax_k = \"not a number\"\n")
            daemon.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert daemon.proc.poll() is None
            with pytest.raises(InvalidArgumentError):  # the old limit (7) still holds
                client.recall("still", k=8)
            assert client.recall("still", k=7)[0].memory.text == "still here"
        assert "reload failed" in daemon.log()


def test_no_notify_socket_means_no_messages_and_normal_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon:
        with daemon.admin() as admin:
            assert admin.status().writer_alive
