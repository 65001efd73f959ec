"""The dense retrieval channel: per-namespace vector backends fed by a background embedder.

Memories are embedded off the request path by one ``memosd-embed`` thread
(lexical recall sees a write immediately; the dense channel a moment later).
Vectors are stored through the writer thread; the write's ``apply`` step
queues them for the namespace's backend, and the event loop adds them a
chunk at a time between requests, in commit order (changes.py).

When a namespace's stored vectors come from another encoder (or from none),
the thread re-embeds it in id order, persisting a cursor with each batch, so a
killed daemon resumes where it stopped; the namespace's dense channel stays off
until it is complete. All methods except the thread's run on the event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import lmdb
import msgspec
import numpy as np

from memosd_client.protocol.messages import MigrationInfo

from ..logs import get_logger
from ..store import keys
from ..store.environment import Environment
from ..store.writer import WriterThread
from . import saved_spaces
from .changes import BackendChanges, Change
from . import vectors as vstore
from .guard import PluginError
from .registry import GuardedBackend, GuardedEncoder, PluginRegistry
from .saved_spaces import SavedHeader, SlotDigests

log = get_logger("memosd.dense")

BATCH = 64
"""Texts per encoder call: bounds how long a recall's query waits behind background work."""
COMMIT = 512
"""Texts whose vectors share one write commit (a durable commit costs an fsync)."""
LOAD_CHUNK = 4096


@dataclass(slots=True)
class Space:
    """One namespace's vectors in RAM."""

    name: str
    backend: GuardedBackend
    ready: bool
    """All of the namespace's memories have been embedded by the current encoder at least once."""
    digests: SlotDigests | None = None
    """What each slot holds, to check a saved backend against the store (saved_spaces.py); None for a
    backend that cannot save itself (the built-in numpy one), which then pays no CRC per vector."""
    saved_version: int = -1
    """``digests.version`` when the backend was last saved (or opened from a save); -1: never."""


@dataclass(slots=True)
class _Work:
    name: str
    ns_id: int
    ids: list[int]
    texts: list[str]


class _Stopped(Exception):
    """The daemon is stopping: the embedding thread ends without touching the store again."""


class DenseChannel:
    """Embeds, stores, loads and searches dense vectors for every namespace."""

    def __init__(self, registry: PluginRegistry, env: Environment, writer: WriterThread):
        self.registry = registry
        self.encoder: GuardedEncoder = registry.encoder
        self.weight = max(float(registry.config.dense_weight), 0.0)
        """Fusion weight of the dense channel's min-max scaled similarities (see fusion.fuse_scores)."""
        self.env = env
        self.writer = writer
        self.namespaces: dict = {}
        self.spaces: dict[int, Space] = {}
        self._meta = env.dbs["meta"]
        self._vectors = env.dbs["vectors"]
        self._memories = env.dbs["memories"]
        self._migrating: dict[int, str] = {}
        self._cursors: dict[int, int] = {}
        self._lock = threading.Lock()
        self._migrated_total = 0
        self.vectors_opened = 0
        """Vectors found in saved backends at start and not added again (saved_spaces.py)."""
        self.vectors_loaded = 0
        """Vectors added to backends at start: whole namespaces built from the store, or what saved ones lacked."""
        self._saved_root: Path | None = None
        self._store_id = ""
        self._migrations_started = False
        self._queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._queued = 0
        """Texts put on the queue and not yet stored (or dropped); updated under ``_lock``."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changes = BackendChanges(self._apply_change)
        """Vectors and removals on their way into the backends, a chunk per loop turn (changes.py)."""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="memosd-embed", daemon=True)

    @property
    def enabled(self) -> bool:
        """The encoder is loaded and has not failed."""
        return self.encoder.ok

    # ------------------------------------------------------------------ start-up (before the writer runs)

    def load(self, namespaces: dict, data_dir: Path | None = None, store_id: str = "") -> int:
        """Load stored vectors of this encoder, plan migrations and backfills; returns vectors loaded.

        With ``data_dir``, backends saved there (by the last snapshot or clean stop) are opened and brought
        up to date with the store instead of being built again (saved_spaces.py); ``save`` writes them.
        Runs before the writer thread starts, so it writes directly (like the engine's start-up checks).
        """
        self.namespaces = namespaces
        self._saved_root = None if data_dir is None else data_dir / "indexes" / "dense"
        self._store_id = store_id
        if self._saved_root is not None:
            saved_spaces.remove_others(self._saved_root, {state.ns_id for state in namespaces.values()})
        identity = self.encoder.identity
        loaded = 0
        with self.env.env.begin(write=True) as txn:
            txn.put(b"dense_encoder", msgspec.msgpack.encode(identity), db=self._meta)
            for name, state in namespaces.items():
                record = vstore.get_record(txn, self._meta, state.ns_id)
                if record is None or record.encoder != identity:
                    # Never mix encoders: the old vectors go in the same transaction as the new record.
                    vstore.delete_namespace(txn, self._vectors, state.ns_id)
                    fresh = not state.slot_of
                    record = vstore.DenseRecord(identity, 0, complete=fresh)
                    vstore.put_record(txn, self._meta, state.ns_id, record)
                    if not fresh:
                        log.info("namespace needs (re-)embedding", namespace=name, encoder=identity,
                                 memories=len(state.slot_of))
                loaded += self._load_space(txn, name, state, record)
        return loaded

    def _load_space(self, txn: lmdb.Transaction, name: str, state, record: vstore.DenseRecord) -> int:
        space = self._space(name, record.complete)
        self.spaces[state.ns_id] = space
        have: set[int] = set()
        try:
            saved = self._open_saved(space, state.ns_id)
            if saved is None or not self._bring_up_to_date(txn, space, state, saved, have):
                if saved is not None:  # too far behind the store: build it from the store after all
                    have.clear()
                    space = self.spaces[state.ns_id] = self._space(name, record.complete)
                self._add_stored(txn, space, state, have)
        except PluginError:
            return len(have)
        if not record.complete:
            self._migrating[state.ns_id] = name
            self._cursors[state.ns_id] = record.cursor
        # Memories written just before a crash (or while the encoder was off) have no vector yet.
        missing = [i for i in state.slot_of if i not in have and (record.complete or i <= record.cursor)]
        for start in range(0, len(missing), BATCH):
            ids = sorted(missing[start:start + BATCH])
            texts = [msgspec.msgpack.decode(txn.get(keys.memory_key(state.ns_id, i), db=self._memories))["text"]
                     for i in ids]
            self._put(_Work(name, state.ns_id, ids, texts))
        return len(have)

    def _add_stored(self, txn: lmdb.Transaction, space: Space, state, have: set[int]) -> None:
        """Add every stored vector of the namespace to its (empty) backend."""
        slots: list[int] = []
        rows: list[np.ndarray] = []

        def flush() -> None:
            if slots:
                self._add(space, np.asarray(slots), np.stack(rows))
                self.vectors_loaded += len(slots)
                slots.clear()
                rows.clear()

        for memory_id, vector in vstore.iter_vectors(txn, self._vectors, state.ns_id, self.encoder.dim):
            slot = state.slot_of.get(memory_id)
            if slot is None:
                continue
            have.add(memory_id)
            slots.append(slot)
            rows.append(vector)
            if len(slots) == LOAD_CHUNK:
                flush()
        flush()

    def _open_saved(self, space: Space, ns_id: int) -> SlotDigests | None:
        """The digests of the namespace's saved backend, once it is loaded into ``space``; None when there
        is no usable save."""
        if self._saved_root is None or space.digests is None:
            return None
        found = saved_spaces.open_saved(self._saved_root, ns_id, self._saved_header())
        if found is None:
            return None
        where, digests = found
        return digests if space.backend.load(where) else None

    def _bring_up_to_date(self, txn: lmdb.Transaction, space: Space, state, saved: SlotDigests,
                          have: set[int]) -> bool:
        """Add to an opened backend the stored vectors it lacks or holds another version of, remove the
        slots the store no longer has; False (nothing changed yet) when that is over half the vectors."""
        stale: list[tuple[int, np.ndarray]] = []
        wanted = np.zeros(len(saved.held), dtype=bool)
        for memory_id, vector in vstore.iter_vectors(txn, self._vectors, state.ns_id, self.encoder.dim):
            slot = state.slot_of.get(memory_id)
            if slot is None:
                continue
            have.add(memory_id)
            if saved.holds(slot, zlib.crc32(vector)):
                wanted[slot] = True
            else:
                stale.append((slot, vector))
        gone = np.flatnonzero(saved.held & ~wanted)
        if 2 * (len(stale) + len(gone)) > len(have):
            log.info("saved dense index is far behind the store: building it from the store", namespace=space.name,
                     changed=len(stale) + len(gone), vectors=len(have))
            return False
        space.digests, space.saved_version = saved, saved.version
        if len(gone):
            space.backend.remove(gone)
            saved.drop(gone)
        for start in range(0, len(stale), LOAD_CHUNK):
            chunk = stale[start:start + LOAD_CHUNK]
            self._add(space, np.asarray([slot for slot, _ in chunk]), np.stack([vector for _, vector in chunk]))
        self.vectors_loaded += len(stale)
        self.vectors_opened += len(have) - len(stale)
        log.info("saved dense index opened", namespace=space.name, vectors=len(have), added=len(stale),
                 removed=len(gone))
        return True

    def _space(self, name: str, ready: bool) -> Space:
        """A namespace's empty backend, with digests when it can save itself."""
        backend = self.registry.backend(self.encoder.dim)
        return Space(name, backend, ready, SlotDigests() if backend.persists else None)

    @staticmethod
    def _add(space: Space, slots: np.ndarray, vectors: np.ndarray) -> None:
        space.backend.add(slots, vectors)
        if space.digests is not None:
            space.digests.set(slots, vectors)

    def _saved_header(self) -> SavedHeader:
        return SavedHeader(saved_spaces.FORMAT, self._store_id, self.encoder.identity, self.registry.config.backend)

    def unsaved(self) -> dict[int, int]:
        """Namespace id -> ``digests.version`` of every ready backend that can save itself and changed
        since its last save (what a snapshot's child is to save; ``mark_saved`` once it did)."""
        if self._saved_root is None or not self.enabled:
            return {}
        return {ns_id: space.digests.version for ns_id, space in self.spaces.items()
                if space.ready and space.backend.ok and space.digests is not None
                and space.digests.version != space.saved_version}

    def mark_saved(self, versions: dict[int, int]) -> None:
        for ns_id, version in versions.items():
            space = self.spaces.get(ns_id)
            if space is not None:
                space.saved_version = version

    def save(self, only: dict[int, int] | None = None, in_child: bool = False) -> int:
        """Write the backends of ``unsaved()`` (or of ``only``, its result taken earlier) for the next
        start (saved_spaces.py); returns how many were written. At a clean stop, and ``in_child`` of a
        snapshot taken while serving (engine/checkpoint.py: the parent marks them saved; no logging
        there, a failure is raised). A failure costs the next start only the vectors added since an
        older save, or a build."""
        versions = self.unsaved() if only is None else only
        written = 0
        header = self._saved_header()
        for ns_id in versions:
            space = self.spaces[ns_id]
            save = space.backend.save_in_child if in_child else space.backend.save
            try:
                saved_spaces.save(self._saved_root, ns_id, header, space.digests, save)
                written += 1
            except (OSError, PluginError) as exc:
                if in_child:
                    raise
                log.warning("dense index not saved: the next start builds it from the store",
                            namespace=space.name, error=repr(exc))
                continue
            if not in_child:
                space.saved_version = versions[ns_id]
        return written

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._migrations_started = bool(self._migrating)
        self._changes.start(loop)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop embedding; waits briefly so no store read is in flight when the store closes.

        The thread checks the flag before each store access; one stuck in a plugin call (or waiting
        for the event loop that calls this) is left behind: it is a daemon thread.
        """
        self._stopping.set()
        self._changes.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ engine hooks (event loop)

    def embed_later(self, name: str, ns_id: int, mems) -> None:
        """Queue fresh memories for embedding (remember, update, import)."""
        if not mems or not self.enabled:
            return
        for start in range(0, len(mems), BATCH):
            part = mems[start:start + BATCH]
            self._put(_Work(name, ns_id, [mem.id for mem in part], [mem.text for mem in part]))

    def _put(self, work: _Work) -> None:
        with self._lock:
            self._queued += len(work.ids)
        self._queue.put(work)

    def delete_vectors(self, txn: lmdb.Transaction, ns_id: int, memory_ids) -> None:
        """Inside a purge's write: its vectors go with it (whatever the encoder, or none)."""
        for memory_id in memory_ids:
            vstore.delete_vector(txn, self._vectors, ns_id, memory_id)

    def delete_namespace(self, txn: lmdb.Transaction, ns_id: int) -> None:
        """Inside a namespace purge's write."""
        vstore.delete_namespace(txn, self._vectors, ns_id)
        vstore.delete_record(txn, self._meta, ns_id)

    def forget_slots(self, ns_id: int, slots: list[int]) -> None:
        """After a purge commits: drop the purged versions from the backend."""
        space = self.spaces.get(ns_id)
        if space is not None and slots:
            self._changes.remove(space, np.asarray(slots, dtype=np.int64))  # after the adds queued before it

    def drop_namespace(self, ns_id: int) -> None:
        self.spaces.pop(ns_id, None)
        with self._lock:
            self._migrating.pop(ns_id, None)

    def search(self, state, query: str, depth: int, mask: np.ndarray) -> list[tuple[int, float]] | None:
        """(slot, similarity) best first, or None when the namespace has no usable dense channel."""
        space = self.spaces.get(state.ns_id)
        if space is None or not space.ready or not space.backend.ok or not self.enabled or not query.strip():
            return None
        try:
            vector = self.encoder.encode_query(query)
            if not vector.any():
                return None
            found, scores = space.backend.search(vector, depth, mask)
        except PluginError:
            return None  # logged and recorded by the guard; lexical recall goes on
        return [(slot, score) for slot, score in zip(found.tolist(), scores.tolist()) if score > 0]

    def report(self) -> MigrationInfo:
        """Re-embedding progress (vectors counted as memories whose id the cursor has passed)."""
        with self._lock:
            pending = dict(self._migrating)
            cursors = dict(self._cursors)
        done = total = self._migrated_total
        for ns_id in pending:
            state = self.namespaces.get(pending[ns_id])
            if state is None or state.ns_id != ns_id:
                continue
            n = state.table.size
            ids = state.table.ids[:n][state.table.present[:n]]
            total += len(ids)
            done += int(np.count_nonzero(ids <= cursors.get(ns_id, 0)))
        if not self.enabled:
            phase = "stopped"
        elif pending:
            phase = "running"
        else:
            phase = "done" if self._migrations_started else "idle"
        return MigrationInfo(encoder=self.encoder.identity, state=phase, namespaces_pending=len(pending),
                             vectors_done=done, vectors_total=total, queued=self._queued + self._changes.pending_vectors,
                             vectors_opened=self.vectors_opened, vectors_loaded=self.vectors_loaded)

    def resident_bytes(self, ns_id: int) -> int:
        space = self.spaces.get(ns_id)
        return 0 if space is None else space.backend.nbytes

    # ------------------------------------------------------------------ the embedding thread

    def _main(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.enabled:
                    self._done(self._take(timeout=0.5))  # the encoder failed: queued work is dropped, not kept
                    continue
                work = self._take(timeout=0.05 if self._migrating else 0.5)
                if work:
                    try:
                        self._embed(work)
                    finally:
                        self._done(work)
                elif self._migrating:
                    self._migrate_step()
            except _Stopped:
                return
            except PluginError:
                continue  # the encoder is marked failed; the loop idles until shutdown
            except Exception as exc:  # noqa: BLE001 - a store error must not end dense retrieval for good
                if self._stopping.is_set():
                    return
                log.error("embedding failed", error=repr(exc))
                self._stopping.wait(1.0)

    def _take(self, timeout: float) -> list[_Work]:
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        count = len(items[0].ids)
        while count < COMMIT:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
            count += len(items[-1].ids)
        return items

    def _done(self, works: list[_Work]) -> None:
        with self._lock:
            self._queued -= sum(len(work.ids) for work in works)

    def _embed(self, works: list[_Work]) -> None:
        # Each work holds at most BATCH texts (one encoder call); they share one commit.
        self._store([(work, self.encoder.encode(work.texts)) for work in works], None)

    def _migrate_step(self) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            ns_id, name = next(iter(self._migrating.items()))
        after = self._cursors.get(ns_id, 0)
        ids: list[int] = []
        texts: list[str] = []
        prefix = keys.ns_prefix(ns_id)
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._memories)
            if cursor.set_range(keys.memory_key(ns_id, after + 1)):
                for key, raw in cursor:
                    if not key.startswith(prefix) or len(ids) == COMMIT:
                        break
                    ids.append(keys.split_memory_key(key)[1])
                    texts.append(msgspec.msgpack.decode(raw)["text"])
        at_end = len(ids) < COMMIT
        works = [_Work(name, ns_id, ids[i:i + BATCH], texts[i:i + BATCH]) for i in range(0, len(ids), BATCH)]
        batches = [(work, self.encoder.encode(work.texts)) for work in works]
        if not batches:  # nothing (left) to embed: the step only marks the namespace complete
            batches = [(_Work(name, ns_id, [], []), np.zeros((0, self.encoder.dim), np.float32))]
        last = ids[-1] if ids else after
        kept = self._store(batches, (last, at_end))
        with self._lock:
            if kept is None or at_end:
                self._migrating.pop(ns_id, None)
                if kept is not None:
                    self._migrated_total += self._count(name, ns_id)
                    log.info("namespace embedded", namespace=name, encoder=self.encoder.identity)
            self._cursors[ns_id] = last

    def _count(self, name: str, ns_id: int) -> int:
        state = self.namespaces.get(name)
        return len(state.slot_of) if state is not None and state.ns_id == ns_id else 0

    def _store(self, batches: list[tuple[_Work, np.ndarray]], migration: tuple[int, bool] | None):
        """Write vectors (and a migration's cursor, which then covers one namespace) in one commit.

        Returns None when a migrating namespace is gone (purged) or belongs to another encoder now.
        """
        if self._stopping.is_set():
            raise _Stopped
        future = asyncio.run_coroutine_threadsafe(self._write(batches, migration), self._loop)
        return future.result(timeout=120)

    async def _write(self, batches: list[tuple[_Work, np.ndarray]], migration: tuple[int, bool] | None):
        identity = self.encoder.identity

        def ours(txn: lmdb.Transaction, work: _Work) -> vstore.DenseRecord | None:
            """The namespace's record if its vectors are this encoder's (created for a new namespace)."""
            record = vstore.get_record(txn, self._meta, work.ns_id)
            if record is None:
                raw = txn.get(work.name.encode(), db=self.env.dbs["namespaces"])
                if raw is None or msgspec.msgpack.decode(raw)["id"] != work.ns_id:
                    return None  # purged meanwhile
                # A namespace created since start: nothing to migrate, its vectors are all ours.
                record = vstore.DenseRecord(identity, 0, True)
                vstore.put_record(txn, self._meta, work.ns_id, record)
            return record if record.encoder == identity else None

        def run(txn: lmdb.Transaction):
            kept: list[list[int] | None] = []
            record = None
            for work, vectors in batches:
                record = ours(txn, work)
                rows = None
                if record is not None:
                    rows = []
                    for row, memory_id in enumerate(work.ids):
                        if txn.get(keys.memory_key(work.ns_id, memory_id), db=self._memories) is not None:
                            vstore.put_vector(txn, self._vectors, work.ns_id, memory_id, vectors[row])
                            rows.append(row)
                kept.append(rows)
            if migration is not None:
                if record is None:
                    return None
                last, at_end = migration
                work = batches[0][0]
                vstore.put_record(txn, self._meta, work.ns_id,
                                  vstore.DenseRecord(identity, max(last, record.cursor), record.complete or at_end))
            return kept

        def apply(kept):
            if kept is None:
                return None
            for (work, vectors), rows in zip(batches, kept):
                if rows is not None:
                    self._index(work, vectors, rows, complete=migration is not None and migration[1])
            return kept

        return await self.writer.submit(run, apply)

    def _index(self, work: _Work, vectors: np.ndarray, rows: list[int], complete: bool) -> None:
        """Queue committed vectors for the namespace's backend (on the event loop, in commit order)."""
        state = self.namespaces.get(work.name)
        if state is None or state.ns_id != work.ns_id:
            return
        space = self.spaces.get(work.ns_id)
        if space is None:
            space = self.spaces[work.ns_id] = self._space(work.name, True)
        pairs = [(state.slot_of[work.ids[row]], row) for row in rows if work.ids[row] in state.slot_of]
        if pairs:
            self._changes.add(space, np.asarray([s for s, _ in pairs]), vectors[[r for _, r in pairs]])
        if complete:
            self._changes.ready(space)

    # ------------------------------------------------------------------ backend changes (changes.py)

    def _apply_change(self, change: Change) -> None:
        space = change.space
        if self.spaces.get(self._ns_of(space)) is not space:
            return  # the namespace was purged (or re-created) since
        try:
            if change.kind == "add":
                self._add(space, change.slots, change.vectors)
            elif change.kind == "remove":
                space.backend.remove(change.slots)
                if space.digests is not None:
                    space.digests.drop(change.slots)
            else:
                space.ready = True
        except PluginError:
            pass  # recorded by the backend's guard; the namespace's dense channel is off now

    def apply_pending(self) -> None:
        """Apply every queued backend change now (a clean stop, before the backends are saved)."""
        self._changes.apply_pending()

    def _ns_of(self, space: Space) -> int | None:
        state = self.namespaces.get(space.name)
        return None if state is None else state.ns_id
