"""The single-node isolation probe, run against a three-node cluster: the two namespaces of each test
are reached through different nodes, so every read and write crosses the routing layer.

(``test_stats_are_per_namespace`` is not rerun: stats of every namespace are per node in a cluster.)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from memosd.cluster.local import LocalCluster
from memosd_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_isolation import (  # noqa: E402,F401 - collected here, with this module's `daemon`
    BAD_NAMES,
    pair,
    test_idempotency_keys_are_per_namespace,
    test_ids_are_per_namespace_sequences,
    test_missing_or_invalid_namespace_is_rejected,
    test_reads_in_b_never_return_a,
    test_writes_in_b_never_touch_a,
)


class _AnyNode:
    """Stands in for one daemon: each client it makes is connected to the next node in turn."""

    def __init__(self, cluster: LocalCluster):
        self._nodes = itertools.cycle(cluster.nodes)

    def client(self, namespace: str | None = None, **kwargs) -> Client:
        kwargs.setdefault("timeout", 10.0)
        return Client(next(self._nodes).endpoint, namespace=namespace, **kwargs)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with LocalCluster(3, 3, base_dir=tmp_path_factory.mktemp("isolation"), durable=False) as cluster:
        cluster.wait_for_nodes(3)
        yield _AnyNode(cluster)
