"""Helpers of the MCP tests: the SDK's own clients against real ``memosd mcp`` subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from memosd.testing import DaemonProcess
from memosd_client import CurveKeys
from memosd_client.protocol import messages as m

TOOLS = {"remember", "recall", "get", "update", "forget", "history", "list", "entity", "page"}


def run(fn, *args):
    """Run an async test body (each test owns its event loop, as an MCP client program would)."""
    return anyio.run(fn, *args)


@asynccontextmanager
async def stdio_session(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """An initialized SDK session with ``memosd mcp ARGS`` spawned over stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "memosd", "mcp", *args], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def stdio_args(daemon: DaemonProcess, namespace: str) -> list[str]:
    return ["--endpoint", daemon.endpoint, "--namespace", namespace, "--timeout", "5"]


@asynccontextmanager
async def http_session(url: str, token: str | None, namespace: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized SDK session over streamable HTTP with a bearer token and namespace header."""
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if namespace is not None:
        headers["X-Memosd-Namespace"] = namespace
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def assert_tool_error(result, code: str) -> None:
    """A tool error a user (or model) can act on: isError, the memosd code in text and structure."""
    assert result.is_error, text(result)
    assert text(result).startswith(f"[{code}]"), text(result)
    assert result.structured_content["code"] == code


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HttpServer:
    """A ``memosd mcp --http`` subprocess for a daemon (it finds the daemon's CURVE endpoint and
    public key through the admin endpoint)."""

    def __init__(self, daemon: DaemonProcess, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log_path = Path(daemon.sock_dir) / f"mcp-{self.port}.log"
        self.command = [sys.executable, "-m", "memosd", "mcp", "--http", f"127.0.0.1:{self.port}",
                        "--admin-endpoint", daemon.admin_endpoint, "--timeout", "5", *extra]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "HttpServer":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"memosd mcp --http did not listen:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def create_key(daemon: DaemonProcess, name: str, *grants: tuple[str, str]) -> CurveKeys:
    """A daemon CURVE key with grants (as ``memosd keys create`` makes it)."""
    with daemon.admin() as admin:
        created = admin.request("keys_create", m.KeysCreateArgs(
            name=name, grants=[m.Grant(namespace=ns, rights=r) for ns, r in grants]))
    return CurveKeys(created.public_key, created.secret_key, created.server_public_key)


def raw_post(url: str, headers: dict[str, str], body: dict) -> httpx2.Response:
    """One plain HTTP POST (what any client, or an attacker, can send)."""
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    return httpx2.post(url, headers={**base, **headers}, json=body, timeout=10)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "0"}}}
