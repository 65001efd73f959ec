"""Index snapshots written while the daemon serves, so that a crash replays only what was written since.

A snapshot of a million memories takes seconds to write, and the state must not change while it is
written. So the daemon forks, between two event-loop callbacks (every write is applied to RAM in one
callback, engine/snapshot.py): the child holds a copy-on-write image of that moment, writes it to the
snapshot file and exits, while the parent goes on serving. The marks recorded with each namespace say
which writes the image contains, so a snapshot taken mid-traffic is as valid as one taken at a stop.

The child touches neither LMDB nor the sockets (both belong to the parent), does not log, and leaves
with ``os._exit``: nothing the parent owns is flushed, closed or run twice. Its RAM is not free:
CPython writes the reference count of every object it pickles, so the pages it walks are copied, up
to the size of the indexes, for the seconds it runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..logs import get_logger
from . import snapshot

log = get_logger("memosd.checkpoint")
CHILD_TIMEOUT_S = 1800.0
"""A child still writing after this long is killed (a million memories take seconds)."""


class Checkpointer:
    """Writes the engine's index snapshot every ``interval_s`` seconds when a write was applied since,
    and as soon as writes changed ``records`` records since the last one."""

    def __init__(self, engine, data_dir: Path, interval_s: float, records: int = 0):
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.interval_s = interval_s
        self.records = records
        """Write one as soon as this many records were changed since the last (0: by time only)."""
        self.written = 0
        """Snapshots written by this run."""
        self.failed = 0
        self.last_at = 0.0
        """Unix time at which the last snapshot written by this run was taken (the fork), 0: none yet."""
        self.last_s = 0.0
        """How long the last one took to write."""
        self._child: int | None = None
        self._waiting: asyncio.Future | None = None
        self._trimming: asyncio.Future | None = None
        self._lock = asyncio.Lock()
        self._marks_written: dict[int, tuple[bytes | None, int]] = {}
        self._records_written = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Begin the schedule; call it once the indexes are loaded and the writer runs. The change log
        is trimmed to what the snapshot on disk may need."""
        self._marks_written = dict(self.engine.write_marks)
        self._records_written = self.engine.writer.logged_records
        self._trimming = self.engine.truncate_log(self.engine.snapshot_on_disk)
        if self.interval_s > 0 or self.records > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """End the schedule; a snapshot being written is abandoned (the stop writes its own)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        waiting, child = self._waiting, self._child
        if waiting is not None and not waiting.done() and child is not None:
            os.kill(child, signal.SIGKILL)
            try:
                await waiting  # reaped: it can no longer replace the file the stop writes
            except ChildProcessError:
                pass

    def due(self) -> bool:
        """Whether a write was applied since the last snapshot this run wrote (or since the start)."""
        return self.engine.write_marks != self._marks_written

    def _behind(self) -> int:
        return self.engine.writer.logged_records - self._records_written

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(self.interval_s, 1.0) if self.interval_s > 0 else 1.0)
            timely = self.interval_s > 0 and time.monotonic() - last >= self.interval_s
            # Past ``records``, and past as many records as the store holds: a snapshot costs about what
            # replaying the store's size in records would, so taking them more often than that (during a
            # bulk load, say) costs more than it saves (it made paging 1M memories 2.3 times slower).
            behind = self._behind()
            # (The store's size is counted only once ``records`` are reached: it walks every namespace.)
            bulky = 0 < self.records <= behind and behind >= self.engine.totals()[1]
            if not (timely or bulky) or not self.due():
                continue
            last = time.monotonic()
            try:
                await self.write()
            except OSError as exc:  # fork refused (no memory, process limit): try again next time
                self.failed += 1
                log.warning("index snapshot not written; the last one stays", error=repr(exc))

    async def write(self) -> "Written | None":
        """Fork, write the snapshot in the child, wait for it; what was written, or None if the child
        failed. One at a time: a call while one is being written waits for it, then takes its own."""
        async with self._lock:
            return await self._write()

    async def _write(self) -> "Written | None":
        header = self.engine.snapshot_header()
        marks = dict(self.engine.write_marks)
        records = self.engine.writer.logged_records
        started, taken_at = time.monotonic(), time.time()
        dense = self.engine.dense.unsaved() if self.engine.dense is not None else {}
        pid = os.fork()
        if pid == 0:  # the child: write the image and leave without running anything of the parent's
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                os.nice(10)  # the parent serves requests on the same cores
                snapshot.write(self.data_dir, header, self.engine.namespaces)
                code = 0
                if dense:
                    try:  # graph indexes changed since saved (plugins/saved_spaces.py); a failure leaves the last save
                        self.engine.dense.save(dense, in_child=True)
                    except Exception:  # noqa: BLE001 - the child cannot log; the next start checks any save
                        pass
            finally:
                os._exit(code)
        self._child = pid
        self._waiting = asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
        try:
            _, status = await asyncio.wait_for(asyncio.shield(self._waiting), CHILD_TIMEOUT_S)
        except asyncio.TimeoutError:
            os.kill(pid, signal.SIGKILL)  # stuck (it should take seconds): the next one starts afresh
            _, status = await self._waiting
        self._child = self._waiting = None
        if os.waitstatus_to_exitcode(status) != 0:
            self.failed += 1
            log.warning("index snapshot not written; the last one stays", status=status)
            return None
        self.written += 1
        if dense:
            self.engine.dense.mark_saved(dense)
        self.last_at, self.last_s = taken_at, time.monotonic() - started
        self._marks_written, self._records_written = marks, records
        self._trimming = self.engine.truncate_log(header)
        log.info("index snapshot written", namespaces=len(header.marks), seconds=round(self.last_s, 3))
        return Written(len(header.marks), taken_at, self.last_s)


@dataclass(frozen=True, slots=True)
class Written:
    """A snapshot written while serving."""

    namespaces: int
    taken_at: float
    """Unix time of the state it holds (the fork)."""
    seconds: float
