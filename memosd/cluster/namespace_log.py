"""One namespace's log on the node that owns it: append, then apply; catch up; fence.

The owner appends each write to the namespace's subject with JetStream's
expected-last-subject-sequence check, so an append made against a log that has
moved on (a new owner's fence, or an entry whose acknowledgement was lost) is
refused by JetStream itself. Only after the quorum's acknowledgement is the
write applied to LMDB, with its log position in the same transaction, and only
then answered. Writes that arrive while an append is in flight go out together
in the next entry, and their LMDB commits group on the writer thread.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError as StreamNotFound

from memosd_client.protocol import codec
from memosd_client.protocol.errors import (
    ErrorCode,
    MemosdError,
    MovedError,
    TooLargeError,
    UnavailableError,
)

from ..engine import write_context
from ..engine.write_context import LogPosition, WriteContext
from ..logs import get_logger
from ..store.environment import Environment
from . import entries
from .entries import LogEntry, LoggedOp
from .leases import Lease
from .naming import Names

log = get_logger("memosd.cluster")

WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for an append whose expected last subject sequence is not the log's."""
PUBLISH_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
"""Longest wait for the next entry while replaying (a healthy stream delivers thousands a second)."""
ENTRY_OVERHEAD = 4096
"""Bytes of a log message that are not operation arguments: headers, node name, lease, framing."""
OP_OVERHEAD = 64
"""Bytes of one logged operation besides its arguments (op name, time, framing)."""
NOT_DETERMINISTIC = (ErrorCode.INTERNAL, ErrorCode.STORAGE_FULL, ErrorCode.UNAVAILABLE, ErrorCode.BUSY)
"""Failures that depend on this node, not on the operation: every other node would apply it."""

ApplyOp = Callable[[str, str, Any], Awaitable[Any]]
"""(operation, namespace, args) -> result: the engine's handler for a write."""


@dataclass(slots=True)
class _Waiting:
    logged: LoggedOp
    args: Any
    future: asyncio.Future


class LostOwnership(MovedError):
    """Another node fenced the log: this node may no longer write the namespace."""


class NamespaceLog:
    """The owner's side of one namespace's log."""

    def __init__(self, js: JetStreamContext, names: Names, env: Environment, namespace: str, node: str,
                 apply_op: ApplyOp, max_entry_ops: int, max_entry_bytes: int = 1 << 20):
        self.js, self.names, self.env = js, names, env
        self.namespace, self.node = namespace, node
        self.subject = names.subject(namespace)
        self.apply_op = apply_op
        self.max_entry_ops = max_entry_ops
        self.max_entry_bytes = max_entry_bytes - ENTRY_OVERHEAD
        """What one log message may carry (NATS max_payload), less room for the entry's own fields."""
        self.lease: Lease | None = None
        self.last_seq = 0
        """The last sequence on this namespace's subject that this node has seen (applied or fence)."""
        self.fenced_at = 1 << 62
        """The sequence of this node's fence (entries after it are this node's own)."""
        self.ready = False
        """Caught up and fenced: writes may be appended."""
        self.lost = False
        self.replayed_entries = 0
        """Entries this node applied from the log (catch-up) rather than from its own appends: what a
        restart or a take-over had to replay."""
        self.appended_entries = 0
        self._waiting: list[_Waiting] = []
        self._drainer: asyncio.Task | None = None
        self._applying: set[asyncio.Task] = set()

    @property
    def pending(self) -> int:
        """Writes waiting for an append, or appended and being applied here."""
        return len(self._waiting) + len(self._applying)

    # ------------------------------------------------------------------ taking the namespace

    async def take_over(self, lease: Lease) -> None:
        """Apply what this store lacks of the log, then fence it: from here on, this node writes."""
        self.lease = lease
        fence = entries.encode(LogEntry(self.node, lease.epoch))
        while True:
            await self.catch_up()
            try:
                self.last_seq = self.fenced_at = await self._publish(fence)
            except _LogMoved:
                continue  # someone appended meanwhile (the old owner, before it saw our lease): again
            self.ready = True
            log.info("namespace taken over", namespace=self.namespace, lease=lease.epoch, log_seq=self.last_seq)
            return

    async def catch_up(self) -> int:
        """Apply every logged operation after this store's position; returns the entries it applied.

        Raises :class:`LostOwnership` when the log shows another owner after this node's fence."""
        await self._settle()
        with self.env.read() as txn:
            applied = write_context.applied_position(txn, self.env.dbs["meta"], self.namespace)
        count, pending, taken_by = 0, [], None
        try:
            # From the entry of the last applied operation: it may hold operations after it.
            async with aclosing(self._read(1 if applied is None else applied.seq)) as stream:
                async for seq, entry in stream:
                    if seq > self.fenced_at and (entry.node, entry.lease) != (self.node, self.lease.epoch):
                        taken_by = entry.node  # after this node's fence: only it may have written
                        break
                    fresh = [(index, op) for index, op in enumerate(entry.ops)
                             if LogPosition(seq, index).after(applied)]
                    for index, op in fresh:
                        pending.append(self._apply(op, codec.decode_args(op.op, op.args), LogPosition(seq, index)))
                    count += bool(fresh)
                    self.last_seq = max(self.last_seq, seq)
                    if len(pending) >= 256:
                        await self._finish(pending)
                        pending = []
        except (NatsError, asyncio.TimeoutError) as exc:
            raise UnavailableError(f"the cluster log could not be read: {exc!r}",
                                   details={"retry_after_s": 0.5}) from None
        finally:
            await self._finish(pending)
        self.replayed_entries += count
        if taken_by is not None:
            self.ready = False
            self.lost = True
            raise LostOwnership(f"namespace {self.namespace!r} was taken over by node {taken_by!r}",
                                details={"node": taken_by})
        return count

    async def _read(self, start: int) -> AsyncIterator[tuple[int, LogEntry]]:
        """The namespace's entries from sequence ``start`` to the subject's last one as of now, streamed
        by an ordered consumer (one request per entry would make replaying a long history slow)."""
        try:
            head = (await self.js.get_last_msg(self.names.stream, self.subject)).seq
        except StreamNotFound:
            return
        if head < start:
            return
        sub = await self.js.subscribe(self.subject, stream=self.names.stream, ordered_consumer=True,
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                                            opt_start_seq=start))
        try:
            while True:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
                seq = msg.metadata.sequence.stream
                yield seq, entries.decode(msg.data)
                if seq >= head:
                    return
        finally:
            await sub.unsubscribe()

    async def _finish(self, tasks: list[asyncio.Task]) -> None:
        for task in tasks:
            try:
                await task
            except MemosdError as err:
                if err.code in NOT_DETERMINISTIC:
                    raise UnavailableError(f"replaying the log failed on this node: {err}",
                                           details={"retry_after_s": 1.0}) from None
                # The owner got the same error when it applied the operation: nothing to apply.

    # ------------------------------------------------------------------ writing

    async def write(self, op: str, args: Any) -> Any:
        """Append one write, apply it once the log acknowledged it, and return its result."""
        if not self.ready:
            raise UnavailableError(f"namespace {self.namespace!r} is changing owner; retry",
                                   details={"retry_after_s": 0.2})
        logged = entries.logged(op, args, write_context.write_clock())
        if len(logged.args) > self.max_entry_bytes:
            raise TooLargeError(f"this {op} is {len(logged.args)} bytes in the cluster log, over the "
                                f"{self.max_entry_bytes} a log entry can carry (the NATS servers' max_payload); "
                                "send it in smaller batches", details={"limit": self.max_entry_bytes})
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(logged, args, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                entry = LogEntry(self.node, self.lease.epoch, [item.logged for item in batch])
                try:
                    seq = await self._append(entries.encode(entry))
                except MemosdError as err:
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(err)
                    continue
                self.appended_entries += 1
                for index, item in enumerate(batch):
                    task = self._apply(item.logged, item.args, LogPosition(seq, index))
                    task.add_done_callback(_into(item.future))
        finally:
            self._drainer = None

    def _next_batch(self) -> list[_Waiting]:
        """The waiting writes that fit one entry: up to ``max_entry_ops``, and ``max_entry_bytes`` together."""
        size, count = 0, 0
        for item in self._waiting[: self.max_entry_ops]:
            size += len(item.logged.args) + OP_OVERHEAD
            if count and size > self.max_entry_bytes:
                break
            count += 1
        batch = self._waiting[:count]
        del self._waiting[:count]
        return batch

    def _apply(self, logged: LoggedOp, args: Any, position: LogPosition) -> asyncio.Task:
        """Run the engine's write as the logged operation; tasks are made in log order, and each reaches
        the writer thread's queue in its first step, so LMDB commits them in log order."""
        ctx = write_context.context_for(WriteContext(self.namespace, logged.now, position))
        task = asyncio.get_running_loop().create_task(self.apply_op(logged.op, self.namespace, args), context=ctx)
        self._applying.add(task)
        task.add_done_callback(self._applied)
        return task

    def _applied(self, task: asyncio.Task) -> None:
        self._applying.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None and (not isinstance(err, MemosdError) or err.code in NOT_DETERMINISTIC):
            # The log has it and this store does not: stop writing until a catch-up has applied it.
            log.error("a logged write failed to apply here; the namespace stops until it is replayed",
                      namespace=self.namespace, error=repr(err))
            self.ready = False

    async def _settle(self) -> None:
        """Wait for the applies in flight, so the store's position is final before it is read."""
        if self._applying:
            await asyncio.gather(*list(self._applying), return_exceptions=True)

    async def _append(self, data: bytes) -> int:
        while True:
            try:
                seq = await self._publish(data)
            except _LogMoved:
                # An entry this node has not seen: its own whose acknowledgement was lost, or another
                # owner's fence. Apply what is there; a fence not ours ends this node's ownership.
                await self.catch_up()
                if not self.ready:
                    raise UnavailableError(f"namespace {self.namespace!r} is not served here now; retry",
                                           details={"retry_after_s": 0.2}) from None
                continue
            self.last_seq = seq
            return seq

    async def _publish(self, data: bytes) -> int:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(self.last_seq)}
        try:
            ack = await self.js.publish(self.subject, data, timeout=PUBLISH_TIMEOUT_S, stream=self.names.stream,
                                        headers=headers)
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise _LogMoved() from None
            raise UnavailableError(f"the cluster log refused the write: {exc.description}",
                                   details={"retry_after_s": 0.5}) from None
        except (NatsError, asyncio.TimeoutError) as exc:
            # Not acknowledged: it may or may not be in the log. Either way the client was not told it
            # is stored; a retry with the same idempotency key cannot store it twice.
            raise UnavailableError(f"the cluster log did not acknowledge the write: {exc!r}",
                                   details={"retry_after_s": 0.5}) from None
        return ack.seq

    async def stop(self) -> None:
        """Stop taking writes; the ones already appended finish applying."""
        self.ready = False
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
        await self._settle()


class _LogMoved(Exception):
    """The append's expected last sequence is not the log's."""


def _into(future: asyncio.Future) -> Callable[[asyncio.Task], None]:
    def done(task: asyncio.Task) -> None:
        if future.done():
            return
        if task.cancelled():
            future.set_exception(UnavailableError("the write was cancelled", details={"retry_after_s": 0.2}))
        elif task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())
    return done
