"""ipc peers as identities: a client of another Unix user gets only the namespaces granted to
``unix:<user>``; the daemon's own user keeps full access. Real daemon, real Unix user, real ipc."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import uuid

import pytest
import zmq

from memosd.security.peercred import UnixUsers, parse_peer_address
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InvalidArgumentError

# The client imports everything while still root (the interpreter lives under /root, which the
# test user cannot read), then drops to the test user for good before it connects: the daemon
# sees a process of that user, as it would any agent started by it.
CLIENT = r"""
import json, os, sys
from memosd_client import Client
from memosd_client.protocol.errors import MemosdError
spec = json.loads(sys.argv[1])
os.setgroups([])
os.setgid(spec["gid"])
os.setuid(spec["uid"])
results = []
with Client(spec["endpoint"], timeout=10.0, retries=0) as client:
    for op, namespace, text in spec["steps"]:
        try:
            if op == "remember":
                client.remember(text, namespace=namespace)
                results.append("ok")
            else:
                hits = client.recall(text, namespace=namespace)
                results.append([hit.memory.text for hit in hits])
        except MemosdError as exc:
            results.append(exc.code.name)
print(json.dumps({"uid": os.getuid(), "results": results}))
"""


def test_ipc_frames_carry_the_peers_kernel_credentials(tmp_path):
    """What the daemon relies on: libzmq records SO_PEERCRED in each ipc frame's Peer-Address."""
    ctx = zmq.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        router.bind(f"ipc://{tmp_path}/s.sock")
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"ipc://{tmp_path}/s.sock")
        dealer.send(b"hi")
        assert router.poll(5000)
        frame = router.recv_multipart(copy=False)[-1]
        cred = parse_peer_address(frame.get("Peer-Address"))
        assert cred is not None
        assert (cred.uid, cred.gid, cred.pid) == (os.getuid(), os.getgid(), os.getpid())
    finally:
        ctx.destroy(linger=0)


def test_peers_map_to_grant_names_and_trusted_users_to_none():
    users = UnixUsers()
    assert users.name_for_address(f"localhost:{os.getuid()}:{os.getgid()}:123") is None  # the daemon's user
    assert users.name_for_address("localhost:0:0:1") is None  # root
    assert users.name_for_address(None) is None  # no credentials (not ipc, not Linux): as before
    nobody = pwd.getpwnam("nobody")
    assert users.name_for_address(f"localhost:{nobody.pw_uid}:{nobody.pw_gid}:7") == "unix:nobody"
    unused = max(entry.pw_uid for entry in pwd.getpwall() if entry.pw_uid < 60000) + 1
    assert users.name_for_address(f"localhost:{unused}:{unused}:7") == f"unix:{unused}"


@pytest.fixture(scope="module")
def other_user():
    """A fresh Unix user, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a Unix user and running a client as it needs root")
    name = f"memosd-t{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """A daemon whose agent socket other users may reach: the operator widened the file modes."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("ipc-id") / "store",
                           env={"MEMOSD_SERVER_IPC_MODE": "0o666"})
    os.chmod(daemon.sock_dir, 0o711)  # the socket directory is private by default
    with daemon:
        yield daemon


def run_as(user: pwd.struct_passwd, daemon: DaemonProcess, steps: list[tuple[str, str, str]]) -> list:
    spec = {"endpoint": daemon.endpoint, "uid": user.pw_uid, "gid": user.pw_gid, "steps": steps}
    done = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(spec)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["uid"] == user.pw_uid
    return report["results"]


def grant(daemon: DaemonProcess, name: str, *grants: tuple[str, str]) -> m.KeysCreateResult:
    with daemon.admin() as admin:
        return admin.request("keys_create", m.KeysCreateArgs(
            name=name, grants=[m.Grant(namespace=ns, rights=r) for ns, r in grants]))


def test_another_users_client_gets_only_its_granted_namespaces(shared_daemon, other_user):
    ns_a, ns_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    with shared_daemon.client(ns_b) as own:  # the daemon's own user: full access, as before
        own.remember("the owner keeps the launch codes in b")

    # No grant yet: the user is known by its uid but may touch no namespace.
    assert run_as(other_user, shared_daemon, [
        ("remember", ns_a, "first try"), ("recall", ns_b, "launch codes"),
    ]) == ["FORBIDDEN", "FORBIDDEN"]

    created = grant(shared_daemon, f"unix:{other_user.pw_name}", (ns_a, "write"))
    assert created.name == f"unix:{other_user.pw_name}"
    assert created.secret_key == ""  # a user's grants hold no key

    assert run_as(other_user, shared_daemon, [
        ("remember", ns_a, "the agent of another user notes the blue door"),
        ("recall", ns_a, "blue door"),
        ("recall", ns_b, "launch codes"),
        ("remember", ns_b, "overwrite attempt"),
    ]) == ["ok", ["the agent of another user notes the blue door"], "FORBIDDEN", "FORBIDDEN"]

    with shared_daemon.client() as own:  # the owner still sees everything, and nothing was added to b
        assert [h.memory.text for h in own.recall("blue door", namespace=ns_a)] == [
            "the agent of another user notes the blue door"]
        assert [h.memory.text for h in own.recall("overwrite attempt launch codes", namespace=ns_b)] == [
            "the owner keeps the launch codes in b"]

    # Revoking the user's grants takes effect on its next request.
    with shared_daemon.admin() as admin:
        admin.request("keys_revoke", m.KeysRevokeArgs(name=f"unix:{other_user.pw_name}"))
    assert run_as(other_user, shared_daemon, [("recall", ns_a, "blue door")]) == ["FORBIDDEN"]


def test_a_grant_for_a_user_that_does_not_exist_is_refused(shared_daemon):
    with pytest.raises(InvalidArgumentError, match="no Unix user"):
        grant(shared_daemon, f"unix:nobody-{uuid.uuid4().hex[:8]}", ("*", "read"))
    with shared_daemon.admin() as admin:
        names = [key.name for key in admin.request("keys_list", m.KeysListArgs()).keys]
    assert not any(name.startswith("unix:nobody-") for name in names)


def memosd_cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memosd", *args, "--admin-endpoint", daemon.admin_endpoint],
                          capture_output=True, text=True, timeout=60)


def test_memosd_keys_grants_a_unix_user_from_the_command_line(shared_daemon, other_user):
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    name = f"unix:{other_user.pw_name}"
    created = memosd_cli(shared_daemon, "keys", "create", name, "--grant", f"{ns}:read")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"name": name, "grants": [{"namespace": ns, "rights": "read"}]}
    listed = memosd_cli(shared_daemon, "keys", "list")
    assert f"{name}\tactive\t-\t{ns}:read" in listed.stdout.splitlines()

    with shared_daemon.client(ns) as own:
        own.remember("read-only for the other user")
    assert run_as(other_user, shared_daemon, [
        ("recall", ns, "read-only"), ("remember", ns, "a write it may not make"),
    ]) == [["read-only for the other user"], "FORBIDDEN"]

    revoked = memosd_cli(shared_daemon, "keys", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    assert run_as(other_user, shared_daemon, [("recall", ns, "read-only")]) == ["FORBIDDEN"]
