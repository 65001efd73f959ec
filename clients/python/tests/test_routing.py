"""The client's cluster routing decisions (memosd_client/routing.py), reply by reply."""

from __future__ import annotations

import time

import pytest

from memosd_client.protocol.errors import (
    InvalidArgumentError,
    MovedError,
    RequestTimeoutError,
    UnavailableError,
)
from memosd_client.routing import MAX_HOPS, Router


def moved(to: str) -> MovedError:
    return MovedError(f"served at {to}", details={"endpoint": to, "node": "x"})


def test_moved_is_followed_and_remembered_up_to_the_hop_limit():
    router = Router("ipc:///seed")
    attempt = router.start("ns", 10.0, safe=False)
    for i in range(MAX_HOPS):
        assert router.after(moved(f"ipc:///n{i}"), "ns", attempt) == 0.0
        assert attempt.endpoint == router.endpoint("ns") == f"ipc:///n{i}"
    with pytest.raises(MovedError):
        router.after(moved("ipc:///again"), "ns", attempt)
    assert router.endpoint("other") == "ipc:///seed"


def test_waits_on_unavailable_do_not_use_up_the_hops():
    router = Router("ipc:///seed")
    attempt = router.start("ns", 60.0, safe=True)
    for _ in range(3 * MAX_HOPS):
        assert router.after(UnavailableError("changing", details={"retry_after_s": 0.01}), "ns", attempt) == 0.01
    assert router.after(moved("ipc:///owner"), "ns", attempt) == 0.0
    assert attempt.endpoint == "ipc:///owner"


def test_only_safe_requests_wait_out_unavailable_and_never_past_the_budget():
    router = Router("ipc:///seed")
    busy = UnavailableError("changing", details={"retry_after_s": 0.5})
    with pytest.raises(UnavailableError):
        router.after(busy, "ns", router.start("ns", 60.0, safe=False))  # the log may already hold it
    late = router.start("ns", 60.0, safe=True)
    late.give_up = time.monotonic() + 0.1
    with pytest.raises(UnavailableError):
        router.after(busy, "ns", late)
    with pytest.raises(UnavailableError):  # no retry_after_s: a daemon shutting down, not a cluster move
        router.after(UnavailableError("stopping"), "ns", router.start("ns", 60.0, safe=True))


def test_a_silent_owner_is_forgotten_and_the_seed_asked_again():
    router = Router("ipc:///seed")
    attempt = router.start("ns", 60.0, safe=True)
    router.after(moved("ipc:///owner"), "ns", attempt)
    assert router.after(RequestTimeoutError("no reply"), "ns", attempt) == 0.0
    assert attempt.endpoint == "ipc:///seed" and router.endpoint("ns") == "ipc:///seed"
    with pytest.raises(RequestTimeoutError):  # the seed itself silent: nothing else to try
        router.after(RequestTimeoutError("no reply"), "ns", attempt)
    with pytest.raises(InvalidArgumentError):
        router.after(InvalidArgumentError("bad"), "ns", attempt)
