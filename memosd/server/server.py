"""The ZeroMQ front end: ROUTER sockets, frame validation, authorization and dispatch.

Every frame is validated once here. Anything wrong with it becomes a typed error
reply to the sender; the loop never dies on bad input. Every request passes the
one authorization check (:func:`memosd.security.grants.authorize`) before its
handler runs. Reads are answered inline (they are short and CPU-bound); writes
run as tasks so the writer can group them.

Sockets are plain (non-asyncio) pyzmq sockets driven by the loop's reader
callbacks on ZMQ_FD: this skips a future per message, which is most of the
per-request cost of zmq.asyncio. ZMQ_FD is edge-triggered, so after any send the
socket's events are checked again, and each callback handles a bounded number of
messages so the admin socket is never starved by a flood on an agent socket.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable

import msgpack
import msgspec
import zmq

from memosd_client.protocol import codec
from memosd_client.protocol.errors import (
    BusyError,
    ForbiddenError,
    InternalError,
    MalformedError,
    MemosdError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
)

from ..logs import bind_request, get_logger
from ..security.curve import ServerKeys
from ..security.grants import LOCAL, Principal, authorize
from ..security.keys import KeyStore
from .backpressure import Backpressure
from .fair_queue import FairQueue, Queued
from .handlers import Handler
from .listener import Listener, bind_listener
from .request_stats import RequestStats

log = get_logger("memosd.server")


class _IdProbe(msgspec.Struct):
    """Lenient view of a frame, used only to echo the request id in an error reply."""

    id: int = 0


_probe = msgspec.msgpack.Decoder(_IdProbe)


def _request_id(frame: bytes) -> int:
    """The request id of a frame that failed to decode, or 0 when none can be read."""
    try:
        return _probe.decode(frame).id
    except codec.DECODE_ERRORS:
        pass
    # A truncated or otherwise broken frame: read the envelope's leading keys one by one.
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(frame) + 1)
    unpacker.feed(frame)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "id":
                value = unpacker.unpack()
                return value if isinstance(value, int) and not isinstance(value, bool) else 0
            unpacker.skip()
    except Exception:  # whatever is wrong with the frame, an error reply must still go out
        pass
    return 0


_POLLIN = int(zmq.POLLIN)
"""A plain int: ``zmq.POLLIN`` is an enum flag, and ``&`` on one builds a new enum per call."""
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)


def _recv_message(sock: zmq.Socket) -> tuple[bytes, list[zmq.Frame]]:
    """One whole message from a ROUTER socket: the peer's identity, and the frames after it (as
    frames, not bytes: they carry the ZAP User-Id and Peer-Address that name the peer). Raises
    zmq.Again when none is waiting.

    Not ``recv_multipart``: it asks ``getsockopt(RCVMORE)`` after every frame, which pyzmq wraps
    in an enum; that and a Frame object for the identity were half the cost of taking a flood
    off the socket.
    """
    identity = sock.recv(_NOBLOCK)
    # ROUTER puts the identity before every message, so at least one frame follows; the rest of a
    # message is always there once its first frame is.
    parts = [sock.recv(_NOBLOCK, copy=False)]
    while parts[-1].more:
        parts.append(sock.recv(_NOBLOCK, copy=False))
    return identity, parts


class Server:
    """Serves the agent endpoints and the admin endpoint on one asyncio loop."""

    BATCH = 64
    """Requests served per reader callback before yielding to other sockets and tasks."""

    READ_BATCH = 1024
    """Messages read into the per-peer queues per reader callback (reading is cheap; serving is not)."""

    BUSY_STREAK_CUT_OFF = 256
    """BUSY replies in a row (none of its requests admitted between) after which a peer is cut off:
    it neither reads its replies nor waits the retry_after_s they give. Without this count a flood
    is cut off only once ZeroMQ's send queue to it fills (a thousand or more replies later), and
    its queued requests, computed meanwhile, are what slows everyone else."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        endpoints: Iterable[str],
        admin_endpoint: str | None,
        *,
        max_message_bytes: int,
        ipc_mode: int = 0o660,
        admin_ipc_mode: int = 0o600,
        metrics=None,
        backpressure: Backpressure | None = None,
        keys: KeyStore | None = None,
        curve: ServerKeys | None = None,
        tcp_principal: Principal | None = LOCAL,
        max_queued_per_client: int = 64,
        cut_off_s: float = 10.0,
    ):
        self.handlers = handlers
        self.metrics = metrics
        self.last_request_at = 0.0
        """time.perf_counter() of the latest request (background work backs off while requests flow)."""
        self.debug = False
        """Log every request (set from the log level; checked once per request, not per log call)."""
        self.endpoints = list(endpoints)
        self.admin_endpoint = admin_endpoint
        self.max_message_bytes = max_message_bytes
        self.ipc_mode = ipc_mode
        self.admin_ipc_mode = admin_ipc_mode
        self.backpressure = backpressure or Backpressure(max_inflight=1024, rate=0)
        self.keys = keys
        self.curve = curve
        self.tcp_principal = tcp_principal
        """Who a TCP client is when CURVE is off: anyone who can reach the port."""
        self.ctx = zmq.Context()
        self.listeners: list[Listener] = []
        self.stopping = False
        self.requests = 0
        self.errors = 0
        self.stats = RequestStats()
        self._inflight: set[asyncio.Task] = set()
        self.max_queued_per_client = max_queued_per_client
        self.cut_off_s = cut_off_s
        self._queues: dict[int, FairQueue] = {}
        self._cut_off: dict[bytes, float] = {}
        """Peers that left replies unread, and the time.monotonic() until which they are ignored."""
        self._busy_streak: dict[bytes, int] = {}
        """BUSY replies sent to each peer since one of its requests was last admitted."""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def bound(self) -> list[str]:
        return [listener.endpoint for listener in self.listeners]

    # ------------------------------------------------------------------ sockets

    def bind(self) -> None:
        for endpoint in self.endpoints:
            self._bind(endpoint, admin=False)
        if self.admin_endpoint:
            self._bind(self.admin_endpoint, admin=True)

    def _bind(self, endpoint: str, *, admin: bool) -> None:
        self.listeners.append(bind_listener(self.ctx, endpoint, admin=admin, max_message_bytes=self.max_message_bytes,
                                            ipc_mode=self.admin_ipc_mode if admin else self.ipc_mode,
                                            curve=self.curve))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for listener in self.listeners:
            self._loop.add_reader(listener.sock.getsockopt(zmq.FD), self._on_readable, listener)
            self._loop.call_soon(self._on_readable, listener)

    def requests_waiting(self) -> bool:
        """True while requests wait in the fair queues: the loop is behind (background work should yield)."""
        return any(self._queues.values())

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new requests and wait for in-flight ones to be answered."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        # Queued requests are still taken off their queues (and answered UNAVAILABLE or served).
        while (self._inflight or any(self._queues.values())) and time.monotonic() < deadline:
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            else:
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        for listener in self.listeners:
            if self._loop is not None:
                self._loop.remove_reader(listener.sock.getsockopt(zmq.FD))
            listener.sock.close(linger=1000)
        self.ctx.term()
        for listener in self.listeners:
            if listener.is_ipc:
                try:
                    os.unlink(listener.endpoint[len("ipc://"):])
                except OSError:
                    pass

    # ------------------------------------------------------------------ receiving

    def _on_readable(self, listener: Listener) -> None:
        listener.recheck_scheduled = False
        sock = listener.sock
        if sock.closed:
            return
        queue = self._queues.get(id(listener))
        if queue is None:
            queue = self._queues[id(listener)] = FairQueue()
        more = False
        dropped = 0
        for taken in range(self.READ_BATCH):
            # Reading ZMQ_EVENTS rearms the edge-triggered ZMQ_FD (EAGAIN alone leaves it unarmed, and
            # the loop then sleeps while messages wait). It is asked before the first two reads: most
            # calls find no message or one (a look after a reply, one request), and an EAGAIN costs
            # pyzmq an exception several times dearer than the look. Past two, a flood is being read:
            # it reads until EAGAIN and asks once at the end (at 2-3 us a look per message was most of
            # the cost of taking a flood off the socket).
            if taken < 2 and not sock.getsockopt(_EVENTS) & _POLLIN:
                break
            try:
                parts = _recv_message(sock)
            except zmq.Again:
                if not sock.getsockopt(_EVENTS) & _POLLIN:
                    break
                continue
            try:
                dropped += self._enqueue(listener, queue, *parts)
            except Exception:  # never let one request stop the loop
                log.exception("enqueue failed")
        else:
            more = True
        if dropped:  # counted once per batch: a flood is mostly these, and counting each costs
            self._count("cut_off_dropped", "unknown", dropped)
        for _ in range(self.BATCH):
            item = queue.pop()
            if item is None:
                break
            try:
                self._dispatch(listener, item[1].frames, item[1].principal)
            except Exception:  # never let one request stop the loop
                log.exception("dispatch failed")
        if more or queue:
            self._schedule_recheck(listener)

    def _enqueue(self, listener: Listener, queue: FairQueue, identity: bytes, parts: list[zmq.Frame]) -> int:
        """Queue one message (``parts``, after the peer's ``identity``) for its peer's turn, or refuse
        it at once (BUSY, or nothing for a peer that is cut off). Returns 1 when the message was
        dropped unanswered (peer cut off), else 0."""
        if self._cut_off:
            until = self._cut_off.get(identity)
            if until is not None:
                if time.monotonic() < until:
                    return 1
                del self._cut_off[identity]
        # Reads are served from the queue; writes stay counted while they wait for their commit.
        pending = queue.pending(identity) + self.backpressure.inflight.get(identity, 0)
        if pending >= self.max_queued_per_client and not listener.admin:
            streak = self._busy_streak.get(identity, 0) + 1
            if streak > self.BUSY_STREAK_CUT_OFF:
                self._busy_streak.pop(identity, None)
                self._cut(listener, identity)
                return 1
            self._busy_streak[identity] = streak
            if len(self._busy_streak) > 10_000:  # forget old streaks rather than grow without bound
                self._busy_streak = {identity: streak}
            payload = parts[-1].bytes
            self.errors += 1
            self._count("busy", "unknown")
            self._send(listener, identity, codec.encode_error(_request_id(payload[:4096]), BusyError(
                f"{pending} requests already queued or in flight from this client "
                f"(limit {self.max_queued_per_client}); read the replies before sending more",
                details={"retry_after_s": round(min(1.0, 0.001 * pending), 3)})))
            return 0
        if self._busy_streak:
            self._busy_streak.pop(identity, None)
        queue.push(identity, Queued(frames=[identity, *(part.bytes for part in parts)],
                                    principal=self._principal(listener, parts[-1])))
        return 0

    def _principal(self, listener: Listener, frame: zmq.Frame) -> Principal | None:
        """Who sent ``frame``: on CURVE the key store's entry for its public key (None when the key
        is unknown or revoked), on ipc the peer's Unix user (LOCAL for the daemon's own user and
        root, else the grants of ``unix:<user>``), on plain TCP ``tcp_principal``."""
        if listener.curve:
            return self._principal_for_key(frame.get("User-Id"))
        return listener.ipc_principal(frame, self.keys) if listener.is_ipc else self.tcp_principal

    def _principal_for_key(self, user_id: str | None) -> Principal | None:
        if not user_id or self.keys is None:
            return None
        return self.keys.lookup(user_id.encode())

    def _schedule_recheck(self, listener: Listener) -> None:
        if not listener.recheck_scheduled and self._loop is not None:
            listener.recheck_scheduled = True
            self._loop.call_soon(self._on_readable, listener)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, listener: Listener, frames: list[bytes], principal: Principal | None) -> None:
        started = time.perf_counter()
        self.requests += 1
        if not listener.admin:  # operators polling status are not traffic to make way for
            self.last_request_at = started
        identity = frames[0]
        if len(frames) != 2:
            payload = frames[-1] if len(frames) > 1 else b""
            self._send_error(listener, identity, _request_id(payload) if len(frames) > 1 else 0,
                             MalformedError(f"expected exactly one frame per request, got {len(frames) - 1}"),
                             "invalid", started)
            return
        payload = frames[1]
        if len(payload) > self.max_message_bytes:
            self._send_error(listener, identity, _request_id(payload[:4096]), TooLargeError(
                f"message of {len(payload)} bytes is over the limit of {self.max_message_bytes}",
                details={"limit": self.max_message_bytes}), "invalid", started)
            return
        request_id = 0
        op = "invalid"
        bind_request(None)
        try:
            env = codec.decode_envelope(payload)
            request_id = env.id
            op = env.op
            if env.deadline is not None and time.time() > env.deadline:
                # The client stopped waiting: computing the reply would only delay everyone else.
                self._count("deadline_dropped", op)
                return
            # Request context for every log line this request causes (tasks inherit it).
            bind_request({"request_id": request_id, "op": op, "namespace": env.ns[:128] if env.ns else None})
            if self.debug:
                log.debug("request", principal=principal.name if principal else None)
            if principal is None:
                raise UnauthorizedError("this client key is not (or no longer) authorized")
            handler = self.handlers[env.op]
            if handler.op.admin and not listener.admin:
                raise ForbiddenError(f"{env.op!r} is only served on the admin endpoint")
            if self.stopping and env.op not in ("hello", "status"):
                raise UnavailableError("the daemon is shutting down")
            args = codec.decode_args(env.op, env.args)
            authorize(principal, handler.op, env.ns, args)
            self.backpressure.admit(identity)
            if handler.is_async:
                self.backpressure.begin_write(identity)
                task = asyncio.create_task(self._run_async(listener, identity, request_id, handler, env.ns, args,
                                                           started))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                return
            result = handler.call(env.ns, args)
            reply = self._encode_result(request_id, result)
        except MemosdError as err:
            self._send_error(listener, identity, request_id or _request_id(payload), err, op, started)
            return
        except Exception as exc:
            log.exception("request failed")
            self._send_error(listener, identity, request_id, InternalError(f"internal error: {exc!r}"), op, started)
            return
        self._send(listener, identity, reply)
        self._observe(op, "ok", started)

    def _encode_result(self, request_id: int, result) -> bytes:
        """Encode a reply, refusing one over the message limit: a reply is buffered per peer until
        read, so an unbounded one would let a client that asks much and reads nothing grow the daemon."""
        reply = codec.encode_result(request_id, result)
        if len(reply) > self.max_message_bytes:
            raise TooLargeError(f"the reply would be {len(reply)} bytes, over the limit of "
                                f"{self.max_message_bytes}; ask for fewer or smaller results",
                                details={"limit": self.max_message_bytes, "reply_bytes": len(reply)})
        return reply

    async def _run_async(self, listener: Listener, identity: bytes, request_id: int, handler: Handler,
                         namespace: str | None, args, started: float) -> None:
        op = handler.op.name
        try:
            reply = self._encode_result(request_id, await handler.call(namespace, args))
        except MemosdError as err:
            self._send_error(listener, identity, request_id, err, op, started)
        except Exception as exc:
            log.exception("request failed")
            self._send_error(listener, identity, request_id, InternalError(f"internal error: {exc!r}"), op, started)
        else:
            self._send(listener, identity, reply)
            self._observe(op, "ok", started)
        finally:
            self.backpressure.end_write(identity)
        # A send outside the reader callback may have consumed the FD's edge: look again.
        self._schedule_recheck(listener)

    # ------------------------------------------------------------------ replying

    def _send_error(self, listener: Listener, identity: bytes, request_id: int, err: MemosdError, op: str,
                    started: float) -> None:
        self.errors += 1
        self._send(listener, identity, codec.encode_error(request_id, err))
        self._observe(op, err.code.name, started)

    def _count(self, event: str, op: str, n: int = 1) -> None:
        """Count ``n`` requests left unanswered, in status and in the metrics (outcome ``event``)."""
        self.stats.count(event, n)
        if self.metrics is not None:
            self.metrics.count(op, event, n)  # no latency: nothing was served

    def _observe(self, op: str, outcome: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.stats.record(op, outcome == "ok", seconds)
        if self.metrics is not None:
            self.metrics.observe(op, outcome, seconds)

    def _send(self, listener: Listener, identity: bytes, payload: bytes) -> None:
        try:
            # Two sends, not send_multipart: it checks every part and builds flag enums per call.
            listener.sock.send(identity, _SNDMORE_NOBLOCK)
            listener.sock.send(payload, _NOBLOCK)
            # A send can take in the messages that arrived meanwhile, and with them the edge of the
            # edge-triggered ZMQ_FD: without a look at the socket after it, a request sent while its
            # reply went out would wait until the next one arrived (a client awaiting several
            # replies then hangs). One look per loop turn, however many replies went out.
            self._schedule_recheck(listener)
        except zmq.Again:
            self._cut(listener, identity)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # a peer that went away: its reply has no reader
                log.warning("reply dropped", error=str(exc))

    def _cut(self, listener: Listener, identity: bytes) -> None:
        """Cut off a peer whose send queue is full, or that was answered BUSY
        :attr:`BUSY_STREAK_CUT_OFF` times in a row (it does not read its replies), as Redis drops a
        client past its output buffer limit: its queued requests are discarded and what it sends is
        ignored for ``cut_off_s``, or until it reconnects (a new connection has a new identity)."""
        if identity in self._cut_off:
            return
        self._cut_off[identity] = time.monotonic() + self.cut_off_s
        discarded = self._queues[id(listener)].discard(identity) if id(listener) in self._queues else 0
        self._count("peers_cut_off", "unknown")
        log.warning("client cut off: it leaves its replies unread", discarded=discarded, seconds=self.cut_off_s)
        if len(self._cut_off) > 10_000:  # forget expired entries rather than grow without bound
            now = time.monotonic()
            self._cut_off = {peer: until for peer, until in self._cut_off.items() if until > now}
