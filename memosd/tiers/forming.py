"""Page formation: how short-term overflow becomes pages (STM -> MTM).

The rule, applied by the scheduler to each session's ring, oldest turn first:

1. A ring keeps its ``stm_capacity`` newest turns. Older ones are paged; all of
   them are when the session has been idle for ``stm_idle_s``.
2. A paged turn joins its session's open page when all of these hold:
   - the page has fewer than ``page_max_turns`` turns;
   - the turn's time (event time, else write time) is within ``page_gap_s`` of
     the page's last turn;
   - the page has fewer than ``page_min_turns`` turns, or the cosine between
     the turn's hashed n-gram vector and the sum of the page's vectors is at
     least ``page_continuity`` (the topic goes on).
   Otherwise the open page is closed and the turn starts a new page.
3. A page that reaches ``page_max_turns`` closes; so does an open page whose
   session got no new turn for ``page_close_s``.

Turns of different sessions never share a page. The plan is computed on the
event loop from RAM; the writer commits it (dropping turns purged meanwhile).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import msgspec
import numpy as np

from .fine import Row
from .records import PageRecord
from .state import TierState


@dataclass(slots=True)
class PagePlan:
    """One page's new state and the short-term turns moving into it."""

    page: PageRecord
    slots: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def _turn_time(tiers: TierState, slot: int) -> float:
    event = float(tiers.table.event_time[slot])
    return event if math.isfinite(event) else float(tiers.table.valid_from[slot])


class _OpenPage:
    """A page being extended during planning, with the running sum of its vectors."""

    def __init__(self, plan: PagePlan, centroid: np.ndarray):
        self.plan = plan
        self.centroid = centroid

    def similarity(self, row: Row) -> float:
        buckets, weights = row
        norm = float(np.sqrt(weights @ weights)) * float(np.linalg.norm(self.centroid))
        return float(self.centroid[buckets] @ weights) / norm if norm > 0 else 0.0

    def take(self, slot: int, memory_id: int, row: Row, when: float) -> None:
        self.plan.slots.append(slot)
        self.plan.ids.append(memory_id)
        self.plan.rows.append(row)
        page = self.plan.page
        page.members.append(memory_id)
        page.last_time = max(page.last_time, when)
        self.centroid[row[0]] += row[1]


def plan_pages(tiers: TierState, now: float, limit: int, scan_idle: bool = True,
               deadline: float | None = None) -> list[PagePlan]:
    """Pages to create, extend or close now (at most ``limit`` turns moved). Rings over capacity are
    always looked at; idle rings (``stm_idle_s``) and idle open pages (``page_close_s``) only with
    ``scan_idle``, as finding them means visiting every ring and every open page. With a ``deadline``
    (``time.perf_counter()``), no ring is started after it once one was planned: a ring costs more than
    its turns (its open page's vectors, faulted in when evicted, and a centroid), so a limit in turns
    alone does not bound the time."""
    cfg = tiers.cfg
    plans: dict[int, PagePlan] = {}
    budget = limit
    next_id = tiers.next_page_id
    for code in sorted(tiers.rings if scan_idle else tiers.overflowing):
        if budget <= 0 or (plans and deadline is not None and time.perf_counter() >= deadline):
            break
        ring = tiers.rings.get(code)
        if not ring:
            continue
        # Rings grow by appending: the last turn is the newest (and this stays O(1) for a long ring).
        idle = now - float(tiers.table.valid_from[ring[-1]]) >= cfg.stm_idle_s
        take = min(len(ring) if idle else len(ring) - cfg.stm_capacity, budget)
        if take <= 0:
            continue
        budget -= take
        current = _open(tiers, code, plans)
        for slot in ring[:take]:
            row = tiers.stm_rows[slot]
            when = _turn_time(tiers, slot)
            if current is None or not _joins(current, row, when, cfg):
                if current is not None:
                    current.plan.page.closed = True
                page = PageRecord(id=next_id, session=tiers.sessions.value(code), members=[], first_time=when,
                                  last_time=when, created_at=now, touched_at=now)
                next_id += 1
                current = _OpenPage(plans.setdefault(page.id, PagePlan(page)), np.zeros(tiers.feat.dim))
            current.take(slot, int(tiers.table.ids[slot]), row, when)
            if len(current.plan.page.members) >= cfg.page_max_turns:
                current.plan.page.closed = True
    for code, page_id in sorted(tiers.open_page.items()) if scan_idle else ():
        page = tiers.pages.get(page_id)
        if page is None or page.closed or page_id in plans or not tiers.page_slots.get(page_id):
            continue
        last_write = float(tiers.table.valid_from[tiers.page_slots[page_id]].max())
        if now - last_write >= cfg.page_close_s:
            plans[page_id] = PagePlan(msgspec.structs.replace(page, members=list(page.members), closed=True))
    return list(plans.values())


def _open(tiers: TierState, code: int, plans: dict[int, PagePlan]) -> _OpenPage | None:
    """The session's open page as a planning copy, with its centroid (faulting its vectors in)."""
    page_id = tiers.open_page.get(code)
    page = tiers.pages.get(page_id) if page_id is not None else None
    if page is None or page.closed:
        return None
    plan = plans.get(page_id) or plans.setdefault(
        page_id, PagePlan(msgspec.structs.replace(page, members=list(page.members))))
    block = tiers.block(page_id)
    centroid = np.bincount(block.buckets, block.weights, minlength=tiers.feat.dim)
    for buckets, weights in plan.rows:
        centroid[buckets] += weights
    return _OpenPage(plan, centroid)


def _joins(current: _OpenPage, row: Row, when: float, cfg) -> bool:
    page = current.plan.page
    if len(page.members) >= cfg.page_max_turns or page.closed:
        return False
    if abs(when - page.last_time) > cfg.page_gap_s:
        return False
    return len(page.members) < cfg.page_min_turns or current.similarity(row) >= cfg.page_continuity

