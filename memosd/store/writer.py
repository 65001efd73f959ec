"""The single LMDB writer thread with group commit.

Requests hand the writer a :class:`WriteJob`: a function that performs its
reads-and-writes inside a write transaction, and an ``apply`` callback that
updates in-memory state. The writer drains every queued job into one
transaction, commits once (fsync, when durable) and only then, on the event
loop and in commit order, runs each job's ``apply`` and resolves its future.
So an acknowledged write is on disk, and in-memory indexes see writes in the
same order the store does.

Jobs that index into the same structures (say, remembers into one namespace)
carry the same ``index_key``: consecutive ones in a group are indexed by one
``index`` call, because indexing a thousand memories at once costs far less
than a thousand single ones, and concurrent small writes are what group
commit gathers.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import lmdb

from memosd_client.protocol.errors import (
    InternalError,
    InvalidArgumentError,
    MemosdError,
    StorageFullError,
    UnavailableError,
)

from .environment import Environment
from .marks import TRACKED, Changes, RecordingTxn, commit_marks

_STOP = object()


@dataclass(slots=True)
class WriteJob:
    """One unit of work for the writer. ``run`` executes inside the shared write txn.

    After commit, on the event loop: ``index`` with the results of this job and of the jobs next to
    it in the group that have the same ``index_key``, then ``apply`` with this job's result."""

    run: Callable[[lmdb.Transaction], Any]
    apply: Callable[[Any], Any] | None = None
    index: Callable[[list[Any]], None] | None = None
    index_key: Hashable | None = None
    future: asyncio.Future | None = None
    loop: asyncio.AbstractEventLoop | None = None
    result: Any = None
    error: BaseException | None = None
    done: threading.Event | None = field(default=None)
    marked: bool = True
    """Whether the namespaces it changes get a new write mark (store/marks.py); False only for writes
    that the in-RAM indexes may miss after a crash (the scheduler's heat counts)."""
    touched: dict[bytes, Changes] | None = None
    """After a successful run: what it changed, by namespace (4-byte id)."""


class WriterThread:
    """Owns every write transaction of the store."""

    def __init__(self, env: Environment, *, max_group: int = 512):
        self.env = env
        self.max_group = max_group
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="memosd-writer", daemon=True)
        self._stopping = False
        self.heartbeat = time.monotonic()
        """Last time the writer loop was alive (used by health checks and the watchdog)."""
        self.commits = 0
        self.jobs = 0
        self.pending = 0
        self.groups = GroupSizes()
        """How many jobs each commit carried (what group commit achieves)."""
        self._tracked = {env.dbs[name]: kind for name, kind in TRACKED.items()}
        self._commit: tuple[bytes, dict[bytes, int]] = (b"", {})
        self.keep_log = False
        """Whether commits append to the change log (store/marks.py); set when index snapshots are kept."""
        self.logged_records = 0
        """Memory and page records the marked commits changed since start (what a replay would visit)."""
        self.on_applied: Callable[[bytes, dict[bytes, int], set[bytes]], None] | None = None
        """Called after each commit's jobs were applied, in commit order, with the commit's write mark,
        the namespaces it changed whose RAM update succeeded (with their sequence numbers), and those
        whose update failed."""

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ submitting

    def submit(self, run: Callable, apply: Callable | None = None, *, index: Callable | None = None,
               index_key: Hashable | None = None, marked: bool = True) -> asyncio.Future:
        """Queue a job from the event loop; the future resolves after commit, ``index`` and ``apply``."""
        if self._stopping:
            raise UnavailableError("the daemon is shutting down")
        loop = asyncio.get_running_loop()
        job = WriteJob(run=run, apply=apply, index=index, index_key=index_key, future=loop.create_future(),
                       loop=loop, marked=marked)
        self.pending += 1
        self._queue.put(job)
        return job.future

    def submit_blocking(self, run: Callable, apply: Callable | None = None) -> Any:
        """Queue a job from a non-loop thread and wait for it (used at startup and by tools)."""
        job = WriteJob(run=run, apply=apply, done=threading.Event())
        self.pending += 1
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything queued so far, then end the thread."""
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _main(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if first is _STOP:
                return
            group = [first]
            stop_after = False
            while len(group) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                group.append(nxt)
            self._commit_group(group)
            if stop_after:
                return

    def _commit_group(self, group: list[WriteJob]) -> None:
        while True:
            try:
                self._run_group(group)
                break
            except lmdb.MapFullError:
                if not self.env.grow():
                    self._fail(group, StorageFullError("the store reached its maximum map size"))
                    return
            except lmdb.Error as exc:
                # Disk full and other I/O failures surface here; the txn was aborted, nothing applied.
                # LMDB reports a short write on a full disk as EIO, so say what the disk says.
                free = shutil.disk_usage(self.env.path).free
                self._fail(group, StorageFullError(f"the store could not commit ({free:,} bytes free on its disk): {exc}",
                                                   details={"disk_free_bytes": free}))
                return
        self.commits += 1
        self.jobs += len(group)
        self.groups.add(len(group))
        self._finish(group, self._commit)

    def _run_group(self, group: list[WriteJob]) -> None:
        txn = self.env.env.begin(write=True)
        try:
            changed: dict[bytes, Changes] = {}
            for job in group:
                job.error = None
                job.result = None
                job.touched = None
                try:
                    # A nested txn lets one job fail (e.g. a conflict) without undoing the others.
                    with self.env.env.begin(write=True, parent=txn) as child:
                        recording = RecordingTxn(child, self._tracked)
                        job.result = job.run(recording)
                    if job.marked:
                        job.touched = recording.touched
                        for prefix, changes in recording.touched.items():
                            changed.setdefault(prefix, Changes()).merge(changes)
                except (lmdb.MapFullError, lmdb.DiskError):
                    raise
                except lmdb.BadValsizeError as exc:
                    # A key or value LMDB cannot hold: this job's input, not the store, is at fault.
                    job.error = InvalidArgumentError(f"a key or value is too large for the store: {exc}")
                except MemosdError as exc:
                    job.error = exc
                except lmdb.Error:
                    raise
                except Exception as exc:  # a bug in a job must not take the writer down
                    job.error = InternalError(f"write failed: {exc!r}")
            mark = os.urandom(8)
            seqs = commit_marks(txn, self.env.dbs["meta"], self.env.dbs["changes"] if self.keep_log else None,
                                changed, mark)
            txn.commit()
            self._commit = (mark, seqs)
            self.logged_records += sum(changes.size() for changes in changed.values())
        except BaseException:
            txn.abort()
            raise

    def _fail(self, group: list[WriteJob], err: MemosdError) -> None:
        for job in group:
            job.error = err
            job.result = None
            job.touched = None
        self._finish(group, (b"", {}))

    def _finish(self, group: list[WriteJob], commit: tuple[bytes, dict[bytes, int]]) -> None:
        self.pending -= len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[WriteJob]] = {}
        blocking = []
        for job in group:
            if job.loop is None:
                self._settle(job)
                blocking.append(job)
            else:
                by_loop.setdefault(job.loop, []).append(job)
        if blocking:
            self._applied(blocking, commit)
            for job in blocking:
                job.done.set()
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle_all, jobs, commit)
            except RuntimeError:  # loop already closed: nobody is waiting any more
                pass

    def _applied(self, jobs: list[WriteJob], commit: tuple[bytes, dict[bytes, int]]) -> None:
        """Tell ``on_applied`` which namespaces the commit changed, and whether RAM followed."""
        if self.on_applied is None:
            return
        mark, seqs = commit
        ok: set[bytes] = set()
        failed: set[bytes] = set()
        for job in jobs:
            if job.touched:
                (ok if job.error is None else failed).update(job.touched)
        if ok or failed:
            self.on_applied(mark, {prefix: seqs[prefix] for prefix in ok - failed}, failed)

    def _settle_all(self, jobs: list[WriteJob], commit: tuple[bytes, dict[bytes, int]] = (b"", {})) -> None:
        start = 0
        while start < len(jobs):
            end = start + 1
            key = jobs[start].index_key
            if key is not None:
                while end < len(jobs) and jobs[end].index_key == key:
                    end += 1
            # Index a run, then settle its jobs, before the next job: in-memory state still changes
            # in commit order.
            self._index(jobs[start:end])
            for job in jobs[start:end]:
                self._settle(job)
            start = end
        self._applied(jobs, commit)

    @staticmethod
    def _index(jobs: list[WriteJob]) -> None:
        """One ``index`` call for jobs with the same key (those that failed are left out)."""
        ok = [job for job in jobs if job.error is None and job.index is not None]
        if not ok:
            return
        try:
            ok[0].index([job.result for job in ok])
        except Exception as exc:  # the writes are durable; report the in-memory failure
            for job in ok:
                job.error = InternalError(f"write committed but indexing failed: {exc!r}")

    @classmethod
    def _settle(cls, job: WriteJob) -> None:
        if job.loop is None:  # a blocking job is settled alone, so it is indexed alone
            cls._index([job])
        if job.error is None and job.apply is not None:
            try:
                job.result = job.apply(job.result)
            except Exception as exc:  # the write is durable; report the in-memory failure
                job.error = InternalError(f"write committed but indexing failed: {exc!r}")
        fut = job.future
        if fut is None or fut.done():
            return
        if job.error is not None:
            fut.set_exception(job.error)
        else:
            fut.set_result(job.result)


class GroupSizes:
    """A histogram of jobs per commit, in power-of-two buckets (1, 2-3, 4-7, ...)."""

    BUCKETS = 10
    """The last bucket holds groups of 512 and more (the writer's default ``max_group``)."""

    def __init__(self) -> None:
        self.counts = [0] * self.BUCKETS
        self.largest = 0
        self.jobs = 0

    def add(self, size: int) -> None:
        self.counts[min(size.bit_length() - 1, self.BUCKETS - 1)] += 1
        self.largest = max(self.largest, size)
        self.jobs += size

    def histogram(self) -> list[tuple[int, int]]:
        """(smallest group size of the bucket, commits) for every bucket."""
        return [(1 << i, count) for i, count in enumerate(self.counts)]
