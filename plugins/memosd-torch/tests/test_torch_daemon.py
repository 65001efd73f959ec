"""The torch backend inside a real memosd daemon (needs ``pip install -e plugins/memosd-torch``)."""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import pytest
import torch

from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

pytestmark = pytest.mark.skipif(
    "torch" not in entry_points(group="memosd.backends").names,
    reason="the torch entry point is not installed: pip install -e plugins/memosd-torch",
)

SETTINGS = {"MEMOSD_PLUGINS_ENCODER": "hash-dense", "MEMOSD_PLUGINS_BACKEND": "torch", "MEMOSD_TORCH_DEVICE": "cpu"}


@pytest.fixture
def torch_settings(monkeypatch):
    """Select the torch backend (on the CPU) for the daemon that ``memosd_daemon`` starts after this fixture.

    The daemon subprocess inherits the test's environment, and every ``MEMOSD_*`` variable is a setting.
    """
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)


def plugins_report(daemon: DaemonProcess) -> m.PluginsResult:
    with daemon.admin() as admin:
        return admin.request("plugins", m.PluginsArgs())


def dense_hits(client, query: str, want: int, timeout: float = 10.0):
    """Recall ``query`` until ``want`` hits come from the dense channel (vectors are computed in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        hits = client.recall(query)
        if sum("dense" in hit.matched for hit in hits) >= want or time.monotonic() > deadline:
            return hits
        time.sleep(0.05)


def test_memosd_daemon_serves_dense_recall_from_the_torch_backend(torch_settings, memosd_daemon):
    report = plugins_report(memosd_daemon)
    mine = next(p for p in report.plugins if p.name == "torch")
    assert mine.status == "loaded", (mine.error, [p.error for p in report.plugins if p.error])
    assert report.dense and report.backend == "torch", report
    with memosd_daemon.client(namespace="torch") as client:
        client.remember("the lighthouse keeper feeds the gulls at dawn")
        memory_id = client.remember("the harbour freezes over in January")
        hits = dense_hits(client, "harbour january", 2)
        assert hits[0].memory.id == memory_id and "dense" in hits[0].matched, memosd_daemon.log()[-2000:]
        # A purge removes the vector from the backend: the memory is found by no channel any more.
        client.purge(memory_id)
        assert all(hit.memory.id != memory_id for hit in client.recall("harbour january"))


def test_vectors_are_reloaded_into_the_backend_after_a_crash(tmp_path):
    with DaemonProcess(tmp_path / "store", env=SETTINGS) as daemon:
        with daemon.client(namespace="torch") as client:
            ids = [client.remember(f"note {i}: the ferry to island {i} leaves at {i} o'clock") for i in range(20)]
            dense_hits(client, "ferry island 7", 10)
        daemon.kill()
        daemon.start()
        assert plugins_report(daemon).backend == "torch"
        with daemon.client(namespace="torch") as client:
            hits = dense_hits(client, "ferry island 7", 10)
        assert hits[0].memory.id == ids[7] and "dense" in hits[0].matched, daemon.log()[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the missing-GPU fallback")
def test_asking_for_cuda_without_a_gpu_falls_back_to_the_numpy_backend(tmp_path):
    with DaemonProcess(tmp_path / "store", env={**SETTINGS, "MEMOSD_TORCH_DEVICE": "cuda"}) as daemon:
        report = plugins_report(daemon)
        mine = next(p for p in report.plugins if p.name == "torch")
        assert mine.status == "failed" and "no CUDA device" in (mine.error or ""), mine
        assert report.dense  # served by the built-in numpy backend instead
        with daemon.client(namespace="torch") as client:
            memory_id = client.remember("the harbour freezes over in January")
            hits = dense_hits(client, "harbour january", 1)
        assert hits[0].memory.id == memory_id and "dense" in hits[0].matched
