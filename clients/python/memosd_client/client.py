"""Synchronous client: one DEALER socket, request ids, timeouts and safe retries."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from .api import Api, Call
from .curve import CurveKeys, default_keys
from .endpoints import default_endpoint
from .protocol import codec
from .protocol import messages as m
from .protocol.errors import ConnectionFailedError, MalformedError, MemosdError, RequestTimeoutError
from .routing import Router


def configure_socket(sock: zmq.Socket, curve: CurveKeys | None = None) -> None:
    """Options shared by both clients.

    ZMQ_IMMEDIATE stays off: with it, libzmq discards replies still unread when
    the daemon closes the connection (e.g. the reply to ``shutdown``).
    """
    if curve is not None:
        curve.apply(sock)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)


def no_reply_error(endpoint: str, op: str, timeout: float, attempts: int) -> MemosdError:
    """The error for a request that got no reply: CONNECTION when an ipc socket file is missing
    (nothing is listening), TIMEOUT otherwise."""
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        return ConnectionFailedError(f"no memosd is listening at {endpoint}")
    return RequestTimeoutError(f"no reply to {op!r} from {endpoint} within {timeout}s ({attempts} attempt(s))")


class Client(Api):
    """Blocking memosd client.

    ``timeout`` bounds each attempt (seconds); a request that is safe to resend
    (reads, and writes carrying idempotency keys, which this client adds unless
    ``auto_idempotency=False``) is retried ``retries`` times before
    :class:`RequestTimeoutError` is raised. ``curve`` (or ``$MEMOSD_KEY_FILE``)
    gives the keys for a TCP endpoint that requires CURVE. Not thread-safe: use
    one per thread.
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
        context: zmq.Context | None = None,
    ):
        self.endpoint = endpoint or default_endpoint()
        # CURVE is a TCP matter: ipc access is controlled by the socket file's permissions.
        self.curve = (curve if curve is not None else default_keys()) if self.endpoint.startswith("tcp://") else None
        self.namespace = namespace
        self.timeout = timeout
        self.retries = retries
        self.auto_idempotency = auto_idempotency
        self._ctx = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._sock: zmq.Socket | None = None
        self._router: Router[Client] = Router(self.endpoint)
        self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self._sock = self._ctx.socket(zmq.DEALER)
        configure_socket(self._sock, self.curve)
        self._sock.connect(self.endpoint)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        for peer in self._router.peers.values():
            peer.close()
        self._router.peers.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def request(self, op: str, args: m.Struct, namespace: str | None = None) -> Any:
        """Send one request and return its typed result (raises the reply's typed error).

        In a cluster, MOVED replies are followed to the namespace's owner and UNAVAILABLE replies that
        say when to retry are retried, within ``timeout`` times the attempts."""
        if self._sock is None:
            raise ConnectionFailedError("client is closed")
        attempt = self._router.start(namespace, self.timeout * (1 + self.retries), codec.retry_safe(op, args))
        while True:
            try:
                return self._router.client(attempt.endpoint, self, self._peer).request_here(op, args, namespace)
            except MemosdError as err:
                time.sleep(self._router.after(err, namespace, attempt))

    def _peer(self, endpoint: str) -> "Client":
        return Client(endpoint, timeout=self.timeout, retries=self.retries, auto_idempotency=self.auto_idempotency,
                      curve=self.curve, context=self._ctx)

    def request_here(self, op: str, args: m.Struct, namespace: str | None = None) -> Any:
        """One request to this client's own endpoint, with its retries; no redirects followed."""
        if self._sock is None:
            raise ConnectionFailedError("client is closed")
        request_id = next(self._ids)
        attempts = 1 + (self.retries if codec.retry_safe(op, args) else 0)
        for _ in range(attempts):
            deadline = time.monotonic() + self.timeout
            # Each attempt tells the daemon when this client stops waiting, so it can skip stale work.
            frame = codec.encode_request(request_id, op, args, namespace, deadline=time.time() + self.timeout)
            if not self._send(frame, deadline):
                continue
            reply = self._receive(request_id, deadline)
            if reply is not None:
                return codec.reply_result(op, reply)
        # The socket may still hold a late reply or a queued request; start clean.
        self._connect()
        raise no_reply_error(self.endpoint, op, self.timeout, attempts)

    def _send(self, frame: bytes, deadline: float) -> bool:
        while True:
            try:
                self._sock.send(frame, zmq.NOBLOCK)
                return True
            except zmq.Again:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._sock.poll(min(remaining, 0.05) * 1000, zmq.POLLOUT)

    def _receive(self, request_id: int, deadline: float) -> m.Reply | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._sock.poll(remaining * 1000, zmq.POLLIN):
                return None
            reply = codec.decode_reply(self._sock.recv())
            if reply.id == request_id:
                return reply
            if reply.id == 0 and not reply.ok:
                raise codec.reply_result("hello", reply)  # frame-level error the daemon could not attribute
            # otherwise a late reply to an earlier, timed-out attempt: skip it

    def _exec(self, call: Call) -> Any:
        return call.unwrap(self.request(call.op, call.args, call.namespace))

    # ------------------------------------------------------------------ streams

    def export(self, *, namespace: str | None = None, page: int = 500) -> Iterator[m.Memory]:
        """Every stored version of the namespace, in id order, fetched page by page."""
        cursor = None
        while True:
            result = self.export_page(cursor=cursor, limit=page, namespace=namespace)
            yield from result.memories
            if result.next_cursor is None:
                return
            cursor = result.next_cursor

    def import_(self, memories: Iterable[m.Memory], *, namespace: str | None = None, batch: int = 500,
                progress=None) -> m.ImportResult:
        """Import versions in batches; ``progress(n)`` is called after each batch with its size."""
        imported = skipped = 0
        chunk: list[m.Memory] = []

        def flush() -> None:
            nonlocal imported, skipped
            result = self.import_batch(chunk, namespace=namespace)
            imported += result.imported
            skipped += result.skipped
            if progress is not None:
                progress(len(chunk))
            chunk.clear()

        for mem in memories:
            chunk.append(mem)
            if len(chunk) >= batch:
                flush()
        if chunk:
            flush()
        return m.ImportResult(imported=imported, skipped=skipped)


class AdminClient(Client):
    """Client for the admin endpoint (status, shutdown); never queued behind agent traffic."""

    def __init__(self, endpoint: str | None = None, **kwargs):
        from .endpoints import default_admin_endpoint

        super().__init__(endpoint or default_admin_endpoint(), **kwargs)

    def status(self) -> m.StatusResult:
        return self.request("status", m.StatusArgs())

    def tiers(self, namespace: str | None = None) -> m.TiersResult:
        """Memory tiers of one namespace or of all: turns per tier, pages, residency, heat, faults."""
        return self.request("tiers", m.TiersArgs(namespace=namespace))

    def shutdown(self) -> m.ShutdownResult:
        return self.request("shutdown", m.ShutdownArgs())

    def snapshot(self) -> m.SnapshotResult:
        """Write the index snapshot now (the next start then brings forward only later writes)."""
        return self.request("snapshot", m.SnapshotArgs())


__all__ = ["AdminClient", "Client", "MalformedError"]
