"""Time slices for the scheduler's work on the event loop.

Requests and background work share one event loop, so what bounds a request's
wait behind the scheduler is the longest stretch the scheduler holds the loop.
The scheduler therefore works in *steps* bounded in time, not in items: a step
ends when its deadline passes, and where one indivisible piece of work (a writer
job's RAM update, say) must fit in a step, the pacer sizes it from what that kind
of work has cost per item so far.

Between steps the scheduler yields. While clients are active it then rests for
as long as the step took times ``(1 - share) / share``, so it takes at most
``share`` of the loop, and at most ``OVERLOAD_SHARE`` while requests queue up
(the loop is behind); without traffic it goes on at once (an idle machine
settles a backlog as fast as it can, and a request that arrives waits one step
at most).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..logs import get_logger

log = get_logger("memosd.tiers.pacing")

STEP_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
"""Upper bounds of the step-length histogram (the last bucket is everything longer)."""
T = TypeVar("T")
OVERLOAD_SHARE = 0.05
"""The scheduler's share of the loop while requests queue up (it still progresses: short-term memory must
not grow without bound under sustained load)."""
OVERRUN_LOG = 20
"""A step this many times the limit is logged (something in it was not sized or cut by time)."""
_EWMA = 0.2
"""Weight of the newest measurement in a kind of work's cost per item."""


@dataclass(slots=True)
class Step:
    """One slice of loop time: started at ``start``, to end by ``deadline`` (``time.perf_counter()``)."""

    start: float
    deadline: float

    def over(self) -> bool:
        return time.perf_counter() >= self.deadline


class Pacer:
    """Hands out steps of at most ``step_s`` and rests between them (see the module docstring)."""

    def __init__(self, step_s: float, share: float, traffic: Callable[[], bool],
                 backlogged: Callable[[], bool] = lambda: False):
        self.step_s = step_s
        self.share = min(max(share, OVERLOAD_SHARE), 1.0)
        self.traffic = traffic
        self.backlogged = backlogged
        """True while requests wait to be served: the loop is behind, and the scheduler yields more."""
        self._cost: dict[str, float] = {}
        self.steps = 0
        self.longest_s = 0.0
        self.counts = [0] * (len(STEP_BUCKETS_S) + 1)
        """Steps per bucket of STEP_BUCKETS_S (the last: longer than all of them)."""
        self.total_s = 0.0

    def begin(self) -> Step:
        now = time.perf_counter()
        return Step(now, now + self.step_s)

    async def rest(self, step: Step, what: str) -> Step:
        """Record the step that ends now (``what`` it did), yield to requests, and begin the next step."""
        took = time.perf_counter() - step.start
        self.record(took, what)
        await asyncio.sleep(self._pause(took))
        return self.begin()

    def _pause(self, took: float) -> float:
        """How long to leave the loop to requests after a step of ``took`` seconds."""
        if not self.traffic():
            return 0.0
        share = OVERLOAD_SHARE if self.backlogged() else self.share
        return took * (1.0 - share) / share

    async def during(self, step: Step, what: str, awaitable: Awaitable[T]) -> tuple[T, Step]:
        """End ``step`` where the scheduler waits on work done elsewhere (a commit, the policy), await
        it, rest as after any step, and begin the next: returns (its result, the next step)."""
        took = time.perf_counter() - step.start
        self.record(took, what)
        result = await awaitable
        pause = self._pause(took)
        if pause:
            await asyncio.sleep(pause)
        return result, self.begin()

    def end(self, step: Step, what: str) -> None:
        """Record the last step of a round (the round's own pause follows)."""
        self.record(time.perf_counter() - step.start, what)

    def record(self, seconds: float, what: str) -> None:
        """Count one stretch of scheduler work on the loop (a step, or a writer job's RAM update); one
        far over the limit is logged with ``what`` it did."""
        if seconds > OVERRUN_LOG * self.step_s:
            log.warning("scheduler step overran", what=what, ms=round(seconds * 1000, 1),
                        limit_ms=round(self.step_s * 1000, 2))
        self.steps += 1
        self.total_s += seconds
        self.longest_s = max(self.longest_s, seconds)
        bucket = next((i for i, bound in enumerate(STEP_BUCKETS_S) if seconds <= bound), len(STEP_BUCKETS_S))
        self.counts[bucket] += 1

    # ------------------------------------------------------------------ sizing indivisible work

    def fits(self, kind: str, first_guess_s: float, ceiling: int) -> int:
        """How many items of ``kind`` one step can take, from their measured cost (at least 1, at most
        ``ceiling``); ``first_guess_s`` per item until a cost has been measured."""
        per_item = self._cost.get(kind, first_guess_s)
        return max(1, min(ceiling, int(self.step_s / per_item) if per_item > 0 else ceiling))

    def learn(self, kind: str, items: int, seconds: float) -> None:
        """Fold a measurement of ``items`` of ``kind`` taking ``seconds`` into its cost per item."""
        if items <= 0:
            return
        per_item = seconds / items
        old = self._cost.get(kind)
        self._cost[kind] = per_item if old is None else (1 - _EWMA) * old + _EWMA * per_item

    def histogram(self) -> list[tuple[float | None, int]]:
        """(upper bound in seconds, steps) per bucket; the last bucket, bound None, holds the longer ones."""
        return list(zip((*STEP_BUCKETS_S, None), self.counts))
