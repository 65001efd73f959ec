"""Latency summaries: percentiles of per-request times, in microseconds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, float | None]:
    """p50/p90/p99/max/mean (microseconds) and count of nanosecond samples; None when there are none."""
    if not len(samples_ns):
        # None rather than NaN: NaN is not valid JSON.
        return {"n": 0, "p50_us": None, "p90_us": None, "p99_us": None, "max_us": None, "mean_us": None}
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "n": int(arr.size),
        "p50_us": round(float(p50), 1),
        "p90_us": round(float(p90), 1),
        "p99_us": round(float(p99), 1),
        "max_us": round(float(arr.max()), 1),
        "mean_us": round(float(arr.mean()), 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded for display, or None when either is missing or b is zero."""
    if a is None or not b:
        return None
    return round(a / b, 2)
