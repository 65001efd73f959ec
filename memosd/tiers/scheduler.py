"""The tier scheduler: an asyncio task that pages, consolidates, re-tiers and evicts in small steps.

Each tick does a bounded amount of work and yields to the event loop between
steps, so requests interleave with it; the CPU-heavy part (consolidation)
runs in another process or thread (policy.py), and every store change goes
through the writer thread like any write. Triggers:

- size: a ring over ``stm_capacity`` is paged on the next tick;
- time: idle rings and open pages are paged/closed after ``stm_idle_s`` / ``page_close_s``;
  heat is written back every ``HEAT_FLUSH_S``, cold pages demoted every ``RETIER_S``;
- memory: resident page vectors over the budget, or the machine short of
  ``min_available_bytes``, are evicted coldest first every tick (recall also
  evicts right after a query that faulted pages in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import lmdb

from ..logs import get_logger
from ..plugins.api import PageView, TurnView
from ..store import keys
from ..store.writer import WriterThread
from . import records
from .forming import PagePlan, plan_pages
from .manager import TierManager
from .policy import PolicyRunner
from .records import EntityRecord, FactRecord, PageRecord
from .state import TierState

log = get_logger("memosd.tiers.scheduler")

HEAT_FLUSH_S = 10.0
BUSY_TICK_S = 0.02
"""Pause between ticks while there is a backlog and no request traffic."""
TRAFFIC_WINDOW_S = 0.2
"""A request this recent means clients are active: the scheduler then ticks only every tick_s, so its
share of the event loop stays small (idle-priority background work, like an OS's page daemon)."""
IDLE_SCALE = 8
"""How many times more work a tick does when no client is waiting."""
URGENT_OVERFLOW = 50_000
"""...unless this many short-term turns wait to be paged: short-term memory is always resident and must
not grow without bound under sustained writes. The scheduler then ticks every BUSY_TICK_S, still in small
steps. (Recall scores at most FINE_OVERFLOW of them per ring in full, so a backlog below this does not
slow recall down.)"""
DOC_STEP_S = 0.003
"""Longest stretch of coarse-document indexing between two chances for requests to run."""
PAGES_PER_COMMIT = 8
"""Pages formed or consolidated per writer job: each job's RAM update runs on the event loop in one go,
so this bounds how long the scheduler can hold a request up (a few milliseconds)."""


class Scheduler:
    """Background work of the tiers. ``start`` on the daemon's loop; ``stop`` before the writer stops."""

    def __init__(self, manager: TierManager, writer: WriterThread, policy: PolicyRunner,
                 last_request_at: Callable[[], float] | None = None):
        self.manager = manager
        self.last_request_at = last_request_at or (lambda: 0.0)
        """time.perf_counter() of the latest client request (the server's)."""
        self.cfg = manager.cfg
        self.writer = writer
        self.policy = policy
        self._task: asyncio.Task | None = None
        self._heat_at = 0.0
        self.ticks = 0
        self.paused = False
        """Set by tests and benchmarks that need the scheduler still (e.g. to measure it busy vs idle)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run(), name="memosd-tiers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping; errors were logged
                pass
        self.policy.close()

    async def _run(self) -> None:
        while True:
            try:
                busy = False if self.paused else await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed tick is logged and retried, never fatal
                log.exception("tier scheduler tick failed", error=repr(exc))
                busy = False
            await asyncio.sleep(self._pause(busy))

    def _pause(self, busy: bool) -> float:
        if not busy:
            return self.cfg.tick_s
        return self.cfg.tick_s if self._traffic() and self.stm_overflow() < URGENT_OVERFLOW else BUSY_TICK_S

    def _traffic(self) -> bool:
        return time.perf_counter() - self.last_request_at() < TRAFFIC_WINDOW_S

    def stm_overflow(self) -> int:
        """Short-term turns over the rings' capacity: always searched, so they make every recall slower."""
        cap = self.cfg.stm_capacity
        return sum(max(len(ring) - cap, 0) for state in self.manager.states.values() for ring in state.rings.values())

    # ------------------------------------------------------------------ one tick

    async def tick(self, now: float | None = None) -> bool:
        """One bounded round of work; returns True when work remains (tick again soon)."""
        now = time.time() if now is None else now
        self.ticks += 1
        busy = False
        # Without traffic the scheduler works in larger steps: nobody waits behind them.
        scale = 1 if self._traffic() else IDLE_SCALE
        for state in list(self.manager.states.values()):
            plans = plan_pages(state, now, self.cfg.tick_turns * scale)
            for start in range(0, len(plans), PAGES_PER_COMMIT):
                await self._commit_pages(state, plans[start:start + PAGES_PER_COMMIT])
                busy = True
            await asyncio.sleep(0)
            state.refresh()
            while state.flush_docs(DOC_STEP_S):
                busy = True
                await asyncio.sleep(0)
        if self.cfg.consolidate:
            busy = await self._consolidate(self.cfg.tick_pages * scale) or busy
            for state in list(self.manager.states.values()):
                while state.flush_docs(DOC_STEP_S):  # the knowledge just consolidated
                    busy = True
                    await asyncio.sleep(0)
        if now - self._heat_at >= HEAT_FLUSH_S:
            self._heat_at = now
            await self._flush_heat()
        self.manager.retier(now)
        self.manager.enforce_budget()
        return busy or self.backlog() > 0

    def backlog(self) -> int:
        """Short-term turns over capacity, coarse documents not yet indexed, closed pages not yet consolidated."""
        total = self.stm_overflow()
        for state in self.manager.states.values():
            total += len(state.pending_docs) + len(state.pending_facts) + len(state.dirty_rings)
            if self.cfg.consolidate:
                total += len(state.unconsolidated)
        return total

    # ------------------------------------------------------------------ paging

    async def _commit_pages(self, state: TierState, plans: list[PagePlan]) -> None:
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

        def apply(kept: list[PagePlan]) -> None:
            for plan in plans:
                for memory_id in plan.ids:
                    state.pending.pop(memory_id, None)
            if self.manager.states.get(ns_id) is not state:
                return  # the namespace was purged meanwhile
            for plan in kept:
                moving = [(s, r) for s, i, r in zip(plan.slots, plan.ids, plan.rows) if state.slot_of.get(i) == s]
                new = plan.page.id not in state.pages
                state.install_page(plan.page, [s for s, _ in moving], [r for _, r in moving])
                state.counters.pages_formed += int(new)

        try:
            await self.writer.submit(run, apply)
        except BaseException:
            for plan in plans:
                for memory_id in plan.ids:
                    state.pending.pop(memory_id, None)
            raise

    # ------------------------------------------------------------------ consolidation

    async def _consolidate(self, limit: int) -> bool:
        picked: list[tuple[TierState, int]] = []
        for state in self.manager.states.values():
            room = limit - len(picked)
            if room <= 0:
                break
            picked.extend((state, page_id) for page_id in state.oldest_unconsolidated(room))
        for start in range(0, len(picked), PAGES_PER_COMMIT):
            await self._consolidate_pages(picked[start:start + PAGES_PER_COMMIT])
        return bool(picked)

    async def _consolidate_pages(self, picked: list[tuple[TierState, int]]) -> None:
        """Run the policy on these pages (queued together), then store all their knowledge in one job."""
        work = []
        for state, page_id in picked:
            page = state.pages.get(page_id)
            if page is not None:
                work.append((state, page_id, list(page.members)))
        outcomes = await asyncio.gather(*(self.policy.consolidate(self._view(state, page_id, members))
                                          for state, page_id, members in work))
        done = []
        for (state, page_id, members), (result, policy_name, failed) in zip(work, outcomes):
            state.counters.policy_failures += int(failed)
            for name, value in result.usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    state.policy_usage[name] = state.policy_usage.get(name, 0) + value
            facts = [FactRecord(page=page_id, text=f.text, sources=list(f.sources), event_time=f.event_time,
                                meta=dict(f.meta)) for f in result.facts]
            done.append((state, page_id, members, result, policy_name, facts))
        pages_db, knowledge_db = self.manager._pages, self.manager._knowledge

        def run(txn: lmdb.Transaction) -> list[PageRecord | None]:
            return [self._store_knowledge(txn, pages_db, knowledge_db, *item) for item in done]

        def apply(stored_pages: list[PageRecord | None]) -> None:
            for (state, page_id, members, _, _, facts), stored in zip(done, stored_pages):
                current = state.pages.get(page_id)
                if (stored is None or current is None or current.members != members
                        or self.manager.states.get(state.ns_id) is not state):
                    continue
                # Keep the RAM heat (hits since the record was read); take the knowledge.
                current.consolidated, current.policy, current.summary = True, stored.policy, stored.summary
                current.keywords, current.entities, current.facts = stored.keywords, stored.entities, stored.facts
                state.install_knowledge(current, facts)
                state.counters.consolidated += 1

        await self.writer.submit(run, apply)

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

    async def _flush_heat(self) -> None:
        """Write decayed hit counts back (bounded); losing the last seconds of them to a crash only
        makes those pages a little colder."""
        pages_db = self.manager._pages
        work = []
        for state in self.manager.states.values():
            for page_id in list(state.dirty_heat)[:512]:
                page = state.pages.get(page_id)
                state.dirty_heat.discard(page_id)
                if page is not None:
                    work.append((state.ns_id, page_id, page.hits, page.touched_at))
        if not work:
            return

        def run(txn: lmdb.Transaction) -> None:
            for ns_id, page_id, hits, touched_at in work:
                key = records.page_key(ns_id, page_id)
                raw = txn.get(key, db=pages_db)
                if raw is not None:
                    stored = records.decode_page(raw)
                    stored.hits, stored.touched_at = hits, touched_at
                    txn.put(key, records.encode(stored), db=pages_db)

        await self.writer.submit(run)
