"""Which nodes are in the cluster: a JetStream key-value bucket of heartbeats, and a ping.

Each node puts its record (name, endpoint) into the bucket every third of the
lease time; the bucket's TTL drops a node that stopped. A node that still has a
record may have died a moment ago, so before sending a client to it, a node
asks it directly over core NATS request/reply.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ..logs import get_logger
from .naming import Names, token

log = get_logger("memosd.cluster")
PING_TIMEOUT_S = 0.25


class NodeRecord(msgspec.Struct, frozen=True):
    name: str
    endpoint: str
    started_at: float
    version: str


class Membership:
    """This node's heartbeat, and the live nodes as last read from the bucket."""

    def __init__(self, nc: Nats, js: JetStreamContext, names: Names, me: NodeRecord, ttl_s: float,
                 replicas: int):
        self.nc, self.js, self.names, self.me = nc, js, names, me
        self.ttl_s, self.replicas = ttl_s, replicas
        self.kv: KeyValue | None = None
        self.nodes: dict[str, NodeRecord] = {me.name: me}
        """The live nodes, refreshed with every heartbeat."""
        self.refreshed_at = 0.0
        self._sub = None

    async def start(self) -> None:
        self.kv = await self.js.create_key_value(bucket=self.names.node_bucket, ttl=self.ttl_s, history=1,
                                                 replicas=self.replicas)
        if self._sub is None:
            self._sub = await self.nc.subscribe(self.names.ping_subject(self.me.name), cb=self._pong)
        await self.beat()

    async def _pong(self, msg: Msg) -> None:
        await msg.respond(self.me.name.encode())

    async def beat(self) -> None:
        """Renew this node's record and re-read everyone's."""
        await self.kv.put(token(self.me.name), msgspec.msgpack.encode(self.me))
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read every node's record (the bucket is the view all nodes share)."""
        nodes = {self.me.name: self.me}
        try:
            keys = await self.kv.keys()
        except NatsError:  # nats-py raises when the bucket holds no key at all
            keys = []
        for key in keys:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value:
                record = msgspec.msgpack.decode(entry.value, type=NodeRecord)
                nodes[record.name] = record
        self.nodes = nodes
        self.refreshed_at = time.monotonic()

    async def answers(self, node: str) -> bool:
        """Whether ``node`` is there now (it answers its ping)."""
        if node == self.me.name:
            return True
        try:
            await self.nc.request(self.names.ping_subject(node), b"", timeout=PING_TIMEOUT_S)
        except (NoRespondersError, NatsTimeout, asyncio.TimeoutError):
            return False
        return True

    async def leave(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        try:
            await self.kv.delete(token(self.me.name))
        except NatsError as exc:
            log.warning("could not remove this node's record; it expires with the bucket's TTL", error=repr(exc))
