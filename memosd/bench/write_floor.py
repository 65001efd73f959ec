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
        and the wall time, as the benchmark's write tests record theirs (the workload is made before
        the clock starts, the records are encoded inside it, as the daemon encodes them)."""
        items = workload.memories(count)
        samples: list[int] = []
        started = time.perf_counter()
        for start in range(0, count, per_commit):
            t0 = time.perf_counter_ns()
            with self._env.begin(write=True) as txn:
                for item in items[start:start + per_commit]:
                    self._put(txn, item)
            samples.append(time.perf_counter_ns() - t0)
        return Timed(samples, count, time.perf_counter() - started)

    def _put(self, txn: lmdb.Transaction, item: m.MemoryIn) -> None:
        """The records of one remember: the encoded memory, and its idempotency entry if it has a key."""
        memory_id, self._next_id = self._next_id, self._next_id + 1
        now = time.time()
        mem = m.Memory(id=memory_id, text=item.text, created_at=now, valid_from=now, lineage=memory_id,
                       meta=item.meta, tags=item.tags, event_time=item.event_time, session=item.session,
                       source=item.source, idempotency_key=item.idempotency_key)
        txn.put(keys.memory_key(_NS_ID, memory_id), encode_memory(mem), db=self._memories)
        if item.idempotency_key is not None:
            txn.put(keys.idempotency_key(_NS_ID, item.idempotency_key), keys.pack_id(memory_id), db=self._idem)
