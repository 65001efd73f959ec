"""What a namespace's log holds: operations to apply, and the fences of new owners.

An entry carries client write requests exactly as the protocol defines them
(op name and MessagePack args) with the time the owner gave them, so every node
that applies the entry computes the same records and ids. A fence is written by
a node when it takes a namespace over: any append made against the log as it
was before the fence fails, which is what keeps a paused old owner out.
"""

from __future__ import annotations

import msgspec


class LoggedOp(msgspec.Struct, frozen=True, array_like=True):
    op: str
    """A protocol operation that writes (remember, update, forget, unforget, purge, import)."""
    args: msgspec.Raw
    """Its arguments, MessagePack as on the wire (decoded with the protocol's own decoders)."""
    now: float
    """The time the owner stamped on it; the records' created_at/valid_from/forgotten_at come from it."""


class LogEntry(msgspec.Struct, frozen=True, array_like=True):
    node: str
    """The owner that appended it."""
    lease: int
    """The revision of the owner's lease when it appended (its fencing token)."""
    ops: list[LoggedOp] = []
    """Empty for a fence: the entry a new owner appends before it serves the namespace."""

    @property
    def is_fence(self) -> bool:
        return not self.ops


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LogEntry)


def encode(entry: LogEntry) -> bytes:
    return _encoder.encode(entry)


def decode(raw: bytes) -> LogEntry:
    return _decoder.decode(raw)


def logged(op: str, args: msgspec.Struct, now: float) -> LoggedOp:
    return LoggedOp(op, msgspec.Raw(_encoder.encode(args)), now)
