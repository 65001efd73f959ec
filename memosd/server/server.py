"""The ZeroMQ front end: ROUTER sockets, frame validation and dispatch.

Every frame is validated once here. Anything wrong with it becomes a typed error
reply to the sender; the loop never dies on bad input. Reads are answered inline
(they are short and CPU-bound); writes run as tasks so the writer can group them.

Sockets are plain (non-asyncio) pyzmq sockets driven by the loop's reader
callbacks on ZMQ_FD: this skips a future per message, which is most of the
per-request cost of zmq.asyncio. ZMQ_FD is edge-triggered, so after any send the
socket's events are checked again, and each callback handles a bounded number of
messages so the admin socket is never starved by a flood on an agent socket.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Iterable

import numpy as np

import msgspec
import structlog
import zmq

from memosd_client.protocol import codec
from memosd_client.protocol.errors import (
    ForbiddenError,
    InternalError,
    MalformedError,
    MemosdError,
    TooLargeError,
    UnavailableError,
)

from ..logs import get_logger
from .handlers import Handler

log = get_logger("memosd.server")


class _IdProbe(msgspec.Struct):
    """Lenient view of a frame, used only to echo the request id in an error reply."""

    id: int = 0


_probe = msgspec.msgpack.Decoder(_IdProbe)


def _request_id(frame: bytes) -> int:
    try:
        return _probe.decode(frame).id
    except codec.DECODE_ERRORS:
        return 0


class Server:
    """Serves the agent endpoints and the admin endpoint on one asyncio loop."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        endpoints: Iterable[str],
        admin_endpoint: str | None,
        *,
        max_message_bytes: int,
        ipc_mode: int = 0o660,
        metrics=None,
    ):
        self.handlers = handlers
        self.metrics = metrics
        self.debug = False
        """Log every request (set from the log level; checked once per request, not per log call)."""
        self.endpoints = list(endpoints)
        self.admin_endpoint = admin_endpoint
        self.max_message_bytes = max_message_bytes
        self.ipc_mode = ipc_mode
        self.ctx = zmq.Context()
        self.sockets: list[tuple[zmq.Socket, bool]] = []
        self.stopping = False
        self.requests = 0
        self.errors = 0
        self._inflight: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recheck_scheduled: set[zmq.Socket] = set()
        self.bound: list[str] = []
        self.op_counts: collections.Counter[str] = collections.Counter()
        self.op_errors: collections.Counter[str] = collections.Counter()
        self.recent: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=2048))
        """Latencies of the most recent requests per operation, for status and `memosd top`."""

    # ------------------------------------------------------------------ sockets

    def bind(self) -> None:
        for endpoint in self.endpoints:
            self.sockets.append((self._bind(endpoint), False))
        if self.admin_endpoint:
            self.sockets.append((self._bind(self.admin_endpoint), True))

    def _bind(self, endpoint: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 1000)
        # Hard cap far above the configured limit: frames between the two get a TOO_LARGE reply,
        # frames above it make libzmq drop the connection before buffering them.
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes * 2 + (1 << 20))
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        if endpoint.startswith("ipc://"):
            path = endpoint[len("ipc://"):]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        sock.bind(endpoint)
        actual = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if actual.startswith("ipc://"):
            os.chmod(actual[len("ipc://"):], self.ipc_mode)
        self.bound.append(actual)
        return sock

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sock, admin in self.sockets:
            self._loop.add_reader(sock.getsockopt(zmq.FD), self._on_readable, sock, admin)
            self._loop.call_soon(self._on_readable, sock, admin)

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new requests and wait for in-flight ones to be answered."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            await asyncio.wait(set(self._inflight), timeout=max(0.0, deadline - time.monotonic()))

    async def close(self) -> None:
        for sock, _ in self.sockets:
            if self._loop is not None:
                self._loop.remove_reader(sock.getsockopt(zmq.FD))
            sock.close(linger=1000)
        self.ctx.term()
        for endpoint in self.bound:
            if endpoint.startswith("ipc://"):
                try:
                    os.unlink(endpoint[len("ipc://"):])
                except OSError:
                    pass

    # ------------------------------------------------------------------ dispatch

    BATCH = 64
    """Messages handled per reader callback before yielding to other sockets and tasks."""

    def _on_readable(self, sock: zmq.Socket, admin: bool) -> None:
        self._recheck_scheduled.discard(sock)
        if sock.closed:
            return
        for _ in range(self.BATCH):
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._dispatch(sock, frames, admin)
            except Exception:  # never let one request stop the loop
                log.exception("dispatch failed")
        self._schedule_recheck(sock, admin)

    def _schedule_recheck(self, sock: zmq.Socket, admin: bool) -> None:
        if sock not in self._recheck_scheduled and self._loop is not None:
            self._recheck_scheduled.add(sock)
            self._loop.call_soon(self._on_readable, sock, admin)

    def _dispatch(self, sock: zmq.Socket, frames: list[bytes], admin: bool) -> None:
        started = time.perf_counter()
        self.requests += 1
        identity = frames[0]
        if len(frames) != 2:
            payload = frames[-1] if len(frames) > 1 else b""
            self._send_error(sock, identity, _request_id(payload) if len(frames) > 1 else 0,
                             MalformedError(f"expected exactly one frame per request, got {len(frames) - 1}"),
                             "invalid", started)
            return
        payload = frames[1]
        if len(payload) > self.max_message_bytes:
            self._send_error(sock, identity, 0, TooLargeError(
                f"message of {len(payload)} bytes is over the limit of {self.max_message_bytes}",
                details={"limit": self.max_message_bytes}), "invalid", started)
            return
        request_id = 0
        op = "invalid"
        try:
            env = codec.decode_envelope(payload)
            request_id = env.id
            op = env.op
            # Request context for every log line this request causes (tasks inherit it).
            structlog.contextvars.bind_contextvars(request_id=request_id, op=op, namespace=env.ns)
            if self.debug:
                log.debug("request")
            handler = self.handlers[env.op]
            if handler.op.admin and not admin:
                raise ForbiddenError(f"{env.op!r} is only served on the admin endpoint")
            if self.stopping and env.op not in ("hello", "status"):
                raise UnavailableError("the daemon is shutting down")
            args = codec.decode_args(env.op, env.args)
            namespace = env.ns
            if handler.is_async:
                task = asyncio.create_task(
                    self._run_async(sock, admin, identity, request_id, handler, namespace, args, started)
                )
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                return
            result = handler.call(namespace, args)
        except MemosdError as err:
            self._send_error(sock, identity, request_id, err, op, started)
            return
        except Exception as exc:
            log.exception("request failed")
            self._send_error(sock, identity, request_id, InternalError(f"internal error: {exc!r}"), op, started)
            return
        self._send(sock, identity, codec.encode_result(request_id, result))
        self._observe(op, "ok", started)

    async def _run_async(self, sock, admin: bool, identity: bytes, request_id: int, handler: Handler,
                         namespace, args, started: float) -> None:
        op = handler.op.name
        try:
            result = await handler.call(namespace, args)
        except MemosdError as err:
            self._send_error(sock, identity, request_id, err, op, started)
        except Exception as exc:
            log.exception("request failed")
            self._send_error(sock, identity, request_id, InternalError(f"internal error: {exc!r}"), op, started)
        else:
            self._send(sock, identity, codec.encode_result(request_id, result))
            self._observe(op, "ok", started)
        # A send outside the reader callback may have consumed the FD's edge: look again.
        self._schedule_recheck(sock, admin)

    def _send_error(self, sock, identity: bytes, request_id: int, err: MemosdError, op: str,
                    started: float) -> None:
        self.errors += 1
        self._send(sock, identity, codec.encode_error(request_id, err))
        self._observe(op, err.code.name, started)

    def _observe(self, op: str, outcome: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.op_counts[op] += 1
        if outcome != "ok":
            self.op_errors[op] += 1
        self.recent[op].append(seconds)
        if self.metrics is not None:
            self.metrics.observe(op, outcome, seconds)

    def op_stats(self) -> dict[str, tuple[int, int, float, float]]:
        """Per operation: (count, errors, p50 ms, p99 ms over the recent window)."""
        out = {}
        for op, count in self.op_counts.items():
            window = np.fromiter(self.recent[op], dtype=np.float64)
            p50, p99 = np.percentile(window, [50, 99]) * 1000 if window.size else (0.0, 0.0)
            out[op] = (count, self.op_errors[op], round(float(p50), 3), round(float(p99), 3))
        return out

    @staticmethod
    def _send(sock: zmq.Socket, identity: bytes, payload: bytes) -> None:
        try:
            # ROUTER sends never block; a vanished peer's reply is dropped by libzmq.
            sock.send_multipart([identity, payload], flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("reply dropped: peer queue full")
        except zmq.ZMQError as exc:
            log.warning("reply dropped", error=str(exc))
