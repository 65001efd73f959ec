"""Fixtures: one real memosd daemon per module; each test gets its own store prefix, so tests
sharing the daemon never see each other's namespaces."""

from __future__ import annotations

import uuid

import pytest

from memosd.testing import DaemonProcess
from memosd_langgraph import MemosdStore


@pytest.fixture(scope="module")
def lg_daemon():
    proc = DaemonProcess()
    proc.start()
    yield proc
    alive = proc.proc is not None and proc.proc.poll() is None
    log = proc.log()
    proc.cleanup()
    assert alive, f"the daemon died during the module:\n{log[-4000:]}"


@pytest.fixture
def prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def store(lg_daemon, prefix):
    with MemosdStore(lg_daemon.endpoint, prefix=prefix) as s:
        yield s
