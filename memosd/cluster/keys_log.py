"""Client keys and grants, the same on every node: changed through the cluster's log.

A key created or revoked on any node is appended to the stream's keys subject;
every node follows that subject in order and applies each change to its own key
store, recording the sequence in the same LMDB transaction. The node that took
the request answers once it has applied that change itself, with the outcome the
log order gave it (two nodes creating the same name at once: the later one gets
CONFLICT everywhere). A node that starts applies what it missed before it serves.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import lmdb
import msgspec
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as StreamNotFound

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MemosdError, UnavailableError

from ..logs import get_logger
from ..security.keys import KeyStore
from ..store.environment import Environment
from .naming import Names

log = get_logger("memosd.cluster")
_APPLIED = b"keys_log_applied"
RECENT = 1024
"""Outcomes kept for changes applied before the node that appended them asked (the ack can come late)."""


class KeyChange(msgspec.Struct, frozen=True, array_like=True):
    name: str
    now: float
    created: m.KeyInfo | None = None
    """The prepared record (with its public key) for a create; None for a revoke."""


class KeyLog:
    """This node's side of the cluster-wide key store."""

    def __init__(self, js: JetStreamContext, names: Names, env: Environment, keys: KeyStore):
        self.js, self.names, self.env, self.keys = js, names, env, keys
        self.applied = 0
        self._recent: OrderedDict[int, m.KeyInfo | MemosdError] = OrderedDict()
        self._waiting: dict[int, asyncio.Future] = {}
        self._sub = None

    async def start(self) -> None:
        """Apply every change this store has not seen, then follow the subject."""
        try:
            head = (await self.js.get_last_msg(self.names.stream, self.names.keys_subject)).seq
        except StreamNotFound:
            head = 0
        if self._sub is None:
            with self.env.read() as txn:
                raw = txn.get(_APPLIED, db=self.env.dbs["meta"])
            self.applied = 0 if raw is None else msgspec.msgpack.decode(raw)
            self._sub = await self.js.subscribe(
                self.names.keys_subject, stream=self.names.stream, ordered_consumer=True, cb=self._on_change,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.applied + 1))
        if head > self.applied:
            await asyncio.wait_for(self._settled(head), 10.0)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def create(self, name: str, grants: list[m.Grant]) -> tuple[m.KeyInfo, str]:
        record, secret = self.keys.prepare(name, grants)
        outcome = await self._outcome(await self._append(KeyChange(record.name, record.created_at, record)))
        return outcome, secret

    async def revoke(self, name: str) -> m.KeyInfo:
        return await self._outcome(await self._append(KeyChange(name, time.time())))

    async def _append(self, change: KeyChange) -> int:
        try:
            ack = await self.js.publish(self.names.keys_subject, msgspec.msgpack.encode(change),
                                        stream=self.names.stream, timeout=5.0)
        except (NatsError, asyncio.TimeoutError) as exc:
            raise UnavailableError(f"the cluster log did not acknowledge the key change: {exc!r}",
                                   details={"retry_after_s": 0.5}) from None
        return ack.seq

    async def _settled(self, seq: int) -> m.KeyInfo | MemosdError | None:
        """The outcome of change ``seq`` on this node, once applied here (None: applied long ago)."""
        if seq <= self.applied:
            return self._recent.pop(seq, None)
        return await self._waiting.setdefault(seq, asyncio.get_running_loop().create_future())

    async def _outcome(self, seq: int) -> m.KeyInfo:
        outcome = await self._settled(seq)
        if isinstance(outcome, MemosdError):
            raise outcome
        if outcome is None:
            raise UnavailableError("the key change is in the log but its outcome here is no longer known; "
                                   "see `memosd keys list`")
        return outcome

    async def _on_change(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        change = msgspec.msgpack.decode(msg.data, type=KeyChange)

        def also(txn: lmdb.Transaction) -> None:
            txn.put(_APPLIED, msgspec.msgpack.encode(seq), db=self.env.dbs["meta"])

        try:
            if change.created is not None:
                outcome = await self.keys.store_created(change.created, also)
            else:
                outcome = await self.keys.revoke(change.name, change.now, also)
        except MemosdError as err:  # deterministic: every node refuses it the same way
            outcome = err
            log.info("key change refused", key=change.name, error=str(err))
        self.applied = max(self.applied, seq)
        future = self._waiting.pop(seq, None)
        if future is not None:
            if not future.done():
                future.set_result(outcome)
        else:
            self._recent[seq] = outcome
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
