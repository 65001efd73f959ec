"""Fixtures shared by memosd's test suite: a real daemon per module and a namespace per test."""

from __future__ import annotations

import re
import uuid

import pytest

from memosd.testing import DaemonProcess

_NOT_NAMESPACE_CHARS = re.compile(r"[^A-Za-z0-9._:@-]")


def unique_namespace(label: str) -> str:
    """A valid namespace derived from ``label`` (e.g. a test name), unique across runs."""
    base = _NOT_NAMESPACE_CHARS.sub("-", label).strip("-._:@") or "ns"
    return f"{base[:100]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def daemon():
    """One daemon (ipc + tcp) shared by a module's tests; tests keep apart by namespace."""
    proc = DaemonProcess(tcp=True)
    proc.start()
    yield proc
    alive = proc.proc is not None and proc.proc.poll() is None
    log = proc.log()
    proc.cleanup()
    # A daemon that died under a module's tests is a failure even if each test blamed something else.
    assert alive, f"the shared daemon died during the module:\n{log[-4000:]}"


@pytest.fixture
def ns(request) -> str:
    """A namespace no other test uses."""
    return unique_namespace(request.node.name)


@pytest.fixture
def other_ns(request) -> str:
    """A second namespace for the same test (isolation, import targets)."""
    return unique_namespace(request.node.name + "-other")
