"""`as_of` answers with what the store held at that time: versions valid then, and memories that
were not yet forgotten then."""

import time

from memosd.testing import DaemonProcess


def test_as_of_sees_versions_and_forgets_in_time_order(tmp_path):
    with DaemonProcess(tmp_path / "store") as daemon, daemon.client("asof") as client:
        first = client.remember("the meeting room is on floor three")
        time.sleep(0.05)
        before_update = time.time()
        time.sleep(0.05)
        second = client.update(first, "the meeting room is on floor five")
        time.sleep(0.05)
        before_forget = time.time()
        time.sleep(0.05)
        client.forget(second)
        after_forget = time.time()

        def texts(as_of=None):
            return [h.memory.text for h in client.recall("meeting room floor", k=5, as_of=as_of)]

        assert texts(before_update) == ["the meeting room is on floor three"]
        assert texts(before_forget) == ["the meeting room is on floor five"]
        assert texts(after_forget) == []
        assert texts() == []
        client.unforget(second)
        assert texts() == ["the meeting room is on floor five"]
