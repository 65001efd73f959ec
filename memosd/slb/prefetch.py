"""Prediction: after a recall, make resident the pages the next recall is likely to need.

The heuristic (docs/slb.md, "Prefetching"):

1. **Adjacent in time.** For each page a recall returned turns from (best hit first), the page formed
   just before it and the one just after it in the same session: a conversation that asks about one
   moment tends to ask about what happened around it next.
2. **Adjacent in topic.** Pages that share the hit pages' entities (the long-term entity index),
   weighted by rarity: an entity on ``len(pages)`` pages adds ``1 / len(pages)``. Entities named on
   more than ``COMMON_ENTITY_SHARE`` of a namespace's pages (the speakers of a conversation, say), or
   on more than ``COMMON_ENTITY_PAGES``, are skipped: they point everywhere, so they predict nothing.

Prefetching runs after the reply is sent (``loop.call_soon``), warms at most ``prefetch_pages`` pages
per recall, and only into room under the residency budget: it never evicts a page to make room for a
guess. A warmed page counts as *used* when a later recall needs it while it is still resident, and
as *wasted* when it is evicted first; their ratio is the usefulness reported in ``stats``,
``memosd tiers`` and the metrics endpoint.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Sequence

from ..tiers.manager import TierManager
from ..tiers.state import TierState

COMMON_ENTITY_SHARE = 0.2
"""An entity named on more than this share of a namespace's pages does not predict topic neighbours."""
COMMON_ENTITY_PAGES = 64
"""Nor does one named on more pages than this (and the work per recall stays bounded)."""
QUEUE = 16
"""Recalls whose predictions wait at most (older ones are dropped: a burst of recalls is not worth
warming for once it has passed)."""
DEFAULT_PAGE_BYTES = 8192
"""Room a page is assumed to need before any page of its namespace is resident."""


def time_neighbours(state: TierState, page_id: int) -> list[int]:
    """The live pages formed just before and just after ``page_id`` in its session."""
    order = state.session_pages.get(state.pages[page_id].session, [])
    i = bisect_left(order, page_id)
    found = []
    for step, start in ((-1, i - 1), (1, i + 1)):
        j = start
        while 0 <= j < len(order) and order[j] not in state.pages:  # purged pages linger in the order
            j += step
        if 0 <= j < len(order):
            found.append(order[j])
    return found


def topic_neighbours(state: TierState, page_ids: Sequence[int]) -> list[int]:
    """Pages sharing the given pages' entities, most (rarity-weighted) shared first."""
    common = min(COMMON_ENTITY_PAGES, max(1, int(COMMON_ENTITY_SHARE * len(state.pages))))
    scores: Counter[int] = Counter()
    for page_id in page_ids:
        for name in state.entities_of(page_id):
            pages = state.entities.pages_of(name)
            if len(pages) > common:
                continue
            for other in pages.tolist():
                scores[other] += 1.0 / len(pages)
    return [p for p, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def predict(state: TierState, hit_pages: Sequence[int], limit: int) -> list[int]:
    """Up to ``limit`` non-resident pages likely to be asked for next, most likely first."""
    hits = [p for p in hit_pages if p in state.pages]
    chosen: dict[int, None] = {}
    candidates = [n for p in hits for n in time_neighbours(state, p)] + topic_neighbours(state, hits)
    for page_id in candidates:
        if page_id not in state.blocks and page_id not in chosen and page_id in state.pages:
            chosen[page_id] = None
            if len(chosen) >= limit:
                break
    return list(chosen)


class Prefetcher:
    """Queues each recall's hit pages and warms their predicted neighbours once the reply is out."""

    def __init__(self, cfg, manager: TierManager):
        """``cfg`` is the [slb] section (``prefetch``, ``prefetch_pages``)."""
        self.cfg = cfg
        self.manager = manager
        self.queue: deque[tuple[TierState, list[int]]] = deque(maxlen=QUEUE)
        self._scheduled = False

    @property
    def enabled(self) -> bool:
        return self.cfg.prefetch and self.cfg.prefetch_pages > 0

    def after_recall(self, state: TierState, hit_pages: list[int]) -> None:
        """A recall returned turns of these pages (best first): warm their neighbours soon."""
        if not self.enabled or not hit_pages or len(state.blocks) == len(state.pages):
            return  # off, nothing returned from a page, or every page resident: nothing to predict
        self.queue.append((state, hit_pages))
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the daemon's loop (a script driving the engine): warm now
            self.run()
            return
        self._scheduled = True
        loop.call_soon(self.run)

    def run(self) -> None:
        """Warm the predicted pages of every queued recall, within the budget's free room."""
        self._scheduled = False
        manager = self.manager
        while self.queue:
            state, hits = self.queue.popleft()
            if manager.states.get(state.ns_id) is not state:  # the namespace was purged meanwhile
                continue
            limit = self.cfg.prefetch_pages
            target = manager.target_bytes()
            if target is not None:
                per_page = state.block_bytes / len(state.blocks) if state.blocks else DEFAULT_PAGE_BYTES
                limit = min(limit, int((target - manager.resident_bytes()) // max(per_page, 1.0)))
            if limit <= 0:
                continue
            state.warm(predict(state, hits, limit))
        if manager.target_bytes() is not None:
            manager.enforce_budget()  # a page larger than the estimate may have gone over

    def info(self) -> dict[str, int | float | None]:
        """Pages warmed, used and wasted over all namespaces, and usefulness (used / settled)."""
        totals = Counter()
        for state in self.manager.states.values():
            c = state.counters
            totals.update(prefetched=c.prefetched, used=c.prefetch_used, wasted=c.prefetch_wasted)
        settled = totals["used"] + totals["wasted"]
        return {"prefetched": totals["prefetched"], "used": totals["used"], "wasted": totals["wasted"],
                "usefulness": round(totals["used"] / settled, 4) if settled else None}
