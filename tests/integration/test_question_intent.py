"""Recall reads what a question is about: "in June 2023" prefers what was said then or is about then,
"when ..." prefers turns that say a time, "what does Alice ..." prefers what Alice said. Through a real
daemon; with those terms off, the same store ranks by text alone (older first on ties), which is what
makes each case a real test."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from memosd.testing import DaemonProcess
from memosd_client import Client


def at(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, 12, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module", params=[True, False], ids=["intent-terms", "text-only"])
def daemon_and_mode(request):
    names = ("MEMOSD_TIERS_TIME_WEIGHT", "MEMOSD_TIERS_PERIOD_WEIGHT", "MEMOSD_TIERS_SPEAKER_WEIGHT")
    weights = dict(zip(names, ("0.3", "1.0", "0.3") if request.param else ("0", "0", "0")))
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


def test_a_question_naming_a_speaker_prefers_what_that_speaker_said(daemon_and_mode, ns):
    daemon, on = daemon_and_mode
    with Client(endpoint=daemon.endpoint, namespace=ns) as client:
        # Both name Alice and calm; Bob's is shorter, so by text alone it ranks first.
        client.remember("Bob: Alice, pottery calms me", session="s1")
        client.remember("Alice: I really love pottery, it calms me down every single evening", session="s2")
        top = _top(client, "What does Alice do to calm down?")
        assert top.startswith("Alice:") is on
        # Possessives name the speaker too; a name nobody speaks under changes nothing.
        assert _top(client, "What is Alice's way to calm down?").startswith("Alice:") is on
        assert _top(client, "What does Carol do to calm down, Alice?").startswith("Alice:") is on
        assert _top(client, "What does Carol do to calm down?").startswith("Bob:")
