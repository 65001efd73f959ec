"""Recall reads a question's time intent: "in June 2023" prefers what was said then or is about then,
"when ..." prefers turns that say a time. Through a real daemon; with the time terms off, the same
store ranks by text alone (older first on ties), which is what makes each case a real test."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from memosd.testing import DaemonProcess
from memosd_client import Client


def at(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, 12, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module", params=[True, False], ids=["time-terms", "text-only"])
def daemon_and_mode(request):
    weights = {"MEMOSD_TIERS_TIME_WEIGHT": "0.3", "MEMOSD_TIERS_PERIOD_WEIGHT": "1.0"} if request.param else {
        "MEMOSD_TIERS_TIME_WEIGHT": "0", "MEMOSD_TIERS_PERIOD_WEIGHT": "0"}
    proc = DaemonProcess(env=weights)
    proc.start()
    yield proc, request.param
    proc.cleanup()


def _top(client: Client, question: str) -> str:
    return client.recall(question, k=3)[0].memory.text


def test_a_named_period_prefers_what_was_said_in_it_or_is_about_it(daemon_and_mode, ns):
    daemon, on = daemon_and_mode
    with Client(endpoint=daemon.endpoint, namespace=ns) as client:
        client.remember("Alice: I went hiking at the lake with my cousin", event_time=at(2023, 9, 10), session="s3")
        client.remember("Alice: I went hiking at the lake with my sister", event_time=at(2023, 6, 10), session="s2")
        in_june = "Where did Alice go hiking in June 2023?"
        assert _top(client, in_june).endswith("my sister" if on else "my cousin")
        # Said in July, about June ("last month" from 5 July 2023).
        client.remember("Alice: last month I went hiking at the lake with my aunt", event_time=at(2023, 7, 5),
                        session="s4")
        top_two = {hit.memory.text for hit in client.recall(in_june, k=2)}
        if on:
            assert top_two == {"Alice: I went hiking at the lake with my sister",
                               "Alice: last month I went hiking at the lake with my aunt"}
        # A month named without a year matches that month of any year.
        assert _top(client, "Where did Alice go hiking in September?").endswith("my cousin")


def test_a_question_asking_when_prefers_turns_that_say_a_time(daemon_and_mode, ns):
    daemon, on = daemon_and_mode
    with Client(endpoint=daemon.endpoint, namespace=ns) as client:
        client.remember("Bob: we adopted a puppy, she is so sweet", event_time=at(2023, 3, 1), session="s1")
        client.remember("Bob: we adopted a puppy two weeks ago, she is sweet", event_time=at(2023, 3, 2),
                        session="s2")
        top = _top(client, "When did Bob adopt a puppy?")
        assert ("two weeks ago" in top) is on
        # A question that does not ask about time ranks by text alone either way.
        assert _top(client, "What did Bob adopt?") == "Bob: we adopted a puppy, she is so sweet"
