"""Reading and writing stored versions inside LMDB transactions, for the engine's operations."""

from __future__ import annotations

from collections.abc import Iterable

import lmdb
import msgspec

from memosd_client.protocol import messages as m

from ..store import keys
from ..store.environment import Environment

_memory_decoder = msgspec.msgpack.Decoder(m.Memory)
_encode = msgspec.msgpack.Encoder().encode
MAX_VERSIONS = 100_000
"""A lineage longer than this is treated as broken links, never followed further."""


def decode_memory(raw: bytes) -> m.Memory:
    return _memory_decoder.decode(raw)


def encode_memory(mem: m.Memory) -> bytes:
    return _encode(mem)


class Records:
    """Mixin for the engine: stored versions and idempotency keys of one namespace id."""

    env: Environment
    _memories: object
    _idem: object

    def _read(self, ns_id: int, ids: Iterable[int]) -> dict[int, m.Memory]:
        found: dict[int, m.Memory] = {}
        with self.env.read() as txn:
            for memory_id in ids:
                raw = txn.get(keys.memory_key(ns_id, memory_id), db=self._memories)
                if raw is not None:
                    found[memory_id] = decode_memory(raw)
        return found

    def _load(self, txn: lmdb.Transaction, ns_id: int, memory_id: int) -> m.Memory | None:
        raw = txn.get(keys.memory_key(ns_id, memory_id), db=self._memories)
        return None if raw is None else decode_memory(raw)

    def _store(self, txn: lmdb.Transaction, ns_id: int, mem: m.Memory) -> None:
        txn.put(keys.memory_key(ns_id, mem.id), encode_memory(mem), db=self._memories)

    def _idem_lookup(self, txn: lmdb.Transaction, ns_id: int, key: str | None) -> int | None:
        if key is None:
            return None
        raw = txn.get(keys.idempotency_key(ns_id, key), db=self._idem)
        return None if raw is None else keys.unpack_id(raw)

    def _idem_store(self, txn: lmdb.Transaction, ns_id: int, key: str | None, memory_id: int) -> None:
        if key is not None:
            txn.put(keys.idempotency_key(ns_id, key), keys.pack_id(memory_id), db=self._idem)

    def _lineage(self, txn: lmdb.Transaction, ns_id: int, memory_id: int) -> list[m.Memory]:
        """Every version linked to ``memory_id``, oldest first.

        Links come from the store, and imports can bring arbitrary ones: a version seen twice (a
        cycle) or a chain beyond MAX_VERSIONS ends the walk instead of looping.
        """
        mem = self._load(txn, ns_id, memory_id)
        if mem is None:
            return []
        seen = {mem.id}
        earlier = self._follow(txn, ns_id, mem, "supersedes", seen)
        return earlier[::-1] + [mem] + self._follow(txn, ns_id, mem, "superseded_by", seen)

    def _follow(self, txn: lmdb.Transaction, ns_id: int, start: m.Memory, link: str, seen: set[int]) -> list[m.Memory]:
        """Versions reached from ``start`` along ``link`` (supersedes or superseded_by), nearest first."""
        found: list[m.Memory] = []
        current = start
        while (nxt := getattr(current, link)) is not None and nxt not in seen and len(seen) < MAX_VERSIONS:
            current = self._load(txn, ns_id, nxt)
            if current is None:
                break
            seen.add(current.id)
            found.append(current)
        return found
