"""What a reliability suite returns: its bar, whether it was met, and the figures behind it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Say = Callable[[str], None]
"""Progress callback: one line for a person watching (stderr)."""

MAX_FAILURES = 20
"""Failures kept in a result; the count of all of them is kept beside."""


@dataclass
class SuiteResult:
    """The outcome of one suite run."""

    suite: str
    bar: str
    """The pass condition, in words."""
    settings: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    """Named measurements, in display order."""
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Extra row sets (e.g. latency per operation)."""
    failures: list[str] = field(default_factory=list)
    """Why the bar was missed: the first :data:`MAX_FAILURES` distinct reasons."""
    failure_count: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.failure_count == 0

    def fail(self, why: str) -> None:
        """Record one reason the bar is missed."""
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES and why not in self.failures:
            self.failures.append(why)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out


class Stopwatch:
    """Seconds since creation, for a result's ``seconds``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.started, 2)


def latency_ms(samples_s: Sequence[float]) -> dict[str, float | None]:
    """count, p50, p99 and max (milliseconds) of per-request times in seconds."""
    if not len(samples_s):
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.asarray(samples_s, dtype=np.float64) * 1000.0
    p50, p99 = np.percentile(arr, [50, 99])
    return {"count": int(arr.size), "p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(arr.max()), 3)}
