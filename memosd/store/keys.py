"""Key layout of the LMDB sub-databases.

Every per-namespace key starts with the namespace's 4-byte id, so a namespace is
a key range: an operation builds its keys from the caller's namespace id and can
never address another namespace's records.
"""

from __future__ import annotations

import struct

_NS = struct.Struct(">I")
_NS_ID = struct.Struct(">IQ")
_ID = struct.Struct(">Q")


def ns_prefix(ns_id: int) -> bytes:
    return _NS.pack(ns_id)


def unpack_ns(prefix: bytes) -> int:
    """The namespace id of a 4-byte key prefix."""
    return _NS.unpack(prefix)[0]


def memory_key(ns_id: int, memory_id: int) -> bytes:
    return _NS_ID.pack(ns_id, memory_id)


def split_memory_key(key: bytes) -> tuple[int, int]:
    return _NS_ID.unpack(key)


def items_with_prefix(txn, db, prefix: bytes):
    """(key, value) of every record of ``db`` whose key starts with ``prefix``, in key order."""
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return
    for key, value in cursor:
        if not key.startswith(prefix):
            return
        yield key, value


def delete_prefix(txn, db, prefix: bytes) -> int:
    """Delete every key of ``db`` starting with ``prefix`` (a namespace's range); returns how many."""
    cursor = txn.cursor(db=db)
    count = 0
    if cursor.set_range(prefix):
        while cursor.key().startswith(prefix):
            count += 1
            if not cursor.delete():
                break
    return count


def idempotency_key(ns_id: int, key: str) -> bytes:
    return _NS.pack(ns_id) + key.encode("utf-8")


def pack_id(memory_id: int) -> bytes:
    return _ID.pack(memory_id)


def unpack_id(raw: bytes) -> int:
    return _ID.unpack(raw)[0]
