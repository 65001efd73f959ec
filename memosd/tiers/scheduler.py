"""The tier scheduler: paging, consolidation, re-tiering and eviction in the background.

Two asyncio tasks on the daemon's loop. The pager forms pages from short-term
overflow, indexes coarse documents, flushes heat, re-tiers and evicts; the
consolidator hands closed pages to the policy (in its own process or thread)
and stores what comes back. Both slice their work on the loop into steps bounded
in time (pacing.py, ``step_ms``), so a request waits behind at most a step of
each, and every store change goes through the writer thread like any write.
While clients are active they take at most ``busy_share`` of the loop; without
traffic they settle a backlog as fast as the machine allows. Triggers:

- size: a ring over ``stm_capacity`` is paged at once;
- time: idle rings and open pages are paged/closed after ``stm_idle_s`` / ``page_close_s``;
  heat is written back every ``HEAT_FLUSH_S``, cold pages demoted as the pager goes round;
- memory: resident page vectors over the budget, or the machine short of
  ``min_available_bytes``, are evicted coldest first every round (recall also
  evicts right after a query that faulted pages in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import islice

import lmdb

from ..logs import get_logger
from ..plugins.api import PageView, TurnView
from ..store import keys
from ..store.writer import WriterThread
from . import records
from .forming import PagePlan, plan_pages
from .manager import TierManager
from .pacing import Pacer, Step
from .policy import PolicyRunner
from .records import EntityRecord, FactRecord, PageRecord
from .state import DOC_BATCH, TierState

log = get_logger("memosd.tiers.scheduler")

HEAT_FLUSH_S = 10.0
TRAFFIC_WINDOW_S = 0.2
"""A request this recent means clients are active: the scheduler then takes at most ``busy_share`` of the
loop (idle-priority background work, like an OS's page daemon)."""
IDLE_SCAN_S = 1.0
"""How often a namespace's rings and open pages are checked against ``stm_idle_s`` and ``page_close_s`` (the
check visits them all; rings over capacity are tracked as they grow)."""
JOBS_PER_ROUND = 16
"""Most writer jobs (or document batches) per namespace in one round of the pager, so that sustained
writes to one namespace do not keep it from the others and from indexing."""
FIRST_GUESS_S = {"plan": 40e-6, "install": 60e-6, "doc": 150e-6, "view": 100e-6, "knowledge": 300e-6}
"""Cost per item of each kind of loop work until the pacer has measured it (a deliberately high guess)."""


@dataclass(slots=True)
class _Batch:
    """Pages handed to the consolidation policy together: (state, page id, members, view) each."""

    work: list[tuple[TierState, int, list[int], PageView]]
    policy: asyncio.Future
    keys: set[tuple[int, int]]


class Scheduler:
    """Background work of the tiers. ``start`` on the daemon's loop; ``stop`` before the writer stops."""

    def __init__(self, manager: TierManager, writer: WriterThread, policy: PolicyRunner,
                 last_request_at: Callable[[], float] | None = None,
                 requests_waiting: Callable[[], bool] | None = None):
        self.manager = manager
        self.last_request_at = last_request_at or (lambda: 0.0)
        """time.perf_counter() of the latest client request (the server's)."""
        self.cfg = manager.cfg
        self.writer = writer
        self.policy = policy
        self.pacer = Pacer(max(self.cfg.step_ms, 0.05) / 1000, self.cfg.busy_share, self._traffic,
                           requests_waiting or (lambda: False))
        self._tasks: list[asyncio.Task] = []
        self._heat_at = 0.0
        self._idle_scan_at: dict[int, float] = {}
        self._next_batch: _Batch | None = None
        self._in_policy: set[tuple[int, int]] = set()
        """(ns_id, page_id) of the pages handed to the policy and not yet stored."""
        self.ticks = 0
        self.paused = False
        """Set by tests and benchmarks that need the scheduler still (e.g. to measure it busy vs idle)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tasks = [loop.create_task(self._run(self.tick), name="memosd-tiers"),
                       loop.create_task(self._run(self.consolidate_round), name="memosd-consolidation")]

    async def stop(self) -> None:
        if self._next_batch is not None:
            self._tasks.append(self._next_batch.policy)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping; errors were logged
                pass
        self.policy.close()

    async def _run(self, round_: Callable[[], Awaitable[bool]]) -> None:
        while True:
            try:
                worked = False if self.paused else await round_()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed round is logged and retried, never fatal
                log.exception("tier scheduler round failed", error=repr(exc))
                worked = False
            # With work left, the next round follows at once (its steps pace themselves).
            await asyncio.sleep(0 if worked else self.cfg.tick_s)

    def _traffic(self) -> bool:
        return time.perf_counter() - self.last_request_at() < TRAFFIC_WINDOW_S

    def _current(self, state: TierState) -> bool:
        """False once the namespace was purged (its state replaced or gone) while the scheduler waited."""
        return self.manager.states.get(state.ns_id) is state

    def _fits(self, kind: str, ceiling: int) -> int:
        return self.pacer.fits(kind, FIRST_GUESS_S[kind], ceiling)

    def stm_overflow(self) -> int:
        """Short-term turns over the rings' capacity: always searched, so they make every recall slower."""
        cap = self.cfg.stm_capacity
        # Only the rings over capacity can count (tracked by the state as rings grow and shrink).
        return sum(max(len(state.rings.get(code, ())) - cap, 0)
                   for state in self.manager.states.values() for code in state.overflowing)

    def backlog(self) -> int:
        """Short-term turns over capacity, coarse documents not yet indexed, closed pages not yet consolidated."""
        total = self.stm_overflow()
        for state in self.manager.states.values():
            total += len(state.pending_docs) + len(state.pending_facts) + len(state.dirty_rings)
            if self.cfg.consolidate:
                total += len(state.unconsolidated)
        return total

    # ------------------------------------------------------------------ the pager

    async def tick(self, now: float | None = None) -> bool:
        """One round of the pager over every namespace; returns True if it did any work."""
        now = time.time() if now is None else now
        self.ticks += 1
        worked = False
        step = self.pacer.begin()
        for state in list(self.manager.states.values()):
            step, paged = await self._page(state, now, step)
            step, indexed = await self._index_docs(state, step)
            worked = worked or paged or indexed
        if now - self._heat_at >= HEAT_FLUSH_S:
            self._heat_at = now
            step = await self._flush_heat(step)
        if step.over():
            step = await self.pacer.rest(step, "pager")
        self.manager.retier(now)
        if self.manager.enforce_budget(deadline=step.deadline):
            # Still over the budget: the next round follows at once, paced like any other step. Counted
            # as no work, eviction went one step per tick_s (a few hundred pages a second), and a store
            # paged at 1M memories stayed 4x over a 64 MiB budget for minutes.
            await self.pacer.rest(step, "evict")
            return True
        self.pacer.end(step, "retier")
        return worked

    async def _page(self, state: TierState, now: float, step: Step) -> tuple[Step, bool]:
        """Move short-term overflow into pages, one writer job per step-sized plan."""
        worked = False
        scan_idle = time.monotonic() - self._idle_scan_at.get(state.ns_id, 0.0) >= IDLE_SCAN_S
        if scan_idle:
            self._idle_scan_at[state.ns_id] = time.monotonic()
        for _ in range(JOBS_PER_ROUND):
            if not self._current(state):
                break
            if step.over():
                step = await self.pacer.rest(step, "page")
            limit = min(self._fits("plan", self.cfg.tick_turns), self._fits("install", self.cfg.tick_turns))
            started = time.perf_counter()
            plans = plan_pages(state, now, limit, scan_idle=scan_idle, deadline=step.deadline)
            scan_idle = False
            if not plans:
                break
            self.pacer.learn("plan", _items(plans), time.perf_counter() - started)
            worked = True
            step, installed = await self._commit_pages(state, plans, step)
            if not installed:
                break  # nothing moved (purged meanwhile): the next round plans afresh, not a busy loop
        return step, worked

    async def _index_docs(self, state: TierState, step: Step) -> tuple[Step, bool]:
        """Index the coarse documents of changed rings and pages and the facts of consolidated pages."""
        worked = False
        for _ in range(JOBS_PER_ROUND):
            if not (self._current(state) and (state.dirty_rings or state.pending_docs or state.pending_facts)):
                break
            worked = True
            if step.over():
                step = await self.pacer.rest(step, "docs")
            if state.refresh(step.deadline):
                continue
            queued = len(state.pending_docs) + len(state.pending_facts)
            started = time.perf_counter()
            left = state.flush_docs(step.deadline, self._fits("doc", DOC_BATCH))
            self.pacer.learn("doc", queued - left, time.perf_counter() - started)
        return step, worked

    async def _commit_pages(self, state: TierState, plans: list[PagePlan], step: Step) -> tuple[Step, int]:
        """Store the plans in one writer job; its RAM update (installing the pages) runs after commit.
        Returns the next step and how many pages were installed."""
        ns_id = state.ns_id
        memories, pages_db = self.manager._memories, self.manager._pages
        for plan in plans:
            for memory_id in plan.ids:
                state.pending[memory_id] = plan.page.id

        def run(txn: lmdb.Transaction) -> list[PagePlan]:
            kept = []
            for plan in plans:
                page = plan.page
                present = [i for i in page.members if txn.get(keys.memory_key(ns_id, i), db=memories) is not None]
                if len(present) != len(page.members):  # purged while the plan waited
                    page.members = present
                    keep = set(present)
                    moving = [(s, i, r) for s, i, r in zip(plan.slots, plan.ids, plan.rows) if i in keep]
                    plan.slots, plan.ids, plan.rows = (list(x) for x in zip(*moving)) if moving else ([], [], [])
                key = records.page_key(ns_id, page.id)
                if page.members:
                    txn.put(key, records.encode(page), db=pages_db)
                    kept.append(plan)
                else:
                    txn.delete(key, db=pages_db)
            return kept

        def apply(kept: list[PagePlan]) -> int:
            started = time.perf_counter()
            for plan in plans:
                for memory_id in plan.ids:
                    state.pending.pop(memory_id, None)
            if not self._current(state):
                return 0  # the namespace was purged meanwhile
            for plan in kept:
                moving = [(s, r) for s, i, r in zip(plan.slots, plan.ids, plan.rows) if state.slot_of.get(i) == s]
                new = plan.page.id not in state.pages
                state.install_page(plan.page, [s for s, _ in moving], [r for _, r in moving])
                state.counters.pages_formed += int(new)
            # This runs on the loop too, in one piece: the plan was sized for it.
            took = time.perf_counter() - started
            self.pacer.record(took, "install")
            self.pacer.learn("install", _items(kept), took)
            return len(kept)

        try:
            installed, step = await self.pacer.during(step, "page", self.writer.submit(run, apply))
        except BaseException:
            for plan in plans:
                for memory_id in plan.ids:
                    state.pending.pop(memory_id, None)
            raise
        return step, installed

    # ------------------------------------------------------------------ the consolidator

    async def consolidate_round(self) -> bool:
        """Store one batch of consolidated pages while the policy works on the next (its process and the
        loop work side by side); returns True if there was a batch."""
        if not self.cfg.consolidate:
            return False
        started = time.monotonic()
        step = self.pacer.begin()
        if self._next_batch is None:
            self._next_batch, step = await self._send_batch(step)
        batch, self._next_batch = self._next_batch, None
        if batch is None:
            self.pacer.end(step, "consolidate")
            return False
        try:
            self._next_batch, step = await self._send_batch(step)
            outcomes, step = await self.pacer.during(step, "views", batch.policy)
            done = []
            for (state, page_id, members, _), (result, policy_name, failed) in zip(batch.work, outcomes):
                state.counters.policy_failures += int(failed)
                for name, value in result.usage.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        state.policy_usage[name] = state.policy_usage.get(name, 0) + value
                facts = [FactRecord(page=page_id, text=f.text, sources=list(f.sources), event_time=f.event_time,
                                    meta=dict(f.meta)) for f in result.facts]
                done.append((state, page_id, members, result, policy_name, facts))
            while done:
                size = self._fits("knowledge", len(done))  # pages whose RAM update fits in a step
                step = await self._store_consolidated(done[:size], step)
                done = done[size:]
        finally:
            self._in_policy -= batch.keys
        for state in {state for state, *_ in batch.work}:
            step, _ = await self._index_docs(state, step)  # the facts just installed
        self.pacer.end(step, "docs")
        if self.cfg.consolidate_pages_per_s > 0:
            pause = len(batch.work) / self.cfg.consolidate_pages_per_s - (time.monotonic() - started)
            await asyncio.sleep(max(pause, 0))
        return True

    async def _send_batch(self, step: Step) -> tuple[_Batch | None, Step]:
        """Pick up to ``tick_pages`` closed pages (oldest first, none already with the policy), read their
        turns and hand them to the policy; None when there are none."""
        picked: list[tuple[TierState, int]] = []
        for state in list(self.manager.states.values()):
            room = self.cfg.tick_pages - len(picked)
            if room <= 0:
                break
            waiting = state.oldest_unconsolidated(room + len(self._in_policy))
            picked += [(state, i) for i in waiting if (state.ns_id, i) not in self._in_policy][:room]
        work = []
        for state, page_id in picked:
            if step.over():
                step = await self.pacer.rest(step, "views")
            page = state.pages.get(page_id)
            if page is not None and page.closed and not page.consolidated and self._current(state):
                members = list(page.members)
                work.append((state, page_id, members, self._view(state, page_id, members)))
        if not work:
            return None, step
        keys = {(state.ns_id, page_id) for state, page_id, *_ in work}
        self._in_policy |= keys
        task = asyncio.ensure_future(self.policy.consolidate_many([view for *_, view in work]))
        return _Batch(work, task, keys), step

    async def _store_consolidated(self, done: list[tuple], step: Step) -> Step:
        """Store pages' knowledge in one writer job and install it in RAM after commit."""
        pages_db, knowledge_db = self.manager._pages, self.manager._knowledge

        def run(txn: lmdb.Transaction) -> list[PageRecord | None]:
            return [self._store_knowledge(txn, pages_db, knowledge_db, *item) for item in done]

        def apply(stored_pages: list[PageRecord | None]) -> None:
            started = time.perf_counter()
            for (state, page_id, members, _, _, facts), stored in zip(done, stored_pages):
                current = state.pages.get(page_id)
                if stored is None or current is None or current.members != members or not self._current(state):
                    continue
                # Keep the RAM heat (hits since the record was read); take the knowledge.
                current.consolidated, current.policy, current.summary = True, stored.policy, stored.summary
                current.keywords, current.entities, current.facts = stored.keywords, stored.entities, stored.facts
                state.install_knowledge(current, facts)
                state.counters.consolidated += 1
            took = time.perf_counter() - started
            self.pacer.record(took, "knowledge")
            self.pacer.learn("knowledge", len(done), took)

        _, step = await self.pacer.during(step, "knowledge", self.writer.submit(run, apply))
        return step

    @staticmethod
    def _store_knowledge(txn, pages_db, knowledge_db, state: TierState, page_id: int, members: list[int],
                         result, policy_name: str, facts: list[FactRecord]) -> PageRecord | None:
        """One page's consolidation inside the write transaction; None when the page changed meanwhile."""
        ns_id = state.ns_id
        raw = txn.get(records.page_key(ns_id, page_id), db=pages_db)
        if raw is None:
            return None
        stored = records.decode_page(raw)
        if stored.members != members or stored.consolidated:
            return None  # changed (a purge) while the policy ran: consolidated again later
        stored.consolidated, stored.policy = True, policy_name
        stored.summary, stored.keywords = result.summary, list(result.keywords)
        stored.entities = [EntityRecord(e.name, list(e.sources)) for e in result.entities]
        stored.facts = len(facts)
        keys.delete_prefix(txn, knowledge_db, records.fact_prefix(ns_id, page_id))
        for index, fact in enumerate(facts):
            txn.put(records.fact_key(ns_id, page_id, index), records.encode(fact), db=knowledge_db)
        txn.put(records.page_key(ns_id, page_id), records.encode(stored), db=pages_db)
        return stored

    def _view(self, state: TierState, page_id: int, members: list[int]) -> PageView:
        from ..engine.records import decode_memory

        turns = []
        with self.manager.env.read() as txn:
            for memory_id in members:
                raw = txn.get(keys.memory_key(state.ns_id, memory_id), db=self.manager._memories)
                if raw is None:
                    continue
                mem = decode_memory(raw)
                turns.append(TurnView(mem.id, mem.text, mem.session, mem.source, mem.event_time, mem.created_at))
        return PageView(state.name, page_id, tuple(turns))

    # ------------------------------------------------------------------ heat

    async def _flush_heat(self, step: Step) -> Step:
        """Write decayed hit counts back (bounded); losing the last seconds of them to a crash only
        makes those pages a little colder."""
        pages_db = self.manager._pages
        work = []
        for state in self.manager.states.values():
            for page_id in list(islice(state.dirty_heat, 512)):
                page = state.pages.get(page_id)
                state.dirty_heat.discard(page_id)
                if page is not None:
                    work.append((state.ns_id, page_id, page.hits, page.touched_at))
        if not work:
            return step

        def run(txn: lmdb.Transaction) -> None:
            for ns_id, page_id, hits, touched_at in work:
                key = records.page_key(ns_id, page_id)
                raw = txn.get(key, db=pages_db)
                if raw is not None:
                    stored = records.decode_page(raw)
                    stored.hits, stored.touched_at = hits, touched_at
                    txn.put(key, records.encode(stored), db=pages_db)

        # Unmarked: an index snapshot with older heat is still a valid one (store/marks.py).
        _, step = await self.pacer.during(step, "heat", self.writer.submit(run, marked=False))
        return step


def _items(plans: list[PagePlan]) -> int:
    """What paging work is measured in: turns moved plus pages touched."""
    return sum(len(plan.ids) + 1 for plan in plans)
