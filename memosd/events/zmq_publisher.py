"""Events on a ZeroMQ PUB socket for local subscribers."""

from __future__ import annotations

import os

import msgspec
import zmq

from memosd_client.protocol.messages import Event


class ZmqEventPublisher:
    """Publishes ``[topic, msgpack(Event)]`` with topic ``<namespace>/<kind>``.

    PUB never blocks: past the high-water mark libzmq drops messages for slow
    subscribers, which is the contract of a PUB socket.
    """

    name = "zmq"

    def __init__(self, ctx: zmq.Context, endpoint: str, ipc_mode: int = 0o660):
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        if endpoint.startswith("ipc://"):
            os.makedirs(os.path.dirname(endpoint[len("ipc://"):]) or ".", exist_ok=True)
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.endpoint.startswith("ipc://"):
            os.chmod(self.endpoint[len("ipc://"):], ipc_mode)
        self._encode = msgspec.msgpack.Encoder().encode
        self.published = 0
        self.dropped = 0

    def offer(self, event: Event) -> None:
        topic = f"{event.namespace}/{event.kind}".encode()
        try:
            self.sock.send_multipart([topic, self._encode(event)], flags=zmq.NOBLOCK)
            self.published += 1
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self.sock.close(linger=0)
        if self.endpoint.startswith("ipc://"):
            try:
                os.unlink(self.endpoint[len("ipc://"):])
            except OSError:
                pass
