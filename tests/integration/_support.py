"""Helpers for the integration tests: one calling convention for both clients, raw sockets, digests."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import uuid
from typing import Any

import msgspec
import zmq

from memosd.testing import DaemonProcess
from memosd_client.protocol import PROTOCOL_VERSION, codec
from memosd_client.protocol import messages as m


def token() -> str:
    """A word that occurs in no other memory, so a recall for it has exactly one right answer."""
    return "zq" + uuid.uuid4().hex[:12]


class SyncClientDriver:
    """The sync Client with the same extras as :class:`AsyncClientDriver`."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def export_all(self, **kwargs) -> list[m.Memory]:
        return list(self._client.export(**kwargs))

    def close(self) -> None:
        self._client.close()


class AsyncClientDriver:
    """Runs an AsyncClient's calls to completion on a private loop, so one test body serves both clients."""

    def __init__(self, make):
        self._loop = asyncio.new_event_loop()

        async def build():  # the asyncio socket belongs to the loop it is created on
            return make()

        self._client = self._loop.run_until_complete(build())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            result = attr(*args, **kwargs)
            return self._loop.run_until_complete(result) if inspect.isawaitable(result) else result

        return call

    def export_all(self, **kwargs) -> list[m.Memory]:
        async def collect():
            return [mem async for mem in self._client.export(**kwargs)]

        return self._loop.run_until_complete(collect())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


def open_client(daemon: DaemonProcess, kind: str, transport: str, namespace: str | None, **kwargs):
    """A sync or async client of ``daemon`` over ipc or tcp, driven synchronously."""
    tcp = transport == "tcp"
    if kind == "sync":
        return SyncClientDriver(daemon.client(namespace, tcp=tcp, **kwargs))
    return AsyncClientDriver(lambda: daemon.async_client(namespace, tcp=tcp, **kwargs))


def export_digest(client, namespace: str | None = None) -> str:
    """A checksum of every stored version of a namespace (sync Client)."""
    memories = list(client.export(namespace=namespace))
    return hashlib.sha256(msgspec.msgpack.encode(memories)).hexdigest()


# --------------------------------------------------------------------------- raw frames


def envelope(op: str, args: Any = None, *, ns: str | None = None, request_id: int = 1,
             v: int = PROTOCOL_VERSION, **extra) -> bytes:
    """A request frame built by hand (``args`` as a plain value, so it can be wrong on purpose)."""
    env: dict[str, Any] = {"v": v, "id": request_id, "op": op}
    if ns is not None:
        env["ns"] = ns
    env["args"] = {} if args is None else args
    env.update(extra)
    return msgspec.msgpack.encode(env)


class RawPeer:
    """A bare DEALER socket, for sending frames no client library would produce."""

    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def reply(self, timeout: float = 10.0) -> m.Reply:
        """The next reply; fails the test when none comes (every frame must be answered)."""
        assert self.sock.poll(timeout * 1000), "the daemon sent no reply"
        parts = self.sock.recv_multipart()
        assert len(parts) == 1, f"a reply is one frame, got {len(parts)}"
        return codec.decode_reply(parts[0])

    def call(self, *frames: bytes) -> m.Reply:
        self.send(*frames)
        return self.reply()

    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
