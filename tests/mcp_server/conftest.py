"""Fixtures of the MCP tests (helpers are in mcp_support.py)."""

from __future__ import annotations

import pytest

from memosd.testing import DaemonProcess


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A daemon with CURVE on its TCP endpoint (ipc stays open to local clients)."""
    with DaemonProcess(tmp_path_factory.mktemp("mcp-sec") / "store", tcp=True,
                       env={"MEMOSD_SECURITY_CURVE": "true"}) as daemon:
        yield daemon
