"""CURVE keys and grants across a cluster: a key made on one node is known to all, grants hold on every
node (before any routing), and a revocation on one node shuts the key out of every node."""

from __future__ import annotations

import time

import pytest

from memosd.cluster.local import LocalCluster
from memosd_client import AdminClient, Client, CurveKeys
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import (
    ConflictError,
    ForbiddenError,
    MemosdError,
    NotFoundError,
    RequestTimeoutError,
    UnauthorizedError,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(3, 3, base_dir=tmp_path_factory.mktemp("secured"), durable=False, curve=True) as running:
        running.wait_for_nodes(3)
        yield running


def create_key(node, name, *grants) -> CurveKeys:
    with AdminClient(node.admin_endpoint) as admin:
        created = admin.request("keys_create", m.KeysCreateArgs(
            name=name, grants=[m.Grant(namespace=ns, rights=right) for ns, right in grants]))
    return CurveKeys(created.public_key, created.secret_key, created.server_public_key)


def attempt(node, keys, namespace, op, args) -> str:
    with Client(node.tcp_endpoint, curve=keys, timeout=5.0) as client:
        try:
            client.request(op, args, namespace)
            return "ok"
        except ForbiddenError:
            return "forbidden"
        except (NotFoundError, ConflictError):
            return "ok"  # authorized, then failed on its own terms


def test_grants_hold_on_every_node_for_a_key_made_on_one(cluster):
    writer = create_key(cluster.nodes[0], "writer-a", ("alpha", "write"))
    reader = create_key(cluster.nodes[1], "reader-b", ("beta", "read"))
    with Client(cluster.nodes[2].tcp_endpoint, curve=create_key(cluster.nodes[2], "seed", ("*", "admin"))) as boss:
        boss.remember("alpha secret", namespace="alpha")
        boss.remember("beta secret", namespace="beta")
    reads = {"get": m.GetArgs(ids=[1]), "list": m.ListArgs(), "recall": m.RecallArgs(query="secret"),
             "export": m.ExportArgs(), "stats": m.StatsArgs()}
    writes = {"remember": m.RememberArgs(items=[m.MemoryIn(text="new")]), "forget": m.IdsArgs(ids=[10**6]),
              "update": m.UpdateArgs(id=10**6, text="x")}
    for node in cluster.nodes:
        for op, args in reads.items():
            assert attempt(node, writer, "alpha", op, args) == "ok", (node.tcp_endpoint, op)
            assert attempt(node, writer, "beta", op, args) == "forbidden", (node.tcp_endpoint, op)
            assert attempt(node, reader, "beta", op, args) == "ok", (node.tcp_endpoint, op)
            assert attempt(node, reader, "alpha", op, args) == "forbidden", (node.tcp_endpoint, op)
        for op, args in writes.items():
            assert attempt(node, writer, "alpha", op, args) == "ok", (node.tcp_endpoint, op)
            assert attempt(node, reader, "beta", op, args) == "forbidden", (node.tcp_endpoint, op)
        # The reader sees beta's own memory and nothing of alpha's, whichever node it asks.
        with Client(node.tcp_endpoint, curve=reader) as client:
            texts = {hit.memory.text for hit in client.recall("secret", k=20, namespace="beta")}
        assert texts == {"beta secret"}


def test_a_revocation_on_one_node_shuts_the_key_out_everywhere(cluster):
    keys = create_key(cluster.nodes[0], "short-lived", ("gamma", "write"))
    for node in cluster.nodes:
        with Client(node.tcp_endpoint, curve=keys, timeout=5.0) as client:
            client.remember("before revocation", namespace="gamma")
    with AdminClient(cluster.nodes[2].admin_endpoint) as admin:
        assert admin.request("keys_revoke", m.KeysRevokeArgs(name="short-lived")).revoked
    for node in cluster.nodes:
        deadline, refused = time.monotonic() + 5.0, False
        while not refused and time.monotonic() < deadline:
            with Client(node.tcp_endpoint, curve=keys, timeout=1.0, retries=0) as client:
                try:
                    client.remember("after revocation", namespace="gamma")
                    time.sleep(0.1)
                except (UnauthorizedError, RequestTimeoutError):  # refused, or not admitted at the handshake
                    refused = True
        assert refused, node.tcp_endpoint


def test_a_node_that_was_down_knows_the_keys_made_meanwhile_and_names_stay_unique(cluster):
    cluster.nodes[1].stop()
    try:
        keys = create_key(cluster.nodes[0], "made-while-down", ("delta", "write"))
    finally:
        cluster.nodes[1].start()
    with Client(cluster.nodes[1].tcp_endpoint, curve=keys, timeout=5.0, retries=0) as client:
        client.remember("admitted at once", namespace="delta")
    with pytest.raises(ConflictError):
        create_key(cluster.nodes[2], "made-while-down", ("delta", "read"))
    listed = []
    for node in cluster.nodes:
        with AdminClient(node.admin_endpoint) as admin:
            listed.append({(key.name, key.public_key) for key in admin.request("keys_list", m.KeysListArgs()).keys})
    assert listed[0] == listed[1] == listed[2]
    assert "made-while-down" in {name for name, _ in listed[0]}


def test_wrong_keys_are_refused_by_every_node(cluster):
    import zmq

    public, secret = zmq.curve_keypair()
    server_key = create_key(cluster.nodes[0], "probe", ("epsilon", "read")).server_public_key
    stranger = CurveKeys(public.decode(), secret.decode(), server_key)
    for node in cluster.nodes:
        with Client(node.tcp_endpoint, curve=stranger, timeout=1.0, retries=0) as client:
            with pytest.raises(MemosdError):
                client.hello()
