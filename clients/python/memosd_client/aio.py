"""asyncio client: many concurrent requests on one DEALER socket, matched by request id."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio

from .api import Api, Call
from .client import configure_socket, no_reply_error
from .curve import CurveKeys, default_keys
from .endpoints import default_endpoint
from .protocol import codec
from .protocol import messages as m
from .protocol.errors import ConnectionFailedError, MalformedError, MemosdError
from .routing import Router


class AsyncClient(Api):
    """Non-blocking memosd client; every operation method returns an awaitable.

    Safe for many concurrent tasks. Timeouts and retries behave as in
    :class:`memosd_client.Client`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        auto_idempotency: bool = True,
        curve: CurveKeys | None = None,
        context: zmq.asyncio.Context | None = None,
    ):
        self.endpoint = endpoint or default_endpoint()
        self.namespace = namespace
        self.timeout = timeout
        self.retries = retries
        self.auto_idempotency = auto_idempotency
        self._ctx = context or zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._curve = curve if curve is not None else default_keys()
        if self.endpoint.startswith("tcp://"):  # ipc access is controlled by file permissions
            configure_socket(self._sock, self._curve)
        else:
            configure_socket(self._sock)
        self._sock.connect(self.endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._closed = False
        self._router: Router[AsyncClient] = Router(self.endpoint)

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionFailedError("client closed"))
        self._sock.close(linger=0)
        for peer in self._router.peers.values():
            await peer.close()
        self._router.peers.clear()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _read_replies(self) -> None:
        try:
            while True:
                frame = await self._sock.recv()
                try:
                    reply = codec.decode_reply(frame)
                except MalformedError:
                    continue
                fut = self._pending.get(reply.id)
                if fut is None and reply.id == 0 and len(self._pending) == 1:
                    # A frame-level error the daemon could not attribute: with one request in
                    # flight it can only be that one's.
                    fut = next(iter(self._pending.values()))
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket broke: nobody waiting may hang on it
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionFailedError(f"reply reader failed: {exc!r}"))

    def _reset_socket(self) -> None:
        """Drop requests still queued for an absent daemon, so they cannot run after being reported failed."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._sock.close(linger=0)
        self._sock = self._ctx.socket(zmq.DEALER)
        if self.endpoint.startswith("tcp://"):
            configure_socket(self._sock, self._curve)
        else:
            configure_socket(self._sock)
        self._sock.connect(self.endpoint)

    async def request(self, op: str, args: m.Struct, namespace: str | None = None) -> Any:
        """Send one request and return its typed result (raises the reply's typed error); cluster
        redirects are followed as by :meth:`memosd_client.Client.request`."""
        if self._closed:
            raise ConnectionFailedError("client is closed")
        attempt = self._router.start(namespace, self.timeout * (1 + self.retries), codec.retry_safe(op, args))
        while True:
            try:
                return await self._router.client(attempt.endpoint, self, self._peer).request_here(op, args, namespace)
            except MemosdError as err:
                await asyncio.sleep(self._router.after(err, namespace, attempt))

    def _peer(self, endpoint: str) -> "AsyncClient":
        return AsyncClient(endpoint, timeout=self.timeout, retries=self.retries,
                           auto_idempotency=self.auto_idempotency, curve=self._curve, context=self._ctx)

    async def request_here(self, op: str, args: m.Struct, namespace: str | None = None) -> Any:
        """One request to this client's own endpoint, with its retries; no redirects followed."""
        if self._closed:
            raise ConnectionFailedError("client is closed")
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_replies())
        request_id = next(self._ids)
        attempts = 1 + (self.retries if codec.retry_safe(op, args) else 0)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            for _ in range(attempts):
                # Each attempt tells the daemon when this client stops waiting, so it can skip stale work.
                frame = codec.encode_request(request_id, op, args, namespace, deadline=time.time() + self.timeout)
                try:
                    await asyncio.wait_for(self._sock.send(frame), self.timeout)
                    reply = await asyncio.wait_for(asyncio.shield(fut), self.timeout)
                except asyncio.TimeoutError:
                    continue
                return codec.reply_result(op, reply)
        finally:
            self._pending.pop(request_id, None)
        if not self._pending:
            self._reset_socket()
        raise no_reply_error(self.endpoint, op, self.timeout, attempts)

    def _exec(self, call: Call):
        async def run():
            return call.unwrap(await self.request(call.op, call.args, call.namespace))

        return run()

    async def export(self, *, namespace: str | None = None, page: int = 500) -> AsyncIterator[m.Memory]:
        """Every stored version of the namespace, in id order."""
        cursor = None
        while True:
            result = await self.export_page(cursor=cursor, limit=page, namespace=namespace)
            for mem in result.memories:
                yield mem
            if result.next_cursor is None:
                return
            cursor = result.next_cursor
