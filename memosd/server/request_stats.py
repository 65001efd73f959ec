"""Per-operation request counts and recent latencies, for status and ``memosd top``."""

from __future__ import annotations

import collections

import numpy as np


class RequestStats:
    """Counts since start and a window of the most recent latencies per operation."""

    def __init__(self, window: int = 2048):
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.recent: dict[str, collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=window))

    def record(self, op: str, ok: bool, seconds: float) -> None:
        self.counts[op] += 1
        if not ok:
            self.errors[op] += 1
        self.recent[op].append(seconds)

    def count(self, event: str, n: int = 1) -> None:
        """Count ``n`` requests the daemon did not answer (``deadline_dropped``, ``peers_cut_off``,
        ...): they are listed in status beside the operations, with no latency."""
        self.counts[event] += n

    def summary(self) -> dict[str, tuple[int, int, float, float]]:
        """Per operation: (count, errors, p50 ms, p99 ms over the recent window)."""
        out = {}
        for op, count in self.counts.items():
            window = np.fromiter(self.recent[op], dtype=np.float64)
            p50, p99 = np.percentile(window, [50, 99]) * 1000 if window.size else (0.0, 0.0)
            out[op] = (count, self.errors[op], round(float(p50), 3), round(float(p99), 3))
        return out
