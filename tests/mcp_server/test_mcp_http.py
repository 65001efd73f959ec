"""``memosd mcp --http``: streamable HTTP through the SDK's own client against a real ``memosd mcp``
subprocess and a daemon with CURVE on TCP. The bearer token is a daemon key: the daemon's grants
and revocation decide, the MCP server only refuses what is not a key it admits."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mcp import MCPError

from memosd_client import CurveKeys
from memosd_client.protocol import messages as m
from mcp_support import (INITIALIZE, TOOLS, HttpServer, assert_tool_error, create_key, http_session, raw_post, run,
                         text)


@pytest.fixture(scope="module")
def server(secured):
    with HttpServer(secured) as srv:
        yield srv
    assert srv.alive() or srv.proc.returncode in (0, -15), srv.log()


@pytest.fixture(scope="module")
def keys(secured):
    return {
        "writer": create_key(secured, "mcp-writer", ("mcp-a", "write")),
        "reader": create_key(secured, "mcp-reader", ("mcp-a", "read")),
        "elsewhere": create_key(secured, "mcp-elsewhere", ("mcp-b", "write")),
    }


def hex_token(keys: CurveKeys, tmp_path) -> str:
    """The token as ``memosd mcp --print-token --key-file FILE`` prints it."""
    path = tmp_path / "key.json"
    path.write_text('{"name": "k", "public_key": "%s", "secret_key": "%s", "server_public_key": "%s"}'
                    % (keys.public_key, keys.secret_key, keys.server_public_key))
    done = subprocess.run([sys.executable, "-m", "memosd", "mcp", "--print-token", "--key-file", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def test_a_granted_key_lists_and_calls_tools_in_its_namespace(server, keys, secured, tmp_path):
    token = hex_token(keys["writer"], tmp_path)
    assert len(token) == 64 and int(token, 16)

    async def body():
        async with http_session(server.url, token, "mcp-a") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            stored = await s.call_tool("remember", {"text": "over http: the build server is named hal"})
            found = await s.call_tool("recall", {"query": "build server name"})
            stats = await s.read_resource("memosd://stats")
            return tools, stored, found, stats

    tools, stored, found, stats = run(body)
    assert tools == TOOLS
    assert not stored.is_error, text(stored)
    assert found.structured_content["hits"][0]["memory"]["id"] == stored.structured_content["id"]
    assert '"name":"mcp-a"' in stats.contents[0].text
    with secured.client("mcp-a") as local:  # it is in the daemon, in that namespace
        assert local.get(stored.structured_content["id"]).text == "over http: the build server is named hal"


def test_requests_without_a_key_the_daemon_admits_get_401(server, secured):
    import zmq

    public, secret = zmq.curve_keypair()  # well formed, but no key of this daemon
    for headers in [{}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer " + "z" * 64},
                    {"Authorization": f"Bearer {secret.decode()}"}]:
        reply = raw_post(server.url, {**headers, "X-Memosd-Namespace": "mcp-a"}, INITIALIZE)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert reply.json()["error"]["code"] == "UNAUTHORIZED"

    async def body():
        async with http_session(server.url, None, "mcp-a"):
            pass

    with pytest.raises(Exception):  # the SDK client cannot even initialize (it reports an error response)
        run(body)
    assert server.alive()


def test_a_key_without_a_grant_on_the_namespace_gets_no_data(server, keys, secured):
    with secured.client("mcp-a") as local:
        secret_id = local.remember("mcp-a secret: the launch code is 0000")

    async def body():
        async with http_session(server.url, keys["elsewhere"].secret_key, "mcp-a") as s:
            return {name: await s.call_tool(name, args) for name, args in [
                ("recall", {"query": "launch code"}), ("get", {"id": secret_id}), ("list", {}),
                ("history", {"id": secret_id}), ("entity", {"name": "launch"}),
                ("remember", {"text": "planted by a stranger"}), ("forget", {"ids": [secret_id]})]}

    results = run(body)
    for name, result in results.items():
        assert_tool_error(result, "FORBIDDEN")
        assert "0000" not in text(result), name
    with secured.client("mcp-a") as local:
        assert local.get(secret_id).forgotten_at is None
        assert all("stranger" not in mem.text for mem in local.list().memories)


def test_a_read_only_key_reads_but_cannot_call_write_tools(server, keys, secured):
    with secured.client("mcp-a") as local:
        note_id = local.remember("mcp-a note: standup is at nine")

    async def body():
        async with http_session(server.url, keys["reader"].secret_key, "mcp-a") as s:
            reads = [await s.call_tool("get", {"id": note_id}), await s.call_tool("recall", {"query": "standup"})]
            writes = [await s.call_tool("remember", {"text": "reader wrote this"}),
                      await s.call_tool("update", {"id": note_id, "text": "standup moved"}),
                      await s.call_tool("forget", {"ids": [note_id]})]
            after = await s.call_tool("get", {"id": note_id})
            return reads, writes, after

    reads, writes, after = run(body)
    assert all(not r.is_error for r in reads), [text(r) for r in reads]
    for result in writes:
        assert_tool_error(result, "FORBIDDEN")
    assert after.structured_content["text"] == "mcp-a note: standup is at nine"
    assert after.structured_content["superseded_by"] is None and after.structured_content["forgotten_at"] is None


def test_sessions_are_bound_to_their_namespace_and_key(server, keys):
    async def body():
        async with http_session(server.url, keys["writer"].secret_key, "mcp-a") as a, \
                http_session(server.url, keys["elsewhere"].secret_key, "mcp-b") as b:
            await a.call_tool("remember", {"text": "only in a: the cat is called Tibbles"})
            await b.call_tool("remember", {"text": "only in b: the dog is called Rex"})
            return (await a.call_tool("recall", {"query": "called", "k": 50}),
                    await b.call_tool("recall", {"query": "called", "k": 50}))

    in_a, in_b = run(body)
    assert {h["memory"]["text"] for h in in_a.structured_content["hits"]} >= {"only in a: the cat is called Tibbles"}
    assert all("Rex" not in h["memory"]["text"] for h in in_a.structured_content["hits"])
    assert [h["memory"]["text"] for h in in_b.structured_content["hits"]] == ["only in b: the dog is called Rex"]

    # A session opened for mcp-a cannot be steered to another namespace or used with another key.
    opened = raw_post(server.url, {"Authorization": f"Bearer {keys['writer'].secret_key}",
                                   "X-Memosd-Namespace": "mcp-a"}, INITIALIZE)
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "recall", "arguments": {"query": "dog"}}}
    moved = raw_post(server.url, {"Authorization": f"Bearer {keys['writer'].secret_key}",
                                  "X-Memosd-Namespace": "mcp-b", "Mcp-Session-Id": session_id}, call)
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "INVALID_NAMESPACE"
    hijack = raw_post(server.url, {"Authorization": f"Bearer {keys['elsewhere'].secret_key}",
                                   "X-Memosd-Namespace": "mcp-a", "Mcp-Session-Id": session_id}, call)
    assert hijack.status_code == 403 and hijack.json()["error"]["code"] == "FORBIDDEN"


def test_a_revoked_key_is_refused_by_the_daemon_at_once(server, secured):
    keys = create_key(secured, "mcp-revoked", ("mcp-a", "write"))

    async def body():
        async with http_session(server.url, keys.secret_key, "mcp-a") as s:
            before = await s.call_tool("recall", {"query": "anything"})
            with secured.admin() as admin:
                admin.request("keys_revoke", m.KeysRevokeArgs(name="mcp-revoked"))
            after = await s.call_tool("remember", {"text": "after revocation"})
            still_listing = await s.list_tools()
            return before, after, still_listing

    before, after, still_listing = run(body)
    assert not before.is_error, text(before)
    assert_tool_error(after, "UNAUTHORIZED")
    assert len(still_listing.tools) == len(TOOLS)
    with secured.client("mcp-a") as local:
        assert all(mem.text != "after revocation" for mem in local.list().memories)


def test_http_bad_input_gets_coded_errors_and_the_server_keeps_serving(server, keys):
    async def body():
        async with http_session(server.url, keys["writer"].secret_key, "mcp-a") as s:
            errors = [await s.call_tool("recall", {"query": "x", "k": 10**6}),
                      await s.call_tool("remember", {"text": "y" * 70_000}),
                      await s.call_tool("get", {"id": 10**12})]
            ok = await s.call_tool("recall", {"query": "x"})
            return errors, ok

    errors, ok = run(body)
    for result, code in zip(errors, ["INVALID_ARGUMENT", "TOO_LARGE", "NOT_FOUND"]):
        assert_tool_error(result, code)
    assert not ok.is_error


def test_without_a_namespace_nothing_is_reached(server, keys, secured):
    boss = create_key(secured, "mcp-boss", ("*", "admin"))  # even a key granted every namespace

    async def unbound():
        async with http_session(server.url, boss.secret_key, None) as s:
            recall = await s.call_tool("recall", {"query": "called"})
            remember = await s.call_tool("remember", {"text": "to which namespace?"})
            with pytest.raises(MCPError) as stats_refused:  # daemon-wide stats would span namespaces
                await s.read_resource("memosd://stats")
            return recall, remember, str(stats_refused.value)

    recall, remember, stats_refused = run(unbound)
    assert_tool_error(recall, "INVALID_NAMESPACE")
    assert_tool_error(remember, "INVALID_NAMESPACE")
    assert "INVALID_NAMESPACE" in stats_refused


def test_an_unreachable_daemon_is_a_503_not_a_hang(secured, keys, tmp_path):
    from mcp_support import free_port

    with HttpServer(secured, "--endpoint", f"tcp://127.0.0.1:{free_port()}",
                    f"--server-key={keys['writer'].server_public_key}") as lonely:  # a Z85 key may begin with '-'
        reply = raw_post(lonely.url, {"Authorization": f"Bearer {keys['writer'].secret_key}",
                                      "X-Memosd-Namespace": "mcp-a"}, INITIALIZE)
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "CONNECTION"
        assert lonely.alive()
