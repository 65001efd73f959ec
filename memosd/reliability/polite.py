"""The polite side of the fairness suite: raw DEALER clients with one request in flight each.

All clients are driven from one thread through a :class:`zmq.Poller`, as separate
agents on one host would be: each its own connection, each sending its next
request only when the previous reply arrived. A client updates and forgets only
memories it wrote itself, so no request can legitimately fail.
"""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field

import zmq

from memosd_client.protocol import codec
from memosd_client.protocol import messages as m

from .common import sentence

MIX = {"remember": 25, "recall": 45, "update": 15, "forget": 15}
"""Relative weight of each operation (remember and forget balanced so the store stays about the same size)."""
TIMEOUT_S = 30.0
"""A reply later than this counts as an error (it is also the deadline the clients send)."""


@dataclass
class PhaseTally:
    """What the polite clients saw in one phase."""

    seconds: float = 0.0
    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter = field(default_factory=collections.Counter)
    messages: list[str] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    """(sent at, latency) of every answered request, in answer order."""

    def all_latencies(self) -> list[float]:
        return [s for samples in self.latency.values() for s in samples]


@dataclass
class _Client:
    sock: zmq.Socket
    namespace: str
    rng: random.Random
    mine: list[int] = field(default_factory=list)
    """Current ids of memories this client wrote."""
    next_id: int = 0
    op: str = ""
    target: int = 0
    """The id an in-flight update or forget names."""
    sent_at: float = 0.0


class PoliteClients:
    """``count`` DEALER connections to ``endpoint``, spread over ``namespaces``."""

    def __init__(self, endpoint: str, namespaces: list[str], count: int, rng: random.Random):
        self.ctx = zmq.Context()
        self.clients: list[_Client] = []
        self.poller = zmq.Poller()
        for i in range(count):
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            self.poller.register(sock, zmq.POLLIN)
            self.clients.append(_Client(sock, namespaces[i % len(namespaces)], random.Random(rng.random())))
        self._by_sock = {c.sock: c for c in self.clients}

    def close(self) -> None:
        self.ctx.destroy(linger=0)

    def run(self, seconds: float) -> PhaseTally:
        """Keep every client busy for ``seconds``, then wait for the replies still due."""
        tally = PhaseTally()
        started = time.perf_counter()
        until = started + seconds
        waiting = set()
        for client in self.clients:
            self._send(client)
            waiting.add(client.sock)
        while waiting:
            now = time.perf_counter()
            if now > until + TIMEOUT_S:
                for sock in waiting:
                    client = self._by_sock[sock]
                    tally.errors[(client.op, "NO_REPLY")] += 1
                    self._note(tally, f"{client.op}: no reply in {TIMEOUT_S:g} s")
                break
            for sock, _ in self.poller.poll(timeout=100):
                client = self._by_sock[sock]
                self._receive(client, sock.recv(), tally)
                if time.perf_counter() < until:
                    self._send(client)
                else:
                    waiting.discard(sock)
        tally.seconds = time.perf_counter() - started
        # Late replies of a timed-out request must not be read as the next phase's.
        for client in self.clients:
            while client.sock.poll(0):
                client.sock.recv()
        return tally

    def _send(self, client: _Client) -> None:
        rng = client.rng
        op = rng.choices(list(MIX), list(MIX.values()))[0]
        if op in ("update", "forget") and not client.mine:
            op = "remember"
        if op == "remember":
            args = m.RememberArgs(items=[m.MemoryIn(text=sentence(rng, rng.randint(4, 40)), tags=["polite"])])
        elif op == "recall":
            args = m.RecallArgs(query=sentence(rng, rng.randint(1, 4)), k=10)
        elif op == "update":
            client.target = client.mine.pop(rng.randrange(len(client.mine)))
            args = m.UpdateArgs(id=client.target, text=sentence(rng, rng.randint(4, 40)))
        else:
            client.target = client.mine.pop(rng.randrange(len(client.mine)))
            args = m.IdsArgs(ids=[client.target])
        client.next_id += 1
        client.op = op
        client.sent_at = time.perf_counter()
        # The deadline both client libraries send from their timeout.
        client.sock.send(codec.encode_request(client.next_id, op, args, client.namespace,
                                              deadline=time.time() + TIMEOUT_S))

    def _receive(self, client: _Client, frame: bytes, tally: PhaseTally) -> None:
        elapsed = time.perf_counter() - client.sent_at
        reply = codec.decode_reply(frame)
        if reply.id != client.next_id or not reply.ok:
            code = reply.error.name if reply.error is not None else f"WRONG_ID_{reply.id}"
            tally.errors[(client.op, code)] += 1
            self._note(tally, f"{client.op}: {code}: {reply.error.message if reply.error else ''}")
            return
        tally.latency[client.op].append(elapsed)
        tally.timeline.append((client.sent_at, elapsed))
        if client.op == "remember":
            client.mine.extend(codec.reply_result("remember", reply).ids)
        elif client.op == "update":
            client.mine.append(codec.reply_result("update", reply).id)

    @staticmethod
    def _note(tally: PhaseTally, message: str) -> None:
        if len(tally.messages) < 10:
            tally.messages.append(message)
