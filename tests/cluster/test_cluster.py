"""Cluster mode on real processes: three nats-server and three memosd nodes on loopback.

(The kill -9, NATS-kill and SIGSTOP-fencing scenarios run as ``memosd reliability
cluster --quick`` in tests/reliability; these check routing, isolation, the log
position each store keeps, and the log-level fence.)
"""

from __future__ import annotations

import asyncio
import time

import pytest

from memosd.cluster.local import LocalCluster
from memosd.cluster.nats_servers import NatsCluster
from memosd_client import AdminClient, Client
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MovedError


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(3, 3, base_dir=tmp_path_factory.mktemp("cluster"), durable=False,
                      extra_env={"MEMOSD_METRICS_LISTEN": "127.0.0.1:0"}) as running:
        running.wait_for_nodes(3)
        yield running


def _wait_owner(cluster: LocalCluster, namespace: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = cluster.owner(namespace)
        if owner is not None:
            return owner
        time.sleep(0.1)
    raise AssertionError(f"nobody owns {namespace!r}")


def test_any_node_answers_for_any_namespace_and_hello_lists_the_nodes(cluster):
    with Client(cluster.nodes[0].endpoint) as client:
        memory_id = client.remember("the owl hunts at dusk", namespace="routing")
        assert set(n.name for n in client.hello().nodes) == {"n0", "n1", "n2"}
    owner = _wait_owner(cluster, "routing")
    for node in cluster.nodes:  # each client follows MOVED to the owner
        with Client(node.endpoint) as client:
            hits = client.recall("owl dusk", namespace="routing")
            assert [h.memory.id for h in hits] == [memory_id]
    other = next(i for i in range(3) if i != owner)
    with Client(cluster.nodes[other].endpoint, retries=0) as direct:
        with pytest.raises(MovedError) as moved:
            direct.request_here("recall", m.RecallArgs(query="owl"), "routing")
    assert moved.value.details["endpoint"] == cluster.nodes[owner].endpoint


def test_a_namespace_never_sees_another_through_any_node(cluster):
    with Client(cluster.nodes[0].endpoint) as client:
        client.remember("secret of the first tenant: blue falcon", namespace="tenant-a")
    with Client(cluster.nodes[1].endpoint) as client:
        client.remember("the second tenant keeps bees", namespace="tenant-b")
    for node in cluster.nodes:
        with Client(node.endpoint) as client:
            texts = [h.memory.text for h in client.recall("falcon secret bees", k=50, namespace="tenant-b")]
            texts += [mem.text for mem in client.export(namespace="tenant-b")]
            texts += [mem.text for mem in client.list(limit=100, namespace="tenant-b").memories]
            assert texts and all("falcon" not in text for text in texts)
            assert [mem.text for mem in client.get_many([1, 2, 3], namespace="tenant-b").memories] == ["the second tenant keeps bees"]


def test_a_restarted_owner_replays_only_the_log_tail_it_lacks(cluster):
    namespace = "replay"
    with Client(cluster.nodes[0].endpoint) as client:
        ids = [client.remember(f"fact number {i} about herons", namespace=namespace) for i in range(20)]
    owner = _wait_owner(cluster, namespace)
    node = cluster.nodes[owner]
    node.kill()  # kill -9: its lease stays in the bucket until it expires
    node.start()
    with Client(node.endpoint) as client:  # the restarted node adopts its lease and replays from its store
        assert {h.memory.id for h in client.recall("herons", k=50, namespace=namespace)} == set(ids)
    mine = next(o for o in cluster.info(owner).owned if o.namespace == namespace)
    assert mine.replayed_entries == 0, "everything logged was already in this node's store"

    node.stop()  # a clean stop hands the namespace over: the next owner has none of it and replays it all
    try:
        other = next(i for i in range(3) if i != owner)
        with Client(cluster.nodes[other].endpoint) as client:
            assert {h.memory.id for h in client.recall("herons", k=50, namespace=namespace)} == set(ids)
        taker = _wait_owner(cluster, namespace)
        taken = next(o for o in cluster.info(taker).owned if o.namespace == namespace)
        assert 1 <= taken.replayed_entries <= 20
    finally:
        node.start()


def test_the_log_refuses_an_append_from_an_owner_another_node_has_fenced(tmp_path):
    """Two stores with the namespace's log between them: once the second has taken over (its fence is
    in the log), the first one's next append is refused by JetStream, and nothing of it is applied."""
    from memosd.cluster.leases import Lease
    from memosd.cluster.namespace_log import LostOwnership, NamespaceLog
    from memosd.cluster.naming import Names
    from memosd.config import LimitsConfig
    from memosd.engine.engine import Engine
    from memosd.server.handlers import engine_writes
    from memosd.store import Environment, StoreConfig, WriterThread
    import nats

    def store(name):
        env = Environment(StoreConfig(path=tmp_path / name, durable=False))
        writer = WriterThread(env)
        writer.start()
        engine = Engine(env, writer, LimitsConfig())
        writes = engine_writes(engine)
        return env, writer, engine, (lambda op, ns, args: writes[op](ns, args))

    async def scenario(url):
        nc = await nats.connect(url)
        js = nc.jetstream()
        names = Names("fence")
        await js.add_stream(name=names.stream, subjects=[names.log_subjects])
        (env_a, writer_a, engine_a, apply_a), (env_b, writer_b, engine_b, apply_b) = store("a"), store("b")
        try:
            first = NamespaceLog(js, names, env_a, "ns", "a", apply_a, 16)
            await first.take_over(Lease("ns", 1, 1, time.monotonic() + 60))
            written = await first.write("remember", m.RememberArgs(items=[m.MemoryIn(text="before the fence")]))
            second = NamespaceLog(js, names, env_b, "ns", "b", apply_b, 16)
            await second.take_over(Lease("ns", 2, 2, time.monotonic() + 60))
            assert second.replayed_entries == 1  # it applied the first owner's write from the log
            with pytest.raises(LostOwnership):
                await first.write("remember", m.RememberArgs(items=[m.MemoryIn(text="after the fence")]))
            await second.write("remember", m.RememberArgs(items=[m.MemoryIn(text="by the new owner")]))
            texts_b = [mem.text for mem in engine_b.export("ns", m.ExportArgs()).memories]
            texts_a = [mem.text for mem in engine_a.export("ns", m.ExportArgs()).memories]
            assert written.ids == [1]
            assert texts_b == ["before the fence", "by the new owner"]
            assert texts_a == ["before the fence"]
        finally:
            await nc.close()
            for writer, env in ((writer_a, env_a), (writer_b, env_b)):
                writer.stop()
                env.close()

    with NatsCluster(1, tmp_path / "nats") as server:
        server.wait_ready()
        asyncio.run(scenario(server.urls[0]))


def test_cluster_status_health_and_metrics_show_nodes_ownership_and_the_log(cluster):
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    cluster.wait_for_nodes(3)  # an earlier test restarted a node; views refresh every third of a lease
    with Client(cluster.nodes[0].endpoint) as client:
        client.remember("status check", namespace="status-ns")
    owner = _wait_owner(cluster, "status-ns")
    deadline = time.monotonic() + 10
    while True:  # the log's figures are as of the node's last upkeep round (every third of a lease)
        out = subprocess.run([sys.executable, "-m", "memosd", "cluster", "status", "--json",
                              "--admin-endpoint", cluster.nodes[owner].admin_endpoint],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        info = json.loads(out)
        if info["log"]["messages"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert info["node"] == f"n{owner}"
    assert {n["name"] for n in info["nodes"]} == {"n0", "n1", "n2"}
    owned = {o["namespace"]: o for o in info["owned"]}
    assert owned["status-ns"]["ready"] and owned["status-ns"]["log_seq"] >= 2
    assert info["namespaces_per_node"][f"n{owner}"] >= 1
    replicas = info["log"]["replicas"]
    assert len(replicas) == 3 and sum(r["leader"] for r in replicas) == 1 and info["log"]["messages"] >= 2

    table = subprocess.run([sys.executable, "-m", "memosd", "cluster", "status",
                            "--admin-endpoint", cluster.nodes[owner].admin_endpoint],
                           capture_output=True, text=True, timeout=60, check=True,
                           env={**os.environ, "COLUMNS": "200"}).stdout  # rich wraps cells to the width
    assert "status-ns" in table and "leader" in table and all(f"n{i}" in table for i in range(3))

    health = subprocess.run([sys.executable, "-m", "memosd", "health", "--json",
                             "--admin-endpoint", cluster.nodes[owner].admin_endpoint],
                            capture_output=True, text=True, timeout=60)
    assert health.returncode == 0 and json.loads(health.stdout)["checks"]["cluster_connected"]["ok"]
    with AdminClient(cluster.nodes[owner].admin_endpoint) as admin:
        scrape = urllib.request.urlopen(admin.status().metrics_endpoint, timeout=10).read().decode()
    assert "memosd_cluster_connected 1.0" in scrape
    assert "memosd_cluster_owned_namespaces" in scrape and 'memosd_cluster_log_entries_total{origin="appended"}' in scrape


def test_stats_count_only_what_the_node_answers_for(cluster):
    """A store may keep a copy of a namespace that moved away; stats must not count it as served here."""
    namespace = "stats-ns"
    with Client(cluster.nodes[0].endpoint) as client:
        client.remember("counted once", namespace=namespace)
    owner = _wait_owner(cluster, namespace)
    owned_by = {i: {o.namespace for o in cluster.info(i).owned if o.ready} for i in range(3)}
    for i, node in enumerate(cluster.nodes):
        with Client(node.endpoint) as client:
            assert client.stats(namespace=namespace).namespaces[0].name == namespace  # routed to the owner
            everything = {ns.name for ns in client.stats(all_namespaces=True).namespaces}
        assert everything <= owned_by[i], (i, everything, owned_by[i])
        assert (namespace in everything) == (i == owner)


def test_a_write_too_large_for_one_log_entry_is_refused_typed_and_big_batches_of_small_ones_go_through(cluster):
    from memosd_client.protocol.errors import TooLargeError

    with Client(cluster.nodes[0].endpoint) as client:
        with pytest.raises(TooLargeError, match="smaller batches"):
            client.remember_many([m.MemoryIn(text="x" * 60_000) for _ in range(40)], namespace="big")  # 2.4 MB
        ids = client.remember_many([m.MemoryIn(text=f"note {i} " + "y" * 500) for i in range(1500)],
                                   namespace="big").ids  # 0.8 MB: one entry
        assert len(ids) == 1500
        # Many concurrent writers: their entries are cut to fit, none refused.
        from concurrent.futures import ThreadPoolExecutor

        def write(i):
            with Client(cluster.nodes[i % 3].endpoint) as c:
                return c.remember_many([m.MemoryIn(text=f"w{i} " + "z" * 2000) for _ in range(200)],
                                       namespace="big").ids
        with ThreadPoolExecutor(8) as pool:
            assert sum(len(got) for got in pool.map(write, range(16))) == 3200
        assert client.stats(namespace="big").namespaces[0].memories == 4700


def test_reading_a_namespace_nobody_wrote_takes_no_lease_and_finds_nothing(cluster):
    for node in cluster.nodes:
        with Client(node.endpoint) as client:
            assert client.recall("anything", namespace="never-written") == []
            assert client.list(namespace="never-written").memories == []
            assert client.stats(namespace="never-written").namespaces == []
    assert all("never-written" not in {o.namespace for o in cluster.info(i).owned} for i in range(3))


def test_a_store_written_as_a_single_node_is_refused_in_cluster_mode(cluster, tmp_path):
    from memosd.testing import DaemonProcess

    with DaemonProcess(tmp_path / "store") as single:
        with single.client("local-only") as client:
            client.remember("written before the cluster")
    node = DaemonProcess(tmp_path / "store", env=cluster.env("late"))
    with pytest.raises(RuntimeError, match="written outside cluster mode"):
        node.start()
    node.cleanup()
