"""What ``memosd tiers`` and ``memosd show page`` show: snapshots of the tiers as protocol messages."""

from __future__ import annotations

import time

import psutil

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import NotFoundError

from ..engine.namespace import TIER_NAMES
from .manager import TierManager
from .records import PageRecord
from .scheduler import Scheduler
from .state import TIER_LTM, TIER_MTM, TIER_STM, TierState


def namespace_tiers(manager: TierManager, state: TierState, now: float) -> m.NamespaceTiers:
    table = state.table
    counts = {TIER_STM: 0, TIER_MTM: 0, TIER_LTM: 0}
    n = table.size
    present = table.present[:n]
    for tier in counts:
        counts[tier] = int(((table.tier[:n] == tier) & present).sum())
    p50, p90, p99 = manager.heat_percentiles(state, now) or [0.0, 0.0, 0.0]
    return m.NamespaceTiers(
        name=state.name, stm=counts[TIER_STM], mtm=counts[TIER_MTM], ltm=counts[TIER_LTM],
        pages=len(state.pages), open_pages=len(state.open_page),
        consolidated_pages=sum(1 for p in state.pages.values() if p.consolidated),
        facts=state.fact_count, resident_pages=len(state.blocks), resident_bytes=state.block_bytes,
        fixed_bytes=state.always_resident_bytes(), heat_p50=p50, heat_p90=p90, heat_p99=p99,
        policy_usage=dict(state.policy_usage), **state.counters.as_dict(),
    )


def tiers_result(manager: TierManager, scheduler: Scheduler, states: list[TierState]) -> m.TiersResult:
    now = time.time()
    return m.TiersResult(
        namespaces=[namespace_tiers(manager, s, now) for s in states],
        budget_bytes=manager.cfg.budget_bytes, resident_bytes=manager.resident_bytes(),
        backlog=scheduler.backlog(), policy=scheduler.policy.name,
        rss_bytes=psutil.Process().memory_info().rss,
        scheduler=scheduler_info(scheduler),
    )


def scheduler_info(scheduler: Scheduler) -> m.SchedulerInfo:
    pacer = scheduler.pacer
    return m.SchedulerInfo(step_s=pacer.step_s, steps=pacer.steps, longest_step_s=round(pacer.longest_s, 6),
                           busy_s=round(pacer.total_s, 3), step_histogram=pacer.histogram())


def page_result(manager: TierManager, state: TierState, page_id: int) -> m.PageResult:
    page = state.pages.get(page_id)
    if page is None:
        raise NotFoundError(f"no page {page_id} in namespace {state.name!r}")
    slots = state.page_slots.get(page_id) or []
    stored = manager.read_facts(state.ns_id, page_id) if page.facts else []
    knowledge = _knowledge(manager, state, page)
    return m.PageResult(
        id=page.id, session=page.session, members=list(page.members), first_time=page.first_time,
        last_time=page.last_time, tier=TIER_NAMES[int(state.table.tier[slots[0]])] if slots else "mtm",
        closed=page.closed, consolidated=page.consolidated, resident=page_id in state.blocks,
        heat=round(state.page_heat(page), 6), hits=page.hits, touched_at=page.touched_at,
        prefetched=page_id in state.prefetched, policy=page.policy,
        summary=knowledge.summary, keywords=list(knowledge.keywords),
        entities=[m.EntityInfo(name=e.name, sources=list(e.sources)) for e in knowledge.entities],
        facts=[m.FactInfo(text=f.text, sources=list(f.sources), event_time=f.event_time, meta=dict(f.meta))
               for f in stored],
    )


def _knowledge(manager: TierManager, state: TierState, page: PageRecord) -> PageRecord:
    """The page with its summary, keywords and entities (kept in the store, not in RAM), as the tiers
    see it: none while the RAM copy is not consolidated, or when the store holds another version of it
    (a consolidation or purge committed a moment ago, not applied yet)."""
    stored = manager.read_page(state.ns_id, page.id) if page.consolidated else None
    if stored is None or not stored.consolidated or stored.members != page.members:
        return PageRecord(id=page.id, session=page.session, members=page.members, first_time=page.first_time,
                          last_time=page.last_time, created_at=page.created_at)
    return stored


def entity_result(manager: TierManager, state: TierState | None, name: str, limit: int) -> m.EntityResult:
    key = name.strip().casefold()
    pages = sorted(state.entities.pages_of(key).tolist()) if state is not None and key else []
    if not pages:
        raise NotFoundError(f"no consolidated page names {name!r}")
    pages = pages[-max(limit, 1):]
    mentions: list[int] = []
    facts: list[m.FactInfo] = []
    for page_id in pages:
        page = _knowledge(manager, state, state.pages[page_id])
        cited = sorted({i for e in page.entities if e.name.casefold() == key for i in e.sources})
        mentions.extend(cited)
        for fact in manager.read_facts(state.ns_id, page_id):
            if set(fact.sources) & set(cited) or key in fact.text.casefold():
                facts.append(m.FactInfo(text=fact.text, sources=list(fact.sources), event_time=fact.event_time,
                                        meta=dict(fact.meta)))
    spans = [state.pages[p] for p in pages]
    return m.EntityResult(name=name, pages=pages, mentions=mentions, facts=facts,
                          first_time=min(p.first_time for p in spans), last_time=max(p.last_time for p in spans))
