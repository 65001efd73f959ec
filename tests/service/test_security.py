"""CURVE authentication, namespace grants for every operation, revocation, ipc permissions and
per-client backpressure, against a real daemon."""

import asyncio
import json
import os
import stat
import subprocess
import sys

import pytest
import zmq

from memosd.testing import DaemonProcess
from memosd_client import CurveKeys
from memosd_client.protocol import OPERATIONS
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import (
    BusyError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ForbiddenError,
    ConnectionFailedError,
    RequestTimeoutError,
    UnauthorizedError,
)


# A client whose CURVE handshake is refused never gets a connection: depending on timing the client
# reports that it cannot reach the daemon or that no reply came.
NOT_ADMITTED = (ConnectionFailedError, RequestTimeoutError)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    with DaemonProcess(tmp_path_factory.mktemp("sec") / "store", tcp=True,
                       env={"MEMOSD_SECURITY_CURVE": "true"}) as daemon:
        yield daemon


def create_key(daemon, name, *grants) -> CurveKeys:
    with daemon.admin() as admin:
        created = admin.request("keys_create", m.KeysCreateArgs(
            name=name, grants=[m.Grant(namespace=ns, rights=r) for ns, r in grants]))
    return CurveKeys(created.public_key, created.secret_key, created.server_public_key)


def test_tcp_without_a_known_key_is_refused_before_any_request(secured):
    with secured.client("alpha", tcp=True, timeout=1.0, retries=0) as anonymous:
        with pytest.raises(NOT_ADMITTED):  # the CURVE handshake never completes
            anonymous.hello()
    public, secret = zmq.curve_keypair()
    with secured.admin() as admin:
        server_key = admin.request("keys_list", m.KeysListArgs()).server_public_key
    stranger = CurveKeys(public.decode(), secret.decode(), server_key)
    with secured.client("alpha", tcp=True, timeout=1.0, retries=0, curve=stranger) as client:
        with pytest.raises(NOT_ADMITTED):
            client.hello()
    # ipc is unaffected: its file permissions are the access control.
    with secured.client("alpha") as local:
        assert local.hello().protocol == 1


def test_grants_decide_every_operation(secured):
    writer = create_key(secured, "writer-a", ("alpha", "write"))
    reader = create_key(secured, "reader-b", ("beta", "read"))
    boss = create_key(secured, "boss", ("*", "admin"))
    with secured.client("alpha") as local:
        a_id = local.remember("alpha secret")
    with secured.client("beta") as local:
        b_id = local.remember("beta secret")

    def attempt(keys, namespace, op, args):
        with secured.client(namespace, tcp=True, curve=keys, timeout=5.0) as client:
            try:
                client.request(op, args, namespace)
                return "ok"
            except ForbiddenError:
                return "forbidden"
            except (NotFoundError, ConflictError, InvalidArgumentError):
                return "ok"  # authorized, then failed on its own terms; anything else is a real failure

    reads = {
        "get": m.GetArgs(ids=[1]), "list": m.ListArgs(), "recall": m.RecallArgs(query="secret"),
        "history": m.HistoryArgs(id=1), "export": m.ExportArgs(), "stats": m.StatsArgs(), "page": m.PageArgs(page=1),
        "entity": m.EntityArgs(name="x"),
    }
    writes = {
        "remember": m.RememberArgs(items=[m.MemoryIn(text="new")]), "update": m.UpdateArgs(id=10**6, text="x"),
        "forget": m.IdsArgs(ids=[10**6]), "unforget": m.IdsArgs(ids=[10**6]), "purge": m.PurgeArgs(ids=[10**6]),
        "import": m.ImportArgs(memories=[m.Memory(id=10**6, text="imp", created_at=1.0, valid_from=1.0,
                                                  lineage=10**6)]),
    }
    assert set(reads) | set(writes) | {"hello", "encode", "purge"} >= {
        name for name, op in OPERATIONS.items() if not op.admin}
    for op, args in reads.items():
        assert attempt(writer, "alpha", op, args) == "ok", op
        assert attempt(writer, "beta", op, args) == "forbidden", op
        assert attempt(reader, "beta", op, args) == "ok", op
        assert attempt(reader, "alpha", op, args) == "forbidden", op
        assert attempt(boss, "beta", op, args) == "ok", op
    for op, args in writes.items():
        assert attempt(writer, "alpha", op, args) == "ok", op
        assert attempt(writer, "beta", op, args) == "forbidden", op
        assert attempt(reader, "beta", op, args) == "forbidden", op
    # Purging a whole namespace and daemon-wide stats need admin rights.
    assert attempt(writer, "alpha", "purge", m.PurgeArgs(all=True)) == "forbidden"
    assert attempt(writer, None, "stats", m.StatsArgs()) == "forbidden"
    assert attempt(boss, None, "stats", m.StatsArgs()) == "ok"
    # Admin operations are not served on agent endpoints, whoever asks.
    assert attempt(boss, None, "status", m.StatusArgs()) == "forbidden"
    # Nothing a refused request touched changed.
    with secured.client("beta") as local:
        assert local.get(b_id).text == "beta secret"
    with secured.client("alpha") as local:
        assert local.get(a_id).text == "alpha secret"


def test_revocation_applies_to_open_connections(secured):
    keys = create_key(secured, "short-lived", ("gamma", "write"))
    with secured.client("gamma", tcp=True, curve=keys, timeout=2.0, retries=0) as client:
        client.remember("before revocation")
        with secured.admin() as admin:
            admin.request("keys_revoke", m.KeysRevokeArgs(name="short-lived"))
        with pytest.raises(UnauthorizedError):
            client.remember("after revocation")
    with secured.client("gamma", tcp=True, curve=keys, timeout=1.0, retries=0) as fresh:
        with pytest.raises(NOT_ADMITTED):
            fresh.hello()


def test_keys_cli_create_list_revoke(secured, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "memosd", "keys", *args,
                               "--admin-endpoint", secured.admin_endpoint],
                              capture_output=True, text=True, timeout=60)

    key_file = tmp_path / "agent.key"
    created = cli("create", "cli-agent", "--grant", "delta:write", "-o", str(key_file))
    assert created.returncode == 0, created.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    listing = json.loads(cli("list", "--json").stdout)
    assert any(k["name"] == "cli-agent" and k.get("revoked_at") is None for k in listing["keys"])
    keys = CurveKeys.from_file(key_file)
    with secured.client("delta", tcp=True, curve=keys) as client:
        assert client.remember("via a key file") >= 1
    assert cli("revoke", "cli-agent").returncode == 0
    listing = json.loads(cli("list", "--json").stdout)
    assert [k for k in listing["keys"] if k["name"] == "cli-agent"][0].get("revoked_at") is not None


def test_ipc_socket_is_owner_and_group_only(secured):
    mode = stat.S_IMODE(os.stat(secured.endpoint[len("ipc://"):]).st_mode)
    assert mode == 0o660


def test_tcp_can_be_closed_to_unauthenticated_clients(tmp_path):
    env = {"MEMOSD_SECURITY_TCP_WITHOUT_CURVE": "none"}
    with DaemonProcess(tmp_path / "store", tcp=True, env=env) as daemon:
        with daemon.client("x", tcp=True, retries=0) as client:
            with pytest.raises(UnauthorizedError):
                client.remember("nope")
        with daemon.client("x") as local:
            assert local.stats().namespaces == []


def test_rate_limit_answers_busy_and_recovers(tmp_path):
    env = {"MEMOSD_LIMITS_RATE_PER_CLIENT": "20"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon:
        with daemon.client("rl", retries=0) as client:
            outcomes = []
            for _ in range(60):
                try:
                    client.hello()
                    client.recall("anything")
                    outcomes.append("ok")
                except BusyError as err:
                    assert err.details["retry_after_s"] > 0
                    outcomes.append("busy")
            assert "busy" in outcomes and "ok" in outcomes
            import time

            time.sleep(1.0)
            assert client.recall("anything") == []


def test_inflight_cap_rejects_with_busy_and_loses_nothing(tmp_path):
    env = {"MEMOSD_LIMITS_MAX_INFLIGHT_PER_CLIENT": "2"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon:
        async def flood():
            async with daemon.async_client("inflight", retries=0) as client:
                return await asyncio.gather(*(client.remember(f"parallel {i}") for i in range(60)),
                                            return_exceptions=True)

        results = asyncio.run(flood())
        acked = [r for r in results if isinstance(r, int)]
        busy = [r for r in results if isinstance(r, BusyError)]
        assert len(acked) + len(busy) == 60 and busy and acked
        with daemon.client("inflight") as client:
            stored = client.list(limit=1000).memories
        assert sorted(mem.id for mem in stored) == sorted(acked)
