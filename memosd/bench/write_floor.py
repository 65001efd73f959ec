"""The floor of the store for writes, measured in the same run as memosd's writes.

A bare LMDB writer in the benchmark's own process writes the same records that
memosd stores for a remember (the encoded memory under its key, plus the
idempotency entry when there is one) with the same durability: one fsync per
commit, in the same kind of temporary directory. It does nothing else: no socket,
no validation, no indexing. So ``memosd / floor`` for writes is what the daemon
costs on top of the store, as ``memosd / floor`` for recall is what it costs on
top of the transport.

Each write test has its floor: one record per commit for sequential singles; the
batch per commit for batches; and ``concurrency`` records per commit for singles
in flight, which is what a perfect group commit would make of them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb

from memosd_client.protocol import messages as m

from ..engine.records import encode_memory
from ..store import keys
from .latency import Timed
from .workload import Workload

_NS_ID = 1
_MAP_BYTES = 8 << 30


class StoreFloor:
    """A temporary LMDB environment opened like memosd's store (``sync`` unless ``no_fsync``)."""

    def __init__(self, *, no_fsync: bool = False, store_dir: str | None = None):
        self._dir = Path(tempfile.mkdtemp(prefix="memosd-write-floor-", dir=store_dir))
        # The options of memosd's own environment (store/environment.py) that bear on a commit's cost.
        self._env = lmdb.open(str(self._dir), map_size=_MAP_BYTES, max_dbs=4, subdir=True, sync=not no_fsync,
                              metasync=not no_fsync, readahead=False)
        self._memories = self._env.open_db(b"memories")
        self._idem = self._env.open_db(b"idempotency")
        self._next_id = 1

    def close(self) -> None:
        """Close the environment and delete its directory."""
        self._env.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def write(self, workload: Workload, count: int, per_commit: int) -> Timed:
        """Write ``count`` of the workload's memories, ``per_commit`` to a transaction; per-commit times
        and the wall time, as the benchmark's write tests record theirs."""
        samples: list[int] = []
        started = time.perf_counter()
        for records in self._records(workload, count, per_commit):
            t0 = time.perf_counter_ns()
            with self._env.begin(write=True) as txn:
                for key, value, idem, memory_id in records:
                    txn.put(key, value, db=self._memories)
                    if idem is not None:
                        txn.put(idem, keys.pack_id(memory_id), db=self._idem)
            samples.append(time.perf_counter_ns() - t0)
        return Timed(samples, count, time.perf_counter() - started)

    def _records(self, workload: Workload, count: int, per_commit: int) -> Iterator[list[tuple]]:
        """The records of ``count`` memories, encoded ahead of the timed commits, commit by commit."""
        now = time.time()
        encoded = []
        for item in workload.memories(count):
            memory_id, self._next_id = self._next_id, self._next_id + 1
            mem = m.Memory(id=memory_id, text=item.text, created_at=now, valid_from=now, lineage=memory_id,
                           meta=item.meta, tags=item.tags, event_time=item.event_time, session=item.session,
                           source=item.source, idempotency_key=item.idempotency_key)
            idem = None if item.idempotency_key is None else keys.idempotency_key(_NS_ID, item.idempotency_key)
            encoded.append((keys.memory_key(_NS_ID, memory_id), encode_memory(mem), idem, memory_id))
        for start in range(0, len(encoded), per_commit):
            yield encoded[start:start + per_commit]
