"""Broken plugins are reported and bypassed; the daemon keeps serving with lexical retrieval.

Each plugin package is written at test time (module + ``*.dist-info``) and put
on the daemon's PYTHONPATH: the daemon discovers it through importlib.metadata,
as it would a pip-installed plugin. Real daemon processes, no mocks.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from plugin_packages import install_test_plugins, plugin, plugins_json, wait_for

from memosd.testing import DaemonProcess

ENCODERS = "memosd.encoders"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    return install_test_plugins(tmp_path_factory.mktemp("plugins"))


def _daemon(plugin_dir, tmp_path, **settings) -> DaemonProcess:
    env = {"PYTHONPATH": str(plugin_dir), "MEMOSD_PLUGINS_TIMEOUT_S": "1"}
    env.update({f"MEMOSD_PLUGINS_{key.upper()}": value for key, value in settings.items()})
    return DaemonProcess(tmp_path / "store", env=env)


def _lexical_recall_works(daemon: DaemonProcess) -> None:
    with daemon.client(namespace="iso") as client:
        memory_id = client.remember("the lighthouse keeper logs every passing ship")
        hits = client.recall("lighthouse keeper")
    assert hits and hits[0].memory.id == memory_id
    assert "dense" not in hits[0].matched and "bm25" in hits[0].matched


@pytest.mark.parametrize("name, error", [
    ("import-error", "No module named 'memosd_no_such_dependency'"),
    ("missing-attr", "NoSuchClass"),
    ("raises", "model weights are missing"),
    ("wrong-dim", "shape (2, 7), expected (2, 8)"),
    ("wrong-dtype", "dtype float64, not float32"),
    ("not-finite", "non-finite"),
    ("hangs", "did not answer within 1s"),
    ("not-installed", "no plugin named 'not-installed'"),
])
def test_broken_encoder_is_reported_and_bypassed(plugin_dir, tmp_path, name, error):
    started = time.monotonic()
    with _daemon(plugin_dir, tmp_path, encoder=name) as daemon:
        assert time.monotonic() - started < 20, "a hanging plugin must not hold up start-up past its timeout"
        report = plugins_json(daemon)
        info = plugin(report, ENCODERS, name)
        assert info["status"] == "failed"
        assert error in info["error"]
        assert report["dense"] is False
        # Plugins that were not selected are listed but never imported.
        assert plugin(report, ENCODERS, "trigrams")["status"] == "disabled"
        with daemon.admin() as admin:
            status = admin.status()
        assert [p.name for p in status.plugin_errors] == [name]
        _lexical_recall_works(daemon)
        assert "plugin failed; bypassed" in daemon.log()
        assert daemon.stop() == 0, "a clean stop, even with a plugin thread stuck forever"


def test_encoder_failing_at_run_time_is_bypassed(plugin_dir, tmp_path):
    """fails-later passes the load probe and embeds, then raises on one memory."""
    with _daemon(plugin_dir, tmp_path, encoder="fails-later") as daemon:
        assert plugin(plugins_json(daemon), ENCODERS, "fails-later")["status"] == "loaded"
        with daemon.client(namespace="late") as client:
            first = client.remember("an ordinary sentence about gardens")
            wait_for(lambda: "dense" in client.recall("gardens")[0].matched, what="a dense match")
            client.remember("this one goes boom")
            report = wait_for(lambda: (r := plugins_json(daemon))["dense"] is False and r, what="the failure")
            info = plugin(report, ENCODERS, "fails-later")
            assert info["status"] == "failed" and "cannot encode boom" in info["error"]
            assert report["migration"]["state"] == "stopped"
            hits = client.recall("gardens")
            assert hits[0].memory.id == first and "dense" not in hits[0].matched
        health = subprocess.run([sys.executable, "-m", "memosd", "health", "--json", "--admin-endpoint",
                                 daemon.admin_endpoint], capture_output=True, text=True, timeout=30)
        assert health.returncode == 0, health.stdout + health.stderr
        assert "cannot encode boom" in health.stdout


def test_broken_backend_falls_back_to_numpy(plugin_dir, tmp_path):
    with _daemon(plugin_dir, tmp_path, encoder="hash-dense", backend="bad-backend") as daemon:
        report = plugins_json(daemon)
        info = plugin(report, "memosd.backends", "bad-backend")
        assert info["status"] == "failed" and "index corrupted" in info["error"]
        assert report["dense"] is True
        with daemon.client(namespace="fallback") as client:
            client.remember("rainbows appear after the storm")
            wait_for(lambda: "dense" in client.recall("rainbows storm")[0].matched, what="a dense match")


def test_default_install_has_no_dense_channel_and_writes_no_vectors(tmp_path):
    """No encoder configured (the default): plugins are listed, nothing is embedded or stored."""
    from memosd.store.environment import Environment, StoreConfig

    daemon = DaemonProcess(tmp_path / "store")
    with daemon:
        report = plugins_json(daemon)
        assert report["dense"] is False and report.get("migration") is None and not report.get("encoder")
        assert plugin(report, ENCODERS, "hash-dense")["status"] == "disabled"
        assert plugin(report, "memosd.backends", "numpy")["status"] == "loaded"
        with daemon.admin() as admin:
            status = admin.status()
        assert status.plugin_errors == [] and status.migration is None
        with daemon.client(namespace="plain") as client:
            client.remember("a memory in the default install")
            assert client.recall("memory default")[0].matched == ["bm25"]  # lexical only: no dense channel
            assert "recall.dense" not in client.hello().capabilities
    env = Environment(StoreConfig(path=daemon.data_dir))
    try:
        with env.read() as txn:
            assert txn.stat(env.dbs["vectors"])["entries"] == 0
            assert not [k for k, _ in txn.cursor(db=env.dbs["meta"]) if k.startswith(b"dense")]
    finally:
        env.close()
