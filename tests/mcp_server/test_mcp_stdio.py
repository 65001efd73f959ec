"""``memosd mcp`` over stdio, driven by the MCP SDK's own ``ClientSession`` against a real daemon:
the tool list, every tool, resources, namespace binding, bad input, and starting a daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from memosd_client import AdminClient
from memosd_client.protocol import messages as m
from mcp_support import TOOLS, assert_tool_error, run, stdio_args, stdio_session, text


def test_tools_are_listed_with_descriptions_and_schemas_and_no_namespace_argument(daemon, ns):
    async def body():
        async with stdio_session(*stdio_args(daemon, ns)) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            resources = [r.uri for r in (await session.list_resources()).resources]
            templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        return tools, resources, templates

    tools, resources, templates = run(body)
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 30, tool.name
        props = tool.input_schema["properties"]
        assert "namespace" not in props and "ctx" not in props, tool.name
        assert all(p.get("description") for name, p in props.items()
                   if not name.startswith("include_")), tool.name
        assert tool.output_schema is not None, tool.name
    recall = tools["recall"].input_schema
    assert recall["required"] == ["query"]
    assert {"k", "session", "tags", "after", "before", "as_of"} <= set(recall["properties"])
    assert recall["properties"]["k"]["minimum"] == 1
    assert tools["recall"].annotations.read_only_hint and not tools["remember"].annotations.read_only_hint
    assert resources == ["memosd://stats"] and templates == ["memosd://entity/{name}"]


def test_every_memory_tool_round_trips_through_the_daemon(daemon, ns):
    async def body():
        async with stdio_session(*stdio_args(daemon, ns)) as s:
            tea = await s.call_tool("remember", {"text": "Alice drinks green tea every morning",
                                                 "tags": ["preference"], "session": "chat-1", "source": "user",
                                                 "event_time": "2026-01-02T08:00:00Z", "meta": {"mood": "calm"}})
            other = await s.call_tool("remember", {"text": "The deploy window is Friday at noon",
                                                   "session": "chat-2", "event_time": 1_800_000_000})
            assert not tea.is_error and not other.is_error, (text(tea), text(other))
            tea_id, other_id = tea.structured_content["id"], other.structured_content["id"]
            assert text(tea) == f"remembered #{tea_id}" and tea.structured_content["created"] is True

            hits = await s.call_tool("recall", {"query": "green tea", "k": 5})
            assert not hits.is_error
            top = hits.structured_content["hits"][0]
            assert top["memory"]["id"] == tea_id and top["rank"] == 1 and top["score"] > 0
            assert top["memory"]["session"] == "chat-1" and top["memory"]["source"] == "user"
            assert top["memory"]["event_time"] == 1_767_340_800.0
            assert f"#{tea_id}" in text(hits) and "green tea" in text(hits)
            # Filters: session, tags and the event time range each keep the tea memory out or in.
            for args, expected in [({"session": "chat-2"}, []), ({"tags": ["preference"]}, [tea_id]),
                                   ({"before": "2026-01-01"}, []), ({"after": "2026-01-01", "before": 1.8e9},
                                                                    [tea_id])]:
                found = await s.call_tool("recall", {"query": "green tea", **args})
                assert [h["memory"]["id"] for h in found.structured_content["hits"]] == expected, args

            got = await s.call_tool("get", {"id": tea_id})
            assert got.structured_content["text"] == "Alice drinks green tea every morning"
            assert got.structured_content["meta"] == {"mood": "calm"}
            before_update = time.time()

            updated = await s.call_tool("update", {"id": tea_id, "text": "Alice switched to black coffee",
                                                   "reason": "she said so"})
            assert not updated.is_error, text(updated)
            new_id = updated.structured_content["id"]
            assert updated.structured_content == {"id": new_id, "supersedes": tea_id}
            versions = (await s.call_tool("history", {"id": new_id})).structured_content["versions"]
            assert [v["id"] for v in versions] == [tea_id, new_id]
            assert versions[0]["superseded_by"] == new_id
            now = await s.call_tool("recall", {"query": "Alice morning drink"})
            assert [h["memory"]["id"] for h in now.structured_content["hits"]] == [new_id]
            then = await s.call_tool("recall", {"query": "Alice green tea", "as_of": before_update})
            assert [h["memory"]["id"] for h in then.structured_content["hits"]] == [tea_id]

            listed = await s.call_tool("list", {"limit": 1})
            assert [mem["id"] for mem in listed.structured_content["memories"]] == [other_id]
            assert listed.structured_content["next_cursor"] is not None
            rest = await s.call_tool("list", {"cursor": listed.structured_content["next_cursor"]})
            assert [mem["id"] for mem in rest.structured_content["memories"]] == [new_id]

            forgot = await s.call_tool("forget", {"ids": [other_id, 10**9]})
            assert forgot.structured_content == {"forgotten": [other_id], "missing": [10**9]}
            gone = await s.call_tool("recall", {"query": "deploy window Friday"})
            assert gone.structured_content["hits"] == []

            stats = await s.read_resource("memosd://stats")
            return stats.contents[0].text

    stats = run(body)
    assert '"name":"%s"' % ns in stats and '"memories":3' in stats and '"forgotten":1' in stats
    # The tools wrote through the daemon: a plain client of the same namespace sees the same store.
    with daemon.client(ns) as client:
        assert [mem.text for mem in client.list().memories] == ["Alice switched to black coffee"]


def test_entity_and_page_show_long_term_memory_with_provenance(daemon, ns):
    turns = [m.MemoryIn(text=f"Ana: the trail and the summit ridge, turn {t}", session="hike",
                        event_time=1_684_000_000.0 + t) for t in range(20)]
    turns[4] = m.MemoryIn(text="Ana: I met Quorvathine at the pottery studio yesterday", session="hike",
                          event_time=1_684_000_004.0)
    with daemon.client(ns) as client:
        ids = client.remember_many(turns).ids
    with daemon.admin() as admin:
        deadline = time.monotonic() + 60
        while admin.tiers(ns).backlog:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    async def body():
        async with stdio_session(*stdio_args(daemon, ns)) as s:
            profile = await s.call_tool("entity", {"name": "quorvathine"})
            page_id = profile.structured_content["pages"][0] if not profile.is_error else None
            page = await s.call_tool("page", {"memory": ids[4]})
            by_id = await s.call_tool("page", {"id": page_id})
            resource = await s.read_resource("memosd://entity/Quorvathine")
            unknown = await s.call_tool("entity", {"name": "Zebulon"})
            return profile, page, by_id, resource, unknown

    profile, page, by_id, resource, unknown = run(body)
    assert not profile.is_error, text(profile)
    assert profile.structured_content["mentions"] == [ids[4]]
    assert profile.structured_content["facts"] and all(ids[4] in f["sources"]
                                                       for f in profile.structured_content["facts"])
    assert "Quorvathine" in text(profile) and f"#{ids[4]}" in text(profile)
    assert ids[4] in page.structured_content["members"] and page.structured_content["consolidated"]
    assert "Quorvathine" in page.structured_content["entities"]
    # The same page by id and by member; heat decays between the two calls (rounded to 6 places).
    same, other = dict(by_id.structured_content), dict(page.structured_content)
    assert same.pop("heat") == pytest.approx(other.pop("heat"), abs=1e-4)
    assert same == other
    assert '"mentions":[%d]' % ids[4] in resource.contents[0].text
    assert_tool_error(unknown, "NOT_FOUND")


def test_bad_input_gets_coded_tool_errors_and_the_server_keeps_serving(daemon, ns):
    bad_calls = [
        ("recall", {"query": "x", "k": 10**9}, "INVALID_ARGUMENT"),   # over the daemon's max_k
        ("recall", {"query": "x", "k": 0}, "INVALID_ARGUMENT"),
        ("recall", {"query": "x", "k": "many"}, "INVALID_ARGUMENT"),
        ("recall", {"k": 3}, "INVALID_ARGUMENT"),                      # query missing
        ("recall", {"query": "x", "after": "last tuesday"}, "INVALID_ARGUMENT"),
        ("remember", {"text": "x" * 70_000}, "TOO_LARGE"),            # over max_text_bytes (64 KiB)
        ("remember", {"text": 42}, "INVALID_ARGUMENT"),
        ("remember", {"text": "ok", "tags": "not-a-list"}, "INVALID_ARGUMENT"),
        ("get", {"id": "seven"}, "INVALID_ARGUMENT"),
        ("get", {"id": 10**9}, "NOT_FOUND"),
        ("get", {"id": 2**70}, "INVALID_ARGUMENT"),
        ("history", {"id": 10**9}, "NOT_FOUND"),
        ("update", {"id": 10**9, "text": "new"}, "NOT_FOUND"),
        ("forget", {"ids": [10**9]}, "NOT_FOUND"),
        ("forget", {"ids": []}, "INVALID_ARGUMENT"),
        ("page", {}, "INVALID_ARGUMENT"),
        ("list", {"limit": -1}, "INVALID_ARGUMENT"),
        ("no_such_tool", {}, "UNKNOWN_OP"),
    ]

    async def body():
        async with stdio_session(*stdio_args(daemon, ns)) as s:
            kept = await s.call_tool("remember", {"text": "kept across every error"})
            for name, args, code in bad_calls:
                assert_tool_error(await s.call_tool(name, args), code)
                # Still serving, and still answering correctly, after each error.
                hits = await s.call_tool("recall", {"query": "kept across every error", "k": 1})
                assert hits.structured_content["hits"][0]["memory"]["id"] == kept.structured_content["id"]
            return kept.structured_content["id"]

    kept_id = run(body)
    with daemon.client(ns) as client:  # no failed call stored or changed anything
        assert [mem.id for mem in client.list(include_forgotten=True, include_superseded=True).memories] == [kept_id]


def test_an_invalid_namespace_is_a_tool_error_not_a_crash(daemon):
    async def body():
        async with stdio_session(*stdio_args(daemon, "no spaces/or slashes")) as s:
            first = await s.call_tool("remember", {"text": "nowhere to go"})
            second = await s.call_tool("recall", {"query": "nowhere"})
            tools = await s.list_tools()
            return first, second, tools

    first, second, tools = run(body)
    assert_tool_error(first, "INVALID_NAMESPACE")
    assert_tool_error(second, "INVALID_NAMESPACE")
    assert len(tools.tools) == len(TOOLS)


def test_two_servers_bound_to_two_namespaces_cannot_see_each_others_data(daemon, ns, other_ns):
    async def body():
        async with stdio_session(*stdio_args(daemon, ns)) as a, stdio_session(*stdio_args(daemon, other_ns)) as b:
            # Ids count per namespace: A's secret gets an id that B's namespace has not used.
            for filler in ("first note of a", "second note of a"):
                await a.call_tool("remember", {"text": filler})
            secret = await a.call_tool("remember", {"text": "the vault code is 4711", "session": "s"})
            secret_id = secret.structured_content["id"]
            await b.call_tool("remember", {"text": "b's own note about the vault"})
            seen_by_b = {
                "recall": await b.call_tool("recall", {"query": "vault code 4711", "k": 50}),
                "list": await b.call_tool("list", {"session": "s"}),
            }
            reach = {name: await b.call_tool(name, args) for name, args in [
                ("get", {"id": secret_id}), ("history", {"id": secret_id}),
                ("update", {"id": secret_id, "text": "overwritten by b"}), ("forget", {"ids": [secret_id]}),
                ("page", {"memory": secret_id})]}
            still = await a.call_tool("get", {"id": secret_id})
            return seen_by_b, reach, still

    seen_by_b, reach, still = run(body)
    assert all("4711" not in h["memory"]["text"] for h in seen_by_b["recall"].structured_content["hits"])
    assert seen_by_b["list"].structured_content["memories"] == []
    for name, result in reach.items():
        assert_tool_error(result, "NOT_FOUND")
        assert "4711" not in text(result)
    assert still.structured_content["text"] == "the vault code is 4711"
    assert still.structured_content["superseded_by"] is None and still.structured_content["forgotten_at"] is None


def test_without_an_endpoint_it_starts_a_daemon_on_the_defaults(tmp_path):
    runtime = tmp_path / "run"
    env = {"MEMOSD_RUNTIME_DIR": str(runtime), "MEMOSD_STORE_DATA_DIR": str(tmp_path / "data"),
           "MEMOSD_STORE_DURABLE": "false"}
    admin_endpoint = f"ipc://{runtime}/memosd-admin.sock"
    pid = None
    try:
        async def body():
            async with stdio_session("--namespace", "demo", env=env) as s:
                stored = await s.call_tool("remember", {"text": "remembered by a daemon started on demand"})
                found = await s.call_tool("recall", {"query": "started on demand"})
                return stored, found

        stored, found = run(body)
        assert not stored.is_error, text(stored)
        assert found.structured_content["hits"][0]["memory"]["id"] == stored.structured_content["id"]
        with AdminClient(admin_endpoint, timeout=5) as admin:
            status = admin.status()
            pid = status.pid
        # Detached: it outlives the MCP server that started it, on the default data dir.
        assert psutil.pid_exists(pid) and status.data_dir == str(tmp_path / "data")
    finally:
        if pid is None:
            try:
                with AdminClient(admin_endpoint, timeout=2, retries=0) as admin:
                    pid = admin.status().pid
            except Exception:
                pass
        if pid is not None:
            proc = psutil.Process(pid)
            proc.terminate()
            proc.wait(timeout=30)


def test_stdio_needs_a_namespace():
    env = {k: v for k, v in os.environ.items() if k != "MEMOSD_NAMESPACE"}
    done = subprocess.run([sys.executable, "-m", "memosd", "mcp", "--endpoint", "ipc:///nonexistent/x.sock"],
                          capture_output=True, text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "--namespace" in done.stderr


def test_the_shell_example_lists_tools_remembers_and_recalls(daemon, ns):
    example = Path(__file__).resolve().parents[2] / "examples" / "mcp_roundtrip.py"
    done = subprocess.run([sys.executable, str(example), "--endpoint", daemon.endpoint, "--namespace", ns],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tools: remember, recall, get, update, forget, history, list, entity, page" in done.stdout
    assert "remembered #1" in done.stdout and "Alice moved to Lisbon in May 2023" in done.stdout
    with daemon.client(ns) as client:
        assert [mem.text for mem in client.list().memories] == ["Alice moved to Lisbon in May 2023"]
