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
        recalls = _count(daemon, "recall")
        frame = codec.encode_request(7, "recall", m.RecallArgs(query="anything"), ns, deadline=time.time() - 1)
        sock.send(frame)
        # The request after it is answered, so the expired one was taken off the queue and not answered.
        sock.send(codec.encode_request(8, "recall", m.RecallArgs(query="anything"), ns, deadline=time.time() + 30))
        reply = _reply(sock)
        assert reply is not None and reply.id == 8 and reply.ok
        assert _reply(sock, 200) is None
        assert _dropped(daemon) == before + 1
        assert _count(daemon, "recall") == recalls + 1  # the expired recall was not computed
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


def _count(daemon, event: str) -> int:
    with AdminClient(daemon.admin_endpoint) as admin:
        ops = admin.status().ops
    return ops[event].count if event in ops else 0


def _flood(sock: zmq.Socket, ns: str, n: int) -> None:
    frame = codec.encode_request(1, "recall", m.RecallArgs(query="flood", k=100), ns)
    for _ in range(n):
        sock.send(frame)


def test_flooding_peer_gets_busy_while_another_client_is_served(daemon, ns):
    ctx = zmq.Context()
    try:
        flooder = _dealer(ctx, daemon.endpoint)
        _flood(flooder, ns, 2000)
        with Client(daemon.endpoint, timeout=10.0) as polite:
            assert polite.request("recall", m.RecallArgs(query="polite"), ns).hits == []
        busy = []
        while (reply := _reply(flooder, 2000)) is not None and len(busy) < 1:
            if not reply.ok:
                busy.append(reply.error)
        assert busy and busy[0].code == ErrorCode.BUSY
        assert busy[0].details["retry_after_s"] > 0
        assert _count(daemon, "busy") >= 1
    finally:
        ctx.destroy(linger=0)


def test_slow_reader_is_cut_off_while_others_are_served(daemon, ns):
    ctx = zmq.Context()
    try:
        before = _count(daemon, "peers_cut_off")
        reader = ctx.socket(zmq.DEALER)
        reader.setsockopt(zmq.LINGER, 0)
        reader.setsockopt(zmq.RCVHWM, 1)
        reader.setsockopt(zmq.RCVBUF, 4096)
        reader.connect(daemon.endpoint)
        # Far more replies than the daemon's send queue (1000) and the socket buffers hold.
        _flood(reader, ns, 30_000)
        with Client(daemon.endpoint, timeout=10.0) as polite:
            for _ in range(3):
                assert polite.request("recall", m.RecallArgs(query="polite"), ns).hits == []
        got = before
        for _ in range(50):
            got = _count(daemon, "peers_cut_off")
            if got > before:
                break
            time.sleep(0.1)
        assert got == before + 1
        with Client(daemon.endpoint, timeout=10.0) as polite:
            assert polite.request("recall", m.RecallArgs(query="after"), ns).hits == []
    finally:
        ctx.destroy(linger=0)


def test_the_queue_bound_comes_from_the_config(tmp_path):
    # With max_queued_per_client = 2, a burst of 50 unread recalls meets BUSY at once.
    from memosd.testing import DaemonProcess

    with DaemonProcess(tmp_path / "data", env={"MEMOSD_LIMITS_MAX_QUEUED_PER_CLIENT": "2"}) as daemon:
        ctx = zmq.Context()
        try:
            sock = _dealer(ctx, daemon.endpoint)
            _flood(sock, "cfg", 50)
            replies = [_reply(sock) for _ in range(50)]
            busy = [r for r in replies if r is not None and not r.ok and r.error.code == ErrorCode.BUSY]
            assert len(busy) >= 40
        finally:
            ctx.destroy(linger=0)


def test_a_flood_that_ignores_busy_is_cut_off_before_its_requests_are_computed(daemon, ns):
    # 5,000 recalls at once, none read: up to 64 are queued (max_queued_per_client), the next 256 are
    # answered BUSY, and the next one cuts the peer off, which discards its queue; the rest are dropped
    # unread. When the flood reaches the daemon in pieces, the daemon serves what it queued between
    # pieces and admits a few more, so it computes a small share of the flood: at most a few queues'
    # worth (ADMITTED), not 5,000.
    from memosd.server.server import Server

    total = 5000
    admitted = 5 * 64
    before = {event: _count(daemon, event) for event in ("busy", "peers_cut_off", "cut_off_dropped", "recall")}
    ctx = zmq.Context()
    try:
        flooder = _dealer(ctx, daemon.endpoint)
        _flood(flooder, ns, total)
        with Client(daemon.endpoint, timeout=10.0) as polite:
            assert polite.request("recall", m.RecallArgs(query="polite"), ns).hits == []
        delta = {}
        for _ in range(100):
            delta = {event: _count(daemon, event) - n for event, n in before.items()}
            if delta["busy"] + delta["cut_off_dropped"] >= total - admitted:
                break
            time.sleep(0.1)
        # A cut-off takes BUSY_STREAK_CUT_OFF refusals in a row (an admission between pieces restarts
        # the count); everything not computed was refused or dropped unread.
        assert delta["peers_cut_off"] == 1
        assert delta["busy"] >= Server.BUSY_STREAK_CUT_OFF
        assert delta["busy"] + delta["cut_off_dropped"] >= total - admitted
        assert delta["recall"] - 1 <= admitted  # the polite recall, and at most a few queues of the flood's
    finally:
        ctx.destroy(linger=0)
