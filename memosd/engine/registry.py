"""Namespace names <-> ids, and per-namespace id allocation, inside write transactions.

Both are read from the transaction itself, so a job in a group sees what earlier
jobs of the same group wrote (a namespace created or purged a moment before).
"""

from __future__ import annotations

import re
import time

import lmdb
import msgspec

from memosd_client.protocol.errors import ConflictError, InvalidNamespaceError

from ..store import keys
from ..store.environment import Environment

MAX_MEMORY_ID = (1 << 62) - 1
"""Ids stay well inside int64 (RAM columns, numpy) whatever an import brings."""

NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""No '/', '+' or '#': a namespace is one level of an MQTT topic and a ZeroMQ topic prefix."""


class NamespaceRecord(msgspec.Struct, frozen=True):
    id: int
    created_at: float


_record_decoder = msgspec.msgpack.Decoder(NamespaceRecord)


def check_namespace(name: str | None) -> str:
    """Validate a namespace name (1-128 chars: letters, digits, ``. _ : @ -``)."""
    if name is None or name == "":
        raise InvalidNamespaceError("this operation needs a namespace")
    if not NAMESPACE_PATTERN.fullmatch(name):
        raise InvalidNamespaceError(
            f"invalid namespace {name!r}: 1-128 characters of letters, digits and . _ : @ -, "
            "starting with a letter or digit"
        )
    return name


class Allocator:
    """Allocates namespace ids and memory ids. Used only by the writer thread."""

    def __init__(self, env: Environment):
        self.env = env
        self._next_memory_id: dict[int, int] = {}

    def find(self, txn: lmdb.Transaction, name: str) -> int | None:
        raw = txn.get(name.encode(), db=self.env.dbs["namespaces"])
        return None if raw is None else _record_decoder.decode(raw).id

    def ensure(self, txn: lmdb.Transaction, name: str) -> int:
        found = self.find(txn, name)
        if found is not None:
            return found
        meta = self.env.dbs["meta"]
        raw = txn.get(b"next_namespace_id", db=meta)
        ns_id = 1 if raw is None else msgspec.msgpack.decode(raw)
        txn.put(b"next_namespace_id", msgspec.msgpack.encode(ns_id + 1), db=meta)
        record = NamespaceRecord(id=ns_id, created_at=time.time())
        txn.put(name.encode(), msgspec.msgpack.encode(record), db=self.env.dbs["namespaces"])
        return ns_id

    def drop(self, txn: lmdb.Transaction, name: str, ns_id: int) -> None:
        txn.delete(name.encode(), db=self.env.dbs["namespaces"])
        txn.delete(self._high_water_key(ns_id), db=self.env.dbs["meta"])

    # Ids are never reused, even after a purge and a restart: the next id is kept durably in the
    # meta sub-database, in the same transaction as the write that used it.

    @staticmethod
    def _high_water_key(ns_id: int) -> bytes:
        return b"next_id:" + keys.ns_prefix(ns_id)

    def _next(self, txn: lmdb.Transaction, ns_id: int) -> int:
        nxt = self._next_memory_id.get(ns_id)
        if nxt is None:
            raw = txn.get(self._high_water_key(ns_id), db=self.env.dbs["meta"])
            stored = keys.unpack_id(raw) if raw is not None else 1
            nxt = max(stored, self._last_id(txn, ns_id) + 1)
        return nxt

    def _advance(self, txn: lmdb.Transaction, ns_id: int, nxt: int) -> None:
        self._next_memory_id[ns_id] = nxt
        txn.put(self._high_water_key(ns_id), keys.pack_id(nxt), db=self.env.dbs["meta"])

    def next_memory_id(self, txn: lmdb.Transaction, ns_id: int) -> int:
        nxt = self._next(txn, ns_id)
        if nxt > MAX_MEMORY_ID:
            raise ConflictError("this namespace has used every memory id")
        self._advance(txn, ns_id, nxt + 1)
        return nxt

    def note_id(self, ns_id: int, memory_id: int, txn: lmdb.Transaction) -> None:
        """Make sure ids allocated later are above an imported id."""
        self._advance(txn, ns_id, max(self._next(txn, ns_id), memory_id + 1))

    def _last_id(self, txn: lmdb.Transaction, ns_id: int) -> int:
        cursor = txn.cursor(db=self.env.dbs["memories"])
        if cursor.set_range(keys.ns_prefix(ns_id + 1)):
            moved = cursor.prev()
        else:
            moved = cursor.last()
        if moved:
            found_ns, memory_id = keys.split_memory_key(cursor.key())
            if found_ns == ns_id:
                return memory_id
        return 0

    @staticmethod
    def all_namespaces(txn: lmdb.Transaction, db) -> list[tuple[str, int]]:
        return [(k.decode(), _record_decoder.decode(v).id) for k, v in txn.cursor(db=db)]
