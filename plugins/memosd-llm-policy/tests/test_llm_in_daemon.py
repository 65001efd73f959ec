"""The llm policy inside a real memosd daemon.

No LLM runs on the machines these tests run on: the endpoint is a small local
HTTP server that speaks the chat-completions API (fake_chat_server.py) and
answers each page from the turn ids it finds in the prompt. The daemon, its
scheduler, the store and the fallback to the built-in policy are all real.
"""

from __future__ import annotations

import re
import time

from fake_chat_server import FakeChatServer, Reply, Seen, completion
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

TURNS = [m.MemoryIn(text=f"Ana: I repaired the {thing} on day {i} and it works again", session="s1",
                    event_time=1_684_000_000.0)
         for i, thing in enumerate(["bicycle", "radio", "clock", "kettle", "lamp", "fence", "boat", "piano"] * 3)]


class PageAnsweringServer(FakeChatServer):
    """Answers a consolidation request with one fact about the first turn of the page it was shown."""

    mode = "answer"

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
        if self.mode == "fail":
            return Reply(status=500, body={"error": {"message": "model is down"}})
        if self.mode == "hang":
            return Reply(hang=True)
        prompt = seen.body["messages"][-1]["content"]
        ids = [int(i) for i in re.findall(r"\[(\d+)\]", prompt)]
        return completion({"summary": f"llm summary of {len(ids)} turns", "keywords": ["repairs"],
                           "facts": [{"text": f"Ana repaired something (turn {ids[0]})", "sources": [ids[0]]}],
                           "entities": [{"name": "Ana", "sources": ids}]})


def _consolidated_pages(daemon: DaemonProcess, timeout: float = 60.0) -> tuple[m.NamespaceTiers, list[m.PageResult]]:
    deadline = time.monotonic() + timeout
    with daemon.admin() as admin:
        while True:
            result = admin.tiers("chat")
            (tiers,) = result.namespaces
            if result.backlog == 0 and tiers.consolidated_pages:
                break
            assert time.monotonic() < deadline, "pages were not consolidated"
            time.sleep(0.1)
    with daemon.client(namespace="chat") as client:
        pages = [client.page(i) for i in range(1, tiers.pages + 1)]
    return tiers, [p for p in pages if p.consolidated]


def _env(server: FakeChatServer, **extra: str) -> dict[str, str]:
    return {"MEMOSD_TIERS_POLICY": "llm", "MEMOSD_LLM_URL": server.url, "MEMOSD_LLM_TIMEOUT_S": "2",
            "MEMOSD_LLM_MAX_RETRIES": "0", "MEMOSD_TIERS_STM_CAPACITY": "4", **extra}


def test_pages_are_consolidated_by_the_llm(tmp_path):
    with PageAnsweringServer() as server, DaemonProcess(tmp_path / "store", env=_env(server)) as daemon:
        with daemon.client(namespace="chat") as client:
            ids = client.remember_many(TURNS).ids
        tiers, pages = _consolidated_pages(daemon)
        with daemon.admin() as admin:
            assert admin.tiers().policy == "llm/1"
            plugins = {p.name: p for p in admin.request("plugins", m.PluginsArgs()).plugins}
        assert plugins["llm"].status == "loaded"
        assert tiers.policy_failures == 0 and server.requests
        for page in pages:
            assert page.policy == "llm/1" and page.summary == f"llm summary of {len(page.members)} turns"
            (fact,) = page.facts
            assert fact.sources == [page.members[0]] and set(page.members) <= set(ids)
            assert page.entities[0].name == "Ana" and page.entities[0].sources == page.members


def test_a_failing_endpoint_falls_back_to_the_built_in_policy(tmp_path):
    with PageAnsweringServer() as server, DaemonProcess(tmp_path / "store", env=_env(server)) as daemon:
        server.mode = "fail"
        with daemon.client(namespace="chat") as client:
            client.remember_many(TURNS)
            tiers, pages = _consolidated_pages(daemon)
            assert client.recall("kettle", k=1)[0].memory.text.startswith("Ana: I repaired the kettle")
        assert tiers.policy_failures >= len(pages) > 0
        assert all(p.policy == "extractive/1" and p.summary for p in pages)
        assert "consolidation policy failed; built-in policy used" in daemon.log()


def test_a_hanging_endpoint_never_blocks_requests(tmp_path):
    with PageAnsweringServer() as server:
        server.mode = "hang"
        env = _env(server, MEMOSD_TIERS_POLICY_TIMEOUT_S="1", MEMOSD_LLM_TIMEOUT_S="30", MEMOSD_LLM_DEADLINE_S="60")
        with DaemonProcess(tmp_path / "store", env=env) as daemon, daemon.client(namespace="chat") as client:
            client.remember_many(TURNS)
            started = time.monotonic()
            while not server.requests:  # the policy is now stuck on the endpoint
                assert time.monotonic() - started < 30
                time.sleep(0.02)
            asked = time.monotonic()
            assert client.recall("lamp", k=1)[0].memory.text.startswith("Ana: I repaired the lamp")
            assert time.monotonic() - asked < 0.5
            tiers, pages = _consolidated_pages(daemon)
        assert tiers.policy_failures >= 1 and all(p.policy == "extractive/1" for p in pages)
