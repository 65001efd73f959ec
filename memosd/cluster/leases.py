"""Namespace leases in a JetStream key-value bucket: one owner at a time.

A lease is a key of the bucket whose value names the owner. The bucket's TTL
ends a lease its owner stopped renewing; compare-and-set on the key's revision
makes acquiring and renewing atomic. A node trusts its lease only until the
moment it sent its last successful renewal plus the TTL (on its monotonic
clock), so a node that was paused past that asks again before it serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .naming import Names, token


class LeaseValue(msgspec.Struct, frozen=True):
    node: str
    acquired_at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this node holds."""

    namespace: str
    epoch: int
    """The key's revision when this node acquired it: its fencing token in the log."""
    revision: int
    """The key's revision after the last renewal (what the next renewal compares against)."""
    valid_until: float
    """time.monotonic() until which the lease is certainly still ours."""

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a namespace's lease, as the bucket says now."""

    node: str
    revision: int


class Leases:
    """Acquire, renew, inspect and release namespace leases for one node."""

    def __init__(self, js: JetStreamContext, names: Names, node: str, ttl_s: float, replicas: int):
        self.js, self.names, self.node, self.ttl_s, self.replicas = js, names, node, ttl_s, replicas
        self.kv: KeyValue | None = None

    async def open(self) -> None:
        self.kv = await self.js.create_key_value(bucket=self.names.lease_bucket, ttl=self.ttl_s, history=1,
                                                 replicas=self.replicas)

    def _value(self) -> bytes:
        return msgspec.msgpack.encode(LeaseValue(self.node, time.time()))

    async def holder(self, namespace: str) -> Holder | None:
        try:
            entry = await self.kv.get(token(namespace))
        except KeyNotFoundError:  # never held, expired, or released (a delete marker)
            return None
        if entry.value is None or entry.operation not in (None, "PUT"):
            return None
        return Holder(msgspec.msgpack.decode(entry.value, type=LeaseValue).node, entry.revision)

    async def acquire(self, namespace: str) -> Lease | None:
        """Take a lease nobody holds (None: someone else got it first)."""
        sent = time.monotonic()
        try:
            revision = await self.kv.create(token(namespace), self._value())
        except KeyWrongLastSequenceError:
            return None
        return Lease(namespace, revision, revision, sent + self.ttl_s)

    async def adopt(self, namespace: str, holder: Holder) -> Lease | None:
        """Take over a lease the bucket says this node holds (a restart of the same node within the TTL)."""
        lease = await self.renew(Lease(namespace, holder.revision, holder.revision, 0.0))
        return None if lease is None else replace(lease, epoch=lease.revision)

    async def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease; None when it was lost (expired and taken, or released)."""
        sent = time.monotonic()
        try:
            revision = await self.kv.update(token(lease.namespace), self._value(), last=lease.revision)
        except KeyWrongLastSequenceError:
            return None
        return replace(lease, revision=revision, valid_until=sent + self.ttl_s)

    async def release(self, lease: Lease) -> None:
        """Give a lease up at once (a clean hand-over), if it is still this node's."""
        try:
            await self.kv.delete(token(lease.namespace), last=lease.revision)
        except KeyWrongLastSequenceError:
            pass
