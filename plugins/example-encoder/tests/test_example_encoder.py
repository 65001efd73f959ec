"""The example encoder on its own, then inside a real memosd daemon.

Run after ``pip install -e plugins/example-encoder`` (the daemon finds the
plugin through the installed entry point, as it would in production).
"""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import numpy as np
import pytest

from memosd.plugins import Encoder
from memosd.plugins.guard import check_vectors
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m
from memosd_example_encoder import BagOfWordsEncoder


def test_encoder_meets_the_protocol():
    encoder = BagOfWordsEncoder()
    assert isinstance(encoder, Encoder)
    texts = ["Hello world", "hello WORLD again", ""]
    # memosd applies the same checks to every call: dtype, shape, finite values, unit norms.
    vectors = check_vectors(encoder.encode(texts), len(texts), encoder.dim, "example-bow")
    assert vectors[0] @ vectors[1] > 0.8 and not vectors[2].any()
    assert np.array_equal(vectors, encoder.encode(texts))


def test_daemon_loads_the_plugin_and_recall_uses_it(tmp_path):
    if "example-bow" not in entry_points(group="memosd.encoders").names:
        pytest.skip("install the plugin first: pip install -e plugins/example-encoder")
    with DaemonProcess(tmp_path / "store", env={"MEMOSD_PLUGINS_ENCODER": "example-bow"}) as daemon:
        with daemon.admin() as admin:
            report = admin.request("plugins", m.PluginsArgs())
        mine = next(p for p in report.plugins if p.name == "example-bow")
        assert mine.status == "loaded", mine.error
        assert report.dense and report.encoder == "example-bow/1/128"
        with daemon.client(namespace="example") as client:
            memory_id = client.remember("the harbour freezes over in January")
            # Vectors are computed in the background: the dense channel joins within moments.
            deadline = time.monotonic() + 10
            while True:
                hits = client.recall("harbour january")
                if "dense" in hits[0].matched or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert hits[0].memory.id == memory_id and "dense" in hits[0].matched
