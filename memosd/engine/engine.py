"""The engine: every protocol operation on top of the store and the in-RAM namespaces.

Writes run as jobs on the writer thread (validation that depends on stored state
happens inside the write transaction); their ``apply`` step updates the RAM
state on the event loop after commit, before the client is answered, so a
memory is recallable the moment its write is acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

import lmdb
import msgspec
import numpy as np

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    TooLargeError,
)

from ..config import LimitsConfig, SlbConfig, TiersConfig
from ..slb.cache import Entry, SemanticLookasideBuffer
from ..slb.prefetch import Prefetcher
from ..events import EventBus
from ..plugins import vectors as vector_store
from ..plugins.dense import DenseChannel
from ..plugins.fusion import fuse_scores
from ..retrieval import EncoderIdentity, HybridIndex, RetrievalConfig
from ..retrieval.query import AnalyzedQuery
from ..retrieval.ranking import padded_size
from ..logs import get_logger
from ..store import keys, marks
from ..store.environment import Environment
from ..store.writer import WriterThread
from ..tiers.manager import TierManager
from ..tiers.search import TwoStage
from . import replay, snapshot, write_context
from .analysis import Analyzer, Written
from .namespace import TIER_NAMES, NamespaceState
from .records import Records, decode_memory, encode_memory
from .registry import Allocator, check_namespace
from .validation import Validation

log = get_logger("memosd.engine")
MAX_VECTOR_COMPONENTS = 256
"""Recall by vector uses at most this many of the vector's largest components."""
DENSE_DEPTH = 50
"""Each channel contributes at least this many candidates to rank fusion when a dense encoder is on."""


class Engine(Validation, Records):
    """Executes operations for the server. All public methods run on the event loop thread."""

    def __init__(
        self,
        env: Environment,
        writer: WriterThread,
        limits: LimitsConfig,
        retrieval: RetrievalConfig | None = None,
        events: EventBus | None = None,
        dense: DenseChannel | None = None,
        tiers: TierManager | None = None,
        slb: SemanticLookasideBuffer | None = None,
    ):
        self.env = env
        self.events = events or EventBus()
        self.writer = writer
        self.limits = limits
        self.retrieval = retrieval
        self.dense = dense
        """The dense channel of a configured, loaded encoder plugin; None: lexical retrieval only."""
        self.tiers = tiers or TierManager(env, TiersConfig(), retrieval)
        """Pages, residency and knowledge of every namespace (the scheduler works on it in the background)."""
        self.slb = slb or SemanticLookasideBuffer(SlbConfig())
        self.prefetcher = Prefetcher(self.slb.cfg, self.tiers)
        self.allocator = Allocator(env)
        self.namespaces: dict[str, NamespaceState] = {}
        self._memories = env.dbs["memories"]
        self._idem = env.dbs["idempotency"]
        self._vectors = env.dbs["vectors"]
        self._encoder_index = HybridIndex(retrieval)
        """An empty index used only for its stateless encoder (``encode``)."""
        self.encoder: EncoderIdentity = self._encoder_index.encoder_identity
        self.opened_from = ""
        """Where ``load`` got the indexes: "snapshot", "store" (rebuilt) or "snapshot+store" (some
        namespaces each way)."""
        self.opened = 0
        """Namespaces that ``load`` opened from the snapshot as they were (not written since)."""
        self.rebuilt = 0
        """Namespaces that ``load`` rebuilt from the store (no usable snapshot or log)."""
        self.replayed = 0
        """Namespaces that ``load`` brought forward from the snapshot by the change log."""
        self.replayed_entries = 0
        """Change-log entries (one per commit and namespace) those replays read."""
        self.write_marks: dict[int, tuple[bytes | None, int]] = {}
        """Namespace id -> the write mark and sequence number (store/marks.py) of the last write applied
        to its RAM state."""
        writer.on_applied = self._writes_applied
        self.snapshot_on_disk: snapshot.Header | None = None
        """The header of the snapshot ``load`` found usable (what the change log must reach back to)."""
        self._store_id = ""
        self._fp = ""
        """The store's id and the snapshot fingerprint of this code and configuration (set by ``load``)."""

    # ------------------------------------------------------------------ start-up

    def load(self, progress: Callable[[int], None] | None = None, data_dir: Path | None = None) -> int:
        """RAM state for the store, namespace by namespace: opened from the index snapshot in
        ``data_dir`` when it holds the namespace as the store does (engine/snapshot.py), brought forward
        from the change log when it was written since (engine/replay.py), else rebuilt from the store.
        Returns the number of versions loaded; ``progress`` is called with the running count after
        each chunk of a rebuild.
        """
        self._check_encoder()
        self._store_id = snapshot.store_id(self.env)
        self._fp = snapshot.fingerprint(self.retrieval, self.tiers.cfg, self.encoder)
        found = snapshot.read(self.env, data_dir, self._fp) if data_dir is not None else None
        self.snapshot_on_disk = None if found is None else found.header
        loaded = self.opened = self.rebuilt = self.replayed = self.replayed_entries = 0
        meta = self.env.dbs["meta"]
        with self.env.read() as txn:
            for name, ns_id in Allocator.all_namespaces(txn, self.env.dbs["namespaces"]):
                mark, seq = marks.read(txn, meta, ns_id)
                state = found.take(name, ns_id, mark) if found is not None else None
                if state is not None:
                    self.tiers.attach(state.tiers)
                    self.opened += 1
                elif found is not None:
                    state = self._replay(txn, found, name, ns_id, seq)  # attaches what it brings forward
                if state is not None:
                    loaded += int(state.table.present[: state.table.size].sum())
                else:
                    state, loaded = self._rebuild(txn, name, ns_id, loaded, progress)
                    self.rebuilt += 1
                self.namespaces[name] = state
                self.write_marks[ns_id] = (mark, seq)
        self.opened_from = ("store" if not (self.opened or self.replayed) else
                            "snapshot" if not self.rebuilt else "snapshot+store")
        if self.dense is not None:
            self.dense.load(self.namespaces, data_dir, self._store_id)
        return loaded

    def _replay(self, txn: lmdb.Transaction, found: snapshot.Snapshot, name: str, ns_id: int,
                seq: int) -> NamespaceState | None:
        """The snapshot's state of a namespace written since, brought forward by the change log up to
        ``seq``; None when it cannot be (the namespace is then rebuilt)."""
        behind = found.behind(name, ns_id)
        if behind is None:
            return None
        state, since = behind
        logged = marks.tail(txn, self.env.dbs["changes"], ns_id, since, seq)
        if logged is None:
            log.info("change log does not reach back to the snapshot: rebuilding", namespace=name)
            return None
        changes, entries = logged
        if changes.reset:  # never from ``tail``; a reset names no records, so it cannot be replayed
            return None
        self.tiers.attach(state.tiers)
        try:
            replay.bring_forward(state, txn, self.env.dbs, changes)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, a rebuild gives the right state
            self.tiers.forget_namespace(ns_id)
            log.warning("snapshot not brought forward: rebuilding", namespace=name, error=repr(exc))
            return None
        self.replayed += 1
        self.replayed_entries += entries
        return state

    def truncate_log(self, header: snapshot.Header | None):
        """Queue the deletion of the change-log entries that no replay from the snapshot ``header``
        describes (the one on disk) can need; resolves to how many went."""
        keep = {} if header is None else {ns_id: seq for ns_id, _, seq in header.marks.values()}
        log_db = self.env.dbs["changes"]
        return self.writer.submit(lambda txn: marks.truncate(txn, log_db, keep), marked=False)

    def snapshot_header(self) -> snapshot.Header:
        """What a snapshot of the current RAM state records (engine/snapshot.py)."""
        return snapshot.Header(snapshot.FORMAT, self._fp, self._store_id,
                               {name: (state.ns_id, *self.write_marks.get(state.ns_id, (None, 0)))
                                for name, state in self.namespaces.items()})

    def write_snapshot(self, data_dir: Path) -> Path:
        """Write the indexes for the next start (see engine/snapshot.py) from the event loop's thread,
        between writes: every namespace is recorded with the mark of the last write it applied."""
        return snapshot.write(data_dir, self.snapshot_header(), self.namespaces)

    def _writes_applied(self, mark: bytes, ok: dict[bytes, int], failed: set[bytes]) -> None:
        """The writer committed ``mark`` for these namespaces and applied it in RAM (``ok``, with their
        sequence numbers), or failed to (``failed``: their RAM state no longer follows the store, so
        they get a mark no store holds, and a snapshot never stands for them)."""
        for prefix, seq in ok.items():
            self.write_marks[keys.unpack_ns(prefix)] = (mark, seq)
        for prefix in failed:
            self.write_marks[keys.unpack_ns(prefix)] = (b"", 0)

    def _rebuild(self, txn: lmdb.Transaction, name: str, ns_id: int, loaded: int,
                 progress: Callable[[int], None] | None) -> tuple[NamespaceState, int]:
        """One namespace's state from the store; returns it and the running count of versions loaded."""
        state = NamespaceState(name, ns_id, self.tiers, self.retrieval)
        pages, facts = self.tiers.read_pages(txn, ns_id)
        page_of_id = state.tiers.load_pages(pages)
        cursor = txn.cursor(db=self._memories)
        prefix = keys.ns_prefix(ns_id)
        chunk: list[m.Memory] = []
        if cursor.set_range(prefix):
            for key, raw in cursor:
                if not key.startswith(prefix):
                    break
                try:
                    chunk.append(decode_memory(raw))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    # One unreadable record must not keep the daemon from starting; it stays
                    # in LMDB (export shows it) and is reported.
                    log.error("unreadable record skipped", namespace=name, key=key.hex(), error=str(exc))
                    continue
                if len(chunk) == 4096:
                    state.add_many(chunk, page_of_id)
                    loaded += len(chunk)
                    chunk = []
                    if progress is not None:
                        progress(loaded)
        state.add_many(chunk, page_of_id)
        state.index.trim()  # the room bulk indexing left; new writes grow it again
        state.tiers.finish_load(facts)
        return state, loaded + len(chunk)

    def _check_encoder(self) -> None:
        identity = {"name": self.encoder.name, "version": self.encoder.version, "dim": self.encoder.dim}
        stored = self.env.get_meta("encoder")
        if stored is None:
            self.env.put_meta("encoder", identity)
        elif stored != identity:
            # The built-in encoder is recomputed from text at load, so a change only needs recording.
            self.env.put_meta("encoder", identity)

    # ------------------------------------------------------------------ helpers

    def _state(self, namespace: str) -> NamespaceState | None:
        return self.namespaces.get(check_namespace(namespace))

    def _ensure_state(self, name: str, ns_id: int) -> NamespaceState:
        state = self.namespaces.get(name)
        if state is None or state.ns_id != ns_id:
            state = self.namespaces[name] = NamespaceState(name, ns_id, self.tiers, self.retrieval)
        return state

    # ------------------------------------------------------------------ remember

    async def remember(self, namespace: str, args: m.RememberArgs) -> m.RememberResult:
        name = check_namespace(namespace)
        self._check_batch(len(args.items), "items")
        for i, item in enumerate(args.items):
            where = f"items[{i}]"
            self._check_text(item.text, where)
            self._check_tags(item.tags, where + ".tags")
            self._check_time(item.event_time, where + ".event_time")
            self._check_idempotency_key(item.idempotency_key, where + ".idempotency_key")

        now = write_context.write_clock()

        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.ensure(txn, name)
            ids: list[int] = []
            created: list[bool] = []
            fresh: list[m.Memory] = []
            seen: dict[str, int] = {}
            for item in args.items:
                key = item.idempotency_key
                earlier = seen.get(key) if key is not None else None
                if earlier is None:
                    earlier = self._idem_lookup(txn, ns_id, key)
                if earlier is not None:
                    ids.append(earlier)
                    created.append(False)
                    continue
                memory_id = self.allocator.next_memory_id(txn, ns_id)
                mem = m.Memory(
                    id=memory_id,
                    text=item.text,
                    created_at=now,
                    valid_from=now,
                    lineage=memory_id,
                    meta=item.meta,
                    tags=item.tags,
                    event_time=item.event_time,
                    session=item.session,
                    source=item.source,
                    idempotency_key=key,
                )
                self._store(txn, ns_id, mem)
                self._idem_store(txn, ns_id, key, memory_id)
                if key is not None:
                    seen[key] = memory_id
                ids.append(memory_id)
                created.append(True)
                fresh.append(mem)
            return self._written(name, ns_id, fresh), ids, created

        def apply(result):
            written, ids, created = result
            if written.fresh:
                self.events.emit("remembered", name, [mem.id for mem in written.fresh])
                if self.dense is not None:
                    self.dense.embed_later(name, written.ns_id, written.fresh)
            return m.RememberResult(ids=ids, created=created)

        return await self._submit_written(name, run, apply)

    def _written(self, name: str, ns_id: int, fresh: list[m.Memory]) -> Written:
        """New versions with their texts read for indexing (on the writer thread, inside its txn)."""
        state = self.namespaces.get(name)
        # The namespace's own analyzer, so its stem cache goes with the namespace; a namespace's first
        # write reads with a new one (its state is made on the event loop after commit).
        analyzer = state.analyzer if state is not None and state.ns_id == ns_id else Analyzer()
        return Written(ns_id, fresh, analyzer.analyze(fresh))

    def _submit_written(self, name: str, run: Callable, apply: Callable):
        """Submit a job whose result starts with a :class:`Written`: consecutive ones for ``name`` in a
        commit group are indexed together, in one batch, before their ``apply``."""
        return self._submit(run, apply, index=lambda results: self._index_written(name, results),
                            index_key=("index", name))

    def _submit(self, run: Callable, apply: Callable, **indexing):
        """Queue a write job; one applied from a cluster log also stores its log position, in the same
        transaction, so the store knows exactly which logged operations it holds."""
        ctx = write_context.current()
        if ctx is not None and ctx.position is not None:
            meta, job = self.env.dbs["meta"], run

            def run(txn: lmdb.Transaction):
                result = job(txn)
                write_context.record_position(txn, meta, ctx.namespace, ctx.position)
                return result
        return self.writer.submit(run, apply, **indexing)

    def _index_written(self, name: str, results: list[tuple]) -> None:
        written: list[Written] = [result[0] for result in results]
        start = 0
        while start < len(written):
            ns_id, end = written[start].ns_id, start
            mems, analyses = [], []
            while end < len(written) and written[end].ns_id == ns_id:  # a purge of the namespace between
                mems += written[end].fresh
                analyses += written[end].analyses
                end += 1
            self._ensure_state(name, ns_id).add_many(mems, analyses=analyses)
            start = end

    # ------------------------------------------------------------------ reads

    def get(self, namespace: str, args: m.GetArgs) -> m.GetResult:
        self._check_ids(args.ids)
        state = self._state(namespace)
        found = {} if state is None else self._tiered(state, self._read(state.ns_id, args.ids))
        return m.GetResult(
            memories=[found[i] for i in args.ids if i in found],
            missing=[i for i in args.ids if i not in found],
        )

    def list(self, namespace: str, args: m.ListArgs) -> m.ListResult:
        self._check_limit(args.limit)
        self._check_filters(args.filters)
        state = self._state(namespace)
        if state is None:
            return m.ListResult(memories=[])
        mask = state.mask(
            args.filters,
            include_forgotten=args.include_forgotten,
            include_superseded=args.include_superseded,
        )
        ids, next_cursor = state.ids_in_order(mask, args.cursor, args.limit)
        found = self._tiered(state, self._read(state.ns_id, ids))
        return m.ListResult(memories=[found[i] for i in ids if i in found], next_cursor=next_cursor)

    def recall(self, namespace: str, args: m.RecallArgs) -> m.RecallResult:
        started = time.perf_counter_ns()
        if not 1 <= args.k <= self.limits.max_k:
            raise InvalidArgumentError(f"k must be between 1 and {self.limits.max_k}")
        if (args.query is None) == (args.vector is None):
            raise InvalidArgumentError("recall needs exactly one of query or vector")
        self._check_filters(args.filters)
        self._check_time(args.as_of, "as_of")
        vector = None
        if args.vector is not None:
            dim = self.encoder.dim
            if len(args.vector) != dim * 4:
                raise InvalidArgumentError(
                    f"vector must be {dim} little-endian float32 values ({dim * 4} bytes), "
                    f"got {len(args.vector)} bytes"
                )
            vector = np.frombuffer(args.vector, dtype="<f4")
            if not np.isfinite(vector).all():
                raise InvalidArgumentError("vector has non-finite values")
            if np.count_nonzero(vector) > MAX_VECTOR_COMPONENTS:
                # Each nonzero component scans one posting list; keep the largest ones (a text's
                # encoding has far fewer, so real queries are unaffected).
                keep = np.argpartition(np.abs(vector), -MAX_VECTOR_COMPONENTS)[-MAX_VECTOR_COMPONENTS:]
                trimmed = np.zeros_like(vector)
                trimmed[keep] = vector[keep]
                vector = trimmed
        elif len(args.query) > self.limits.max_text_bytes:
            raise TooLargeError(f"query is over {self.limits.max_text_bytes} characters")
        state = self._state(namespace)
        if state is None:
            return m.RecallResult(hits=[], took_us=(time.perf_counter_ns() - started) // 1000)
        mask = state.mask(args.filters, as_of=args.as_of, include_forgotten=args.include_forgotten)
        search = TwoStage(state.tiers, self.tiers.cfg.fine_weight)
        faults = state.tiers.counters.faults
        if vector is not None:
            hits = search.search_vector(vector, args.k, mask, padded_size(state.table.size))
        else:
            hits = self._search_text(state, search, args, mask)
        hit_pages = search.touch(hits)
        if state.tiers.counters.faults != faults:
            self.tiers.enforce_budget()  # pages faulted in for this query: back under the budget now
        self.prefetcher.after_recall(state.tiers, hit_pages)
        # Slots are reused after purges and renumbered at start: equal scores are ordered by id.
        id_of = state.table.ids
        hits = sorted(hits, key=lambda h: (-h.score, int(id_of[h.slot])))
        ids = [int(id_of[h.slot]) for h in hits]
        found = self._tiered(state, self._read(state.ns_id, ids))
        out = [
            m.RecallHit(memory=found[i], score=float(h.score), rank=rank, matched=list(h.channels))
            for rank, (i, h) in enumerate(zip(ids, hits), start=1)
            if i in found
        ]
        return m.RecallResult(hits=out, took_us=(time.perf_counter_ns() - started) // 1000)

    def _search_text(self, state: NamespaceState, search: TwoStage, args: m.RecallArgs, mask: np.ndarray):
        """Two-stage hits across the tiers, score-fused with the dense channel's when the namespace has one."""
        query, k = state.index.analyze(args.query), args.k  # tokenised once for every index it meets
        # A query the tiers cannot score (no index term, time question or speaker) is the dense
        # channel's alone: its best k, with no list to fuse with and no pass over the tiers.
        lexical = search.can_score(query)
        dense = None
        if self.dense is not None:
            k = max(k, DENSE_DEPTH) if lexical else k
            dense = self.dense.search(state, args.query, k, mask)
        hits = []
        if lexical:
            hits = self._tier_hits(state, search, args, query, k, mask, state.index.bm25_scores(query, mask))
        if not dense:  # no usable dense channel here, or nothing similar: the tiers' scores alone
            return hits[: args.k]
        return fuse_scores(hits, dense, args.k, self.dense.weight)

    def _tier_hits(self, state: NamespaceState, search: TwoStage, args: m.RecallArgs, query: AnalyzedQuery, k: int,
                   mask: np.ndarray, bm25: np.ndarray):
        """The tiers' best ``k``, through the semantic lookaside buffer when it is on."""
        slb = self.slb
        if not slb.enabled:
            return search.search(query, k, mask, bm25)
        started = time.perf_counter()
        tiers = state.tiers
        buckets, weights = tiers.feat.query(query)
        norm = float(np.sqrt(weights @ weights)) if len(weights) else 0.0
        if not norm:
            return search.search(query, k, mask, bm25)
        weights = weights / norm
        signature = (msgspec.msgpack.encode(args.filters), k, args.as_of, args.include_forgotten)
        session = args.filters.session
        entry = slb.lookup(state.ns_id, session, buckets, weights, signature)
        if entry is not None:
            # Re-score the cached candidate pages together with STM as it is now and every page formed
            # since the entry was made, under the current filters (forgotten and purged memories excluded).
            hits = search.stage_two(query, k, mask, bm25, entry.candidates(tiers))
            slb.stats.hit_seconds += time.perf_counter() - started
            every = slb.cfg.verify_every
            if every and slb.stats.hits % every == 0:
                full = {h.slot for h in search.search(query, k, mask, bm25)[: args.k]}
                got = {h.slot for h in hits[: args.k]}
                slb.stats.verified += 1
                slb.stats.agreement_sum += len(full & got) / len(full) if full else float(not got)
            return hits
        candidates, boost = search.stage_one(query, bm25)
        hits = search.stage_two(query, k, mask, bm25, candidates, boost)
        slb.insert(state.ns_id, session, Entry(buckets, weights, signature, slb.generation(state.ns_id),
                                               candidates.pages, candidates.page_scores, candidates.rings.units,
                                               candidates.ring_scores, next_page=tiers.next_page_id))
        slb.stats.miss_seconds += time.perf_counter() - started
        return hits

    @staticmethod
    def _tiered(state: NamespaceState, found: dict[int, m.Memory]) -> dict[int, m.Memory]:
        """Memories with their current tier (kept in RAM by the tiers, not rewritten into records)."""
        tiers, slot_of = state.table.tier, state.slot_of
        for memory_id, mem in found.items():
            slot = slot_of.get(memory_id)
            if slot is not None:
                tier = TIER_NAMES[tiers[slot]]
                if tier != mem.tier:
                    found[memory_id] = msgspec.structs.replace(mem, tier=tier)
        return found

    def encode(self, args: m.EncodeArgs) -> m.EncodeResult:
        self._check_batch(len(args.texts), "texts")
        for i, text in enumerate(args.texts):
            if len(text) > self.limits.max_text_bytes:
                raise TooLargeError(f"texts[{i}] is over {self.limits.max_text_bytes} characters")
        vectors = self._encoder_index.encode(args.texts).astype("<f4", copy=False)
        return m.EncodeResult(dim=self.encoder.dim, vectors=[row.tobytes() for row in vectors])

    def history(self, namespace: str, args: m.HistoryArgs) -> m.HistoryResult:
        self._check_ids([args.id])
        state = self._state(namespace)
        if state is None:
            raise NotFoundError(f"no memory {args.id} in namespace {namespace!r}")
        with self.env.read() as txn:
            versions = self._lineage(txn, state.ns_id, args.id)
        if not versions:
            raise NotFoundError(f"no memory {args.id} in namespace {namespace!r}")
        tiered = self._tiered(state, {mem.id: mem for mem in versions})
        return m.HistoryResult(versions=[tiered[mem.id] for mem in versions])

    # ------------------------------------------------------------------ update / forget / purge

    async def update(self, namespace: str, args: m.UpdateArgs) -> m.UpdateResult:
        name = check_namespace(namespace)
        self._check_ids([args.id])
        if args.text is not None:
            self._check_text(args.text, "text")
        if args.tags is not None:
            self._check_tags(args.tags, "tags")
        self._check_time(args.event_time, "event_time")
        self._check_idempotency_key(args.idempotency_key, "idempotency_key")
        clock = write_context.write_clock()

        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.find(txn, name)
            old = None if ns_id is None else self._load(txn, ns_id, args.id)
            if old is None:
                raise NotFoundError(f"no memory {args.id} in namespace {name!r}")
            earlier = self._idem_lookup(txn, ns_id, args.idempotency_key)
            if earlier is not None:
                return ns_id, None, None, m.UpdateResult(id=earlier, supersedes=args.id, created=False)
            if old.superseded_by is not None:
                current = self._lineage(txn, ns_id, args.id)[-1]
                raise ConflictError(
                    f"memory {args.id} was superseded; the current version is {current.id}",
                    details={"current": current.id},
                )
            if old.forgotten_at is not None:
                raise ConflictError(f"memory {args.id} is forgotten; unforget it first")
            now = max(clock, old.valid_from)
            new_id = self.allocator.next_memory_id(txn, ns_id)
            meta = dict(old.meta) if args.meta is None else args.meta
            if args.reason is not None:
                meta = {**meta, "update_reason": args.reason}
            new = msgspec.structs.replace(
                old,
                id=new_id,
                text=old.text if args.text is None else args.text,
                meta=meta,
                tags=old.tags if args.tags is None else args.tags,
                event_time=old.event_time if args.event_time is None else args.event_time,
                created_at=now,
                valid_from=now,
                valid_to=None,
                supersedes=old.id,
                superseded_by=None,
                idempotency_key=args.idempotency_key,
            )
            closed = msgspec.structs.replace(old, valid_to=now, superseded_by=new_id)
            self._store(txn, ns_id, closed)
            self._store(txn, ns_id, new)
            self._idem_store(txn, ns_id, args.idempotency_key, new_id)
            return ns_id, closed, self._written(name, ns_id, [new]), m.UpdateResult(id=new_id, supersedes=old.id)

        def apply(result):
            ns_id, closed, written, reply = result
            if written is not None:
                new = written.fresh[0]
                self.slb.invalidate(ns_id)
                state = self._ensure_state(name, ns_id)
                state.supersede(closed.id, closed.valid_to)
                state.add(new, written.analyses[0])
                self.events.emit("updated", name, [new.id], supersedes=closed.id)
                if self.dense is not None:
                    self.dense.embed_later(name, ns_id, [new])
            return reply

        return await self._submit(run, apply)

    async def _set_forgotten(self, namespace: str, args: m.IdsArgs, forget: bool) -> m.ForgetResult:
        name = check_namespace(namespace)
        self._check_ids(args.ids)
        now = write_context.write_clock()

        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.find(txn, name)
            changed, missing = [], []
            for memory_id in args.ids:
                mem = None if ns_id is None else self._load(txn, ns_id, memory_id)
                if mem is None:
                    missing.append(memory_id)
                    continue
                if (mem.forgotten_at is None) == forget:
                    mem = msgspec.structs.replace(mem, forgotten_at=now if forget else None)
                    self._store(txn, ns_id, mem)
                changed.append((memory_id, mem.forgotten_at))
            return ns_id, changed, missing

        def apply(result):
            ns_id, changed, missing = result
            state = self.namespaces.get(name)
            if state is not None and state.ns_id == ns_id:
                for memory_id, forgotten_at in changed:
                    state.set_forgotten(memory_id, forgotten_at)
            ids = [memory_id for memory_id, _ in changed]
            if ids:
                self.slb.invalidate(ns_id)
                self.events.emit("forgotten" if forget else "unforgotten", name, ids)
            return m.ForgetResult(changed=ids, missing=missing)

        return await self._submit(run, apply)

    async def forget(self, namespace: str, args: m.IdsArgs) -> m.ForgetResult:
        return await self._set_forgotten(namespace, args, True)

    async def unforget(self, namespace: str, args: m.IdsArgs) -> m.ForgetResult:
        return await self._set_forgotten(namespace, args, False)

    async def purge(self, namespace: str, args: m.PurgeArgs) -> m.PurgeResult:
        name = check_namespace(namespace)
        if args.all == bool(args.ids):
            raise InvalidArgumentError("purge needs either ids or all=true (not both)")
        if args.all:
            return await self._purge_namespace(name)
        self._check_ids(args.ids)

        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.find(txn, name)
            removed: dict[int, m.Memory] = {}
            missing = []
            for memory_id in args.ids:
                if memory_id in removed:
                    continue
                versions = [] if ns_id is None else self._lineage(txn, ns_id, memory_id)
                if not versions:
                    missing.append(memory_id)
                    continue
                for mem in versions:
                    txn.delete(keys.memory_key(ns_id, mem.id), db=self._memories)
                    vector_store.delete_vector(txn, self._vectors, ns_id, mem.id)
                    if mem.idempotency_key is not None:
                        txn.delete(keys.idempotency_key(ns_id, mem.idempotency_key), db=self._idem)
                    removed[mem.id] = mem
            if removed:
                state = self.namespaces.get(name)
                self.tiers.purge_in_txn(txn, state.tiers if state is not None and state.ns_id == ns_id else None,
                                        ns_id, list(removed))
            return ns_id, list(removed.values()), missing

        def apply(result):
            ns_id, removed, missing = result
            state = self.namespaces.get(name)
            if state is not None and state.ns_id == ns_id:
                slots = [state.slot_of[mem.id] for mem in removed if mem.id in state.slot_of]
                state.remove_many(removed)
                if self.dense is not None:
                    self.dense.forget_slots(ns_id, slots)
            if removed:
                self.slb.invalidate(ns_id)
                self.events.emit("purged", name, [mem.id for mem in removed])
            return m.PurgeResult(purged=len(removed), missing=missing)

        return await self._submit(run, apply)

    async def _purge_namespace(self, name: str) -> m.PurgeResult:
        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.find(txn, name)
            if ns_id is None:
                return None, 0
            purged = keys.delete_prefix(txn, self._memories, keys.ns_prefix(ns_id))
            keys.delete_prefix(txn, self._idem, keys.ns_prefix(ns_id))
            vector_store.delete_namespace(txn, self._vectors, ns_id)
            vector_store.delete_record(txn, self.env.dbs["meta"], ns_id)
            self.tiers.drop_namespace_in_txn(txn, ns_id)
            self.allocator.drop(txn, name, ns_id)
            return ns_id, purged

        def apply(result):
            ns_id, purged = result
            state = self.namespaces.get(name)
            if state is not None and state.ns_id == ns_id:
                del self.namespaces[name]
            if ns_id is not None:
                self.tiers.forget_namespace(ns_id)
                self.slb.drop_namespace(ns_id)
            if ns_id is not None and self.dense is not None:
                self.dense.drop_namespace(ns_id)
            if ns_id is not None:
                self.events.emit("namespace_purged", name, [], purged=purged)
            return m.PurgeResult(purged=purged)

        return await self._submit(run, apply)

    # ------------------------------------------------------------------ stats / export / import

    def stats(self, namespace: str | None, among: Collection[str] | None = None) -> m.StatsResult:
        """Counts and sizes of one namespace, or of all (``among``: only these, e.g. a cluster node's own)."""
        if namespace:
            state = self._state(namespace)
            states = [] if state is None else [state]
        else:
            states = [self.namespaces[name] for name in sorted(self.namespaces) if among is None or name in among]
        used, map_size = self.env.usage()
        return m.StatsResult(
            namespaces=[
                m.NamespaceStats(name=s.name, index_bytes=s.resident_bytes() + self._dense_bytes(s), **s.counts())
                for s in states
            ],
            store_bytes=used,
            map_bytes=map_size,
            slb=self.slb_info(),
            writer=self.writer_info(),
        )

    def writer_info(self) -> m.WriterInfo:
        groups = self.writer.groups
        return m.WriterInfo(commits=self.writer.commits, jobs=self.writer.jobs, largest_group=groups.largest,
                            group_sizes=groups.histogram())

    def slb_info(self) -> m.SlbInfo:
        """The lookaside buffer's and the prefetcher's counters (stats, `memosd tiers`, metrics)."""
        return self.slb.info(self.prefetcher.info())

    def _dense_bytes(self, state: NamespaceState) -> int:
        return 0 if self.dense is None else self.dense.resident_bytes(state.ns_id)

    def export(self, namespace: str, args: m.ExportArgs) -> m.ExportResult:
        self._check_limit(args.limit)
        state = self._state(namespace)
        if state is None:
            return m.ExportResult(memories=[])
        prefix = keys.ns_prefix(state.ns_id)
        start = keys.memory_key(state.ns_id, max(args.cursor or 0, 0))
        out: list[m.Memory] = []
        next_cursor = None
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._memories)
            if cursor.set_range(start):
                for key, raw in cursor:
                    if not key.startswith(prefix):
                        break
                    if len(out) == args.limit:
                        next_cursor = keys.split_memory_key(key)[1]
                        break
                    out.append(decode_memory(raw))
        return m.ExportResult(memories=out, next_cursor=next_cursor)

    async def import_(self, namespace: str, args: m.ImportArgs) -> m.ImportResult:
        name = check_namespace(namespace)
        self._check_batch(len(args.memories), "memories")
        for i, mem in enumerate(args.memories):
            self._check_imported(mem, f"memories[{i}]")

        def run(txn: lmdb.Transaction):
            ns_id = self.allocator.ensure(txn, name)
            fresh = []
            for mem in args.memories:
                key = keys.memory_key(ns_id, mem.id)
                if txn.get(key, db=self._memories) is not None:
                    continue
                txn.put(key, encode_memory(mem), db=self._memories)
                self._idem_store(txn, ns_id, mem.idempotency_key, mem.id)
                self.allocator.note_id(ns_id, mem.id, txn)
                fresh.append(mem)
            return (self._written(name, ns_id, fresh),)

        def apply(result):
            fresh = result[0].fresh
            if fresh:
                self.events.emit("imported", name, [mem.id for mem in fresh])
                if self.dense is not None:
                    self.dense.embed_later(name, result[0].ns_id, fresh)
            return m.ImportResult(imported=len(fresh), skipped=len(args.memories) - len(fresh))

        return await self._submit_written(name, run, apply)

    def totals(self) -> tuple[int, int]:
        """(namespaces, stored versions) for status."""
        return len(self.namespaces), sum(len(s.slot_of) for s in self.namespaces.values())
