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
RETIER_S = 5.0
BUSY_TICK_S = 0.02
"""Pause between ticks while there is a backlog (the loop still serves requests in between)."""


class Scheduler:
    """Background work of the tiers. ``start`` on the daemon's loop; ``stop`` before the writer stops."""

    def __init__(self, manager: TierManager, writer: WriterThread, policy: PolicyRunner):
        self.manager = manager
        self.cfg = manager.cfg
        self.writer = writer
        self.policy = policy
        self._task: asyncio.Task | None = None
        self._heat_at = self._retier_at = 0.0
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
            await asyncio.sleep(BUSY_TICK_S if busy else self.cfg.tick_s)

    # ------------------------------------------------------------------ one tick

    async def tick(self, now: float | None = None) -> bool:
        """One bounded round of work; returns True when work remains (tick again soon)."""
        now = time.time() if now is None else now
        self.ticks += 1
        busy = False
        for state in list(self.manager.states.values()):
            plans = plan_pages(state, now)
            if plans:
                await self._commit_pages(state, plans)
                busy = True
            await asyncio.sleep(0)
        if self.cfg.consolidate:
            busy = await self._consolidate() or busy
        if now - self._heat_at >= HEAT_FLUSH_S:
            self._heat_at = now
            await self._flush_heat()
        if now - self._retier_at >= RETIER_S:
            self._retier_at = now
            self.manager.retier(now)
        self.manager.enforce_budget(now=now)
        return busy or self.backlog() > 0

    def backlog(self) -> int:
        """Short-term turns over capacity plus closed pages not yet consolidated."""
        total = 0
        for state in self.manager.states.values():
            total += sum(max(len(ring) - self.cfg.stm_capacity, 0) for ring in state.rings.values())
            if self.cfg.consolidate:
                total += sum(1 for p in state.pages.values() if p.closed and not p.consolidated)
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
                state.install_page(plan.page, [s for s, _ in moving], [r for _, r in moving], moved_from_stm=True)
                state.counters.pages_formed += int(new)

        try:
            await self.writer.submit(run, apply)
        except BaseException:
            for plan in plans:
                for memory_id in plan.ids:
                    state.pending.pop(memory_id, None)
            raise

    # ------------------------------------------------------------------ consolidation

    async def _consolidate(self) -> bool:
        picked = []
        for state in self.manager.states.values():
            for page_id in sorted(state.pages):
                page = state.pages[page_id]
                if page.closed and not page.consolidated:
                    picked.append((state, page_id))
                    if len(picked) >= self.cfg.tick_pages:
                        break
            if len(picked) >= self.cfg.tick_pages:
                break
        for state, page_id in picked:
            await self._consolidate_page(state, page_id)
        return bool(picked)

    async def _consolidate_page(self, state: TierState, page_id: int) -> None:
        page = state.pages.get(page_id)
        if page is None:
            return
        members = list(page.members)
        view = self._view(state, page_id, members)
        result, policy_name, failed = await self.policy.consolidate(view)
        state.counters.policy_failures += int(failed)
        ns_id = state.ns_id
        facts = [FactRecord(page=page_id, text=f.text, sources=list(f.sources), event_time=f.event_time,
                            meta=dict(f.meta)) for f in result.facts]
        pages_db, knowledge_db = self.manager._pages, self.manager._knowledge

        def run(txn: lmdb.Transaction) -> PageRecord | None:
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

        def apply(stored: PageRecord | None) -> None:
            current = state.pages.get(page_id)
            if stored is None or current is None or current.members != members or self.manager.states.get(ns_id) is not state:
                return
            # Keep the RAM heat (hits since the record was read); take the knowledge.
            current.consolidated, current.policy, current.summary = True, stored.policy, stored.summary
            current.keywords, current.entities, current.facts = stored.keywords, stored.entities, stored.facts
            state.install_knowledge(current, facts)
            state.counters.consolidated += 1

        await self.writer.submit(run, apply)

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
