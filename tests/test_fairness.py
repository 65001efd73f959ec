"""Fairness under hostile load: request deadlines, per-client queue bounds, slow-reader cut-off."""

from __future__ import annotations

import time

import msgspec
import zmq
from memosd_client import AdminClient, Client
from memosd_client.protocol import codec
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import ErrorCode

_enc = msgspec.msgpack.Encoder()


def _dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _reply(sock: zmq.Socket, timeout_ms: int = 5000) -> m.Reply | None:
    if not sock.poll(timeout_ms):
        return None
    return msgspec.msgpack.decode(sock.recv(), type=m.Reply)


def _dropped(daemon) -> int:
    with AdminClient(daemon.admin_endpoint) as admin:
        ops = admin.status().ops
    return ops["deadline_dropped"].count if "deadline_dropped" in ops else 0


def test_expired_deadline_is_dropped_unanswered(daemon, ns):
    ctx = zmq.Context()
    try:
        sock = _dealer(ctx, daemon.endpoint)
        before = _dropped(daemon)
        frame = codec.encode_request(7, "recall", m.RecallArgs(query="anything"), ns, deadline=time.time() - 1)
        sock.send(frame)
        # The request after it is answered, so the expired one was taken off the queue and not answered.
        sock.send(codec.encode_request(8, "recall", m.RecallArgs(query="anything"), ns, deadline=time.time() + 30))
        reply = _reply(sock)
        assert reply is not None and reply.id == 8 and reply.ok
        assert _reply(sock, 200) is None
        assert _dropped(daemon) == before + 1
    finally:
        ctx.destroy(linger=0)


def test_wrong_type_deadline_is_malformed(daemon, ns):
    ctx = zmq.Context()
    try:
        sock = _dealer(ctx, daemon.endpoint)
        sock.send(_enc.encode({"v": 1, "id": 9, "op": "recall", "ns": ns, "args": {"query": "x"},
                               "deadline": "tomorrow"}))
        reply = _reply(sock)
        assert reply is not None and not reply.ok and reply.error.code == ErrorCode.MALFORMED
        assert reply.id == 9
    finally:
        ctx.destroy(linger=0)


def test_client_sends_a_deadline_the_daemon_honours(daemon, ns):
    with Client(daemon.endpoint, timeout=5.0) as client:
        client.request("remember", m.RememberArgs(items=[m.MemoryIn(text="deadline in the future")]), ns)
        assert client.request("recall", m.RecallArgs(query="deadline"), ns).hits
