"""Token accounting: lifetime totals and a sliding-window budget, safe to share between threads."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import BudgetExhausted

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests", "retries")


class Reservation:
    """Tokens set aside for one request before it is sent; settled with the tokens it really used."""

    __slots__ = ("at", "tokens")

    def __init__(self, at: float, tokens: int):
        self.at, self.tokens = at, tokens


class TokenLedger:
    """Counts every token spent and refuses requests that would overrun ``budget`` per ``window_s``.

    A request reserves its worst case (estimated prompt + ``max_tokens``)
    before it is sent, so two threads cannot both squeeze past the limit; the
    reservation is replaced by the tokens the server reports once it answers.
    """

    def __init__(self, budget: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.budget = budget
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: deque[Reservation] = deque()
        self._totals = dict.fromkeys(USAGE_KEYS, 0)

    def reserve(self, tokens: int) -> Reservation:
        """Set ``tokens`` aside in the current window, or raise BudgetExhausted (nothing is reserved then)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if self.budget > 0:
                used = sum(r.tokens for r in self._spent)
                if used + tokens > self.budget:
                    raise BudgetExhausted(
                        f"llm token budget exhausted: {used} of {self.budget} tokens used in the last "
                        f"{self.window_s:g}s, and the next request may need {tokens} "
                        f"(MEMOSD_LLM_TOKEN_BUDGET / MEMOSD_LLM_BUDGET_WINDOW_S)")
            reservation = Reservation(now, tokens)
            self._spent.append(reservation)
            return reservation

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replace a reservation's estimate by what the request really cost (0 when nothing was billed)."""
        with self._lock:
            reservation.tokens = max(0, tokens)

    def record(self, usage: dict[str, int]) -> None:
        """Add one call's usage to the lifetime totals."""
        with self._lock:
            for key in USAGE_KEYS:
                self._totals[key] += int(usage.get(key, 0))

    def totals(self) -> dict[str, int]:
        """Lifetime usage of this policy instance (a copy)."""
        with self._lock:
            return dict(self._totals)

    def used(self) -> int:
        """Tokens counted against the budget in the current window."""
        with self._lock:
            self._expire(self._clock())
            return sum(r.tokens for r in self._spent)

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0].at <= now - self.window_s:
            self._spent.popleft()
