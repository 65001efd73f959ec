"""Placement: namespaces spread over the nodes, a node that joins takes its share, a node that leaves
cleanly hands its namespaces over at once (no lease to wait out), and nothing written is lost by it."""

from __future__ import annotations

import time

from memosd.cluster.local import LocalCluster
from memosd_client import Client

NAMESPACES = [f"place-{i}" for i in range(12)]


def held(cluster: LocalCluster) -> dict[int, set[str]]:
    return {i: {o.namespace for o in (cluster.info(i).owned if node.proc is not None else []) if o.ready}
            for i, node in enumerate(cluster.nodes)}


def recall_everything(cluster: LocalCluster, seed: int) -> None:
    with Client(cluster.nodes[seed].endpoint, timeout=10.0) as client:
        for namespace in NAMESPACES:
            texts = {hit.memory.text for hit in client.recall("heron", k=10, namespace=namespace)}
            assert texts == {f"a heron seen in {namespace}"}, namespace


def share_settled(cluster: LocalCluster, node: int, via: int) -> dict[int, set[str]]:
    """``held`` once ``node`` holds namespaces. A node that did not answer a ping in time when a namespace
    was first asked for (a loaded machine) gets its share when the holder hands it over at an upkeep
    round; the namespace is then taken on its next request, which the loop makes through node ``via``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not held(cluster)[node]:
        with Client(cluster.nodes[via].endpoint) as client:
            for namespace in NAMESPACES:
                client.recall("heron", namespace=namespace)
        time.sleep(0.5)
    return held(cluster)


def test_a_joining_node_takes_a_share_and_a_leaving_node_hands_over_at_once(tmp_path):
    with LocalCluster(2, 3, base_dir=tmp_path, durable=False) as cluster:
        cluster.wait_for_nodes(2)
        with Client(cluster.nodes[0].endpoint) as client:
            for namespace in NAMESPACES:
                client.remember(f"a heron seen in {namespace}", namespace=namespace)
        before = share_settled(cluster, 1, via=0)
        assert before[0] and before[1] and before[0] | before[1] == set(NAMESPACES)

        cluster.add_node()
        cluster.wait_for_nodes(3)
        after = share_settled(cluster, 2, via=2)
        assert after[2], "the new node took no namespace"
        assert len(after[2]) < len(NAMESPACES)  # a share, not everything
        recall_everything(cluster, 2)

        leaving = max(after, key=lambda i: len(after[i]))
        cluster.nodes[leaving].stop()  # SIGTERM: hand over, do not wait for leases to expire
        started = time.monotonic()
        seed = next(i for i in range(3) if i != leaving)
        recall_everything(cluster, seed)
        assert time.monotonic() - started < 5.0  # the lease is 6 s: a clean leave does not wait it out
