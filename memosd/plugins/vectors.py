"""Where dense vectors live in the store, and which encoder made them.

- ``vectors`` sub-database: ``memory_key(ns id, memory id)`` -> little-endian float32 bytes.
- ``meta`` sub-database: ``dense:<ns id>`` -> :class:`DenseRecord`, the encoder identity of the
  namespace's vectors and how far (re-)embedding got. A namespace's vectors are
  always all from the encoder its record names: starting a migration deletes
  them in the same transaction that rewrites the record.
- ``meta`` ``dense_encoder``: identity of the encoder last configured (informational).
"""

from __future__ import annotations

from collections.abc import Iterator

import lmdb
import msgspec
import numpy as np

from ..store import keys


class DenseRecord(msgspec.Struct, frozen=True):
    encoder: str
    """``name/version/dim`` of the encoder of every stored vector of the namespace."""
    cursor: int = 0
    """Migration: every memory with an id up to this one has been embedded."""
    complete: bool = True
    """False while a (re-)embedding migration is running; the dense channel stays off until True."""


_decode_record = msgspec.msgpack.Decoder(DenseRecord).decode
_encode = msgspec.msgpack.Encoder().encode


def record_key(ns_id: int) -> bytes:
    return b"dense:" + keys.ns_prefix(ns_id)


def get_record(txn: lmdb.Transaction, meta, ns_id: int) -> DenseRecord | None:
    raw = txn.get(record_key(ns_id), db=meta)
    return None if raw is None else _decode_record(raw)


def put_record(txn: lmdb.Transaction, meta, ns_id: int, record: DenseRecord) -> None:
    txn.put(record_key(ns_id), _encode(record), db=meta)


def delete_record(txn: lmdb.Transaction, meta, ns_id: int) -> None:
    txn.delete(record_key(ns_id), db=meta)


def put_vector(txn: lmdb.Transaction, db, ns_id: int, memory_id: int, vector: np.ndarray) -> None:
    txn.put(keys.memory_key(ns_id, memory_id), vector.astype("<f4", copy=False).tobytes(), db=db)


def delete_vector(txn: lmdb.Transaction, db, ns_id: int, memory_id: int) -> None:
    txn.delete(keys.memory_key(ns_id, memory_id), db=db)


def delete_namespace(txn: lmdb.Transaction, db, ns_id: int) -> int:
    """Delete every vector of a namespace; returns how many."""
    return keys.delete_prefix(txn, db, keys.ns_prefix(ns_id))


def iter_vectors(txn: lmdb.Transaction, db, ns_id: int, dim: int) -> Iterator[tuple[int, np.ndarray]]:
    """(memory id, vector) of a namespace in id order; values of the wrong size are skipped."""
    for key, raw in keys.items_with_prefix(txn, db, keys.ns_prefix(ns_id)):
        if len(raw) == 4 * dim:
            yield keys.split_memory_key(key)[1], np.frombuffer(raw, dtype="<f4")
