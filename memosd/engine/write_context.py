"""What a write is applying when it comes from a replicated log (cluster mode).

A write normally takes its time from the clock. When a node applies an
operation read from the cluster's log, every node must compute the same
records, so the time is the one logged with the operation, and the log
position is stored in the same LMDB transaction as the write: the store itself
records how far into the log it is, and a restart replays only what follows.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass

import lmdb
import msgspec


@dataclass(frozen=True, slots=True)
class LogPosition:
    """An operation's place in a namespace's log: the entry's sequence and the operation's index in it."""

    seq: int
    index: int

    def after(self, other: "LogPosition | None") -> bool:
        return other is None or (self.seq, self.index) > (other.seq, other.index)


@dataclass(frozen=True, slots=True)
class WriteContext:
    """The logged time of the operation and, where it is applied from a log, its position there."""

    namespace: str
    now: float
    position: LogPosition | None = None


_current: contextvars.ContextVar[WriteContext | None] = contextvars.ContextVar("memosd_write_context", default=None)


def write_clock() -> float:
    """The time a write stamps on its records: the logged one while applying a log, else now."""
    ctx = _current.get()
    return time.time() if ctx is None else ctx.now


def current() -> WriteContext | None:
    return _current.get()


def context_for(ctx: WriteContext) -> contextvars.Context:
    """A copy of the current context in which engine calls run as the logged operation ``ctx`` (for a task)."""
    context = contextvars.copy_context()
    context.run(_current.set, ctx)
    return context


def _key(namespace: str) -> bytes:
    # In the meta sub-database and keyed by name, so a purge of the whole namespace (which drops its
    # id and every record under it) keeps how far into its log this store is.
    return b"log_applied:" + namespace.encode()


def record_position(txn: lmdb.Transaction, meta_db, namespace: str, position: LogPosition) -> None:
    txn.put(_key(namespace), msgspec.msgpack.encode((position.seq, position.index)), db=meta_db)


def applied_position(txn: lmdb.Transaction, meta_db, namespace: str) -> LogPosition | None:
    """The last log position this store applied for ``namespace`` (None: nothing yet)."""
    raw = txn.get(_key(namespace), db=meta_db)
    if raw is None:
        return None
    seq, index = msgspec.msgpack.decode(raw)
    return LogPosition(seq, index)
