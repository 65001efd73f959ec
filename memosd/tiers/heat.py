"""Page heat: how much a page is worth keeping in RAM, decaying continuously with time.

    heat(p, t) = 2 ** (-(t - touched_at) / half_life) * (hits + size_weight * ln(1 + size))

``hits`` is the page's decayed hit count as of ``touched_at``, the last time a
recall returned one of its turns (or the page was formed). A hit at time t sets

    hits <- hits * 2 ** (-(t - touched_at) / half_life) + 1,   touched_at <- t

so heat is a pure function of stored numbers and the clock: nothing has to run
for an idle page to cool, and two daemons computing it at the same instant
agree. The size term keeps a large, never-hit page a little warmer than a
one-turn page of the same age (it costs more to fault back in).

Because every page decays by the same factor over the same time, the *order*
of pages by heat never changes while nobody touches them: log2 heat(p, t) =
eviction_key(p) - t / half_life. Eviction keeps pages in a heap by that key
and only re-keys a page when it is hit, so finding the coldest page does not
cost a pass over all resident pages.
"""

from __future__ import annotations

import math

import numpy as np


def decay(elapsed: np.ndarray | float, half_life: float):
    """2 ** (-elapsed / half_life); elapsed times below zero (clock steps back) count as zero."""
    return np.exp2(-np.maximum(elapsed, 0.0) / half_life)


def heat(hits, touched_at, size, now: float, half_life: float, size_weight: float):
    """Heat of one page or of arrays of pages at ``now`` (see the module docstring)."""
    return decay(now - np.asarray(touched_at, dtype=np.float64), half_life) * (
        np.asarray(hits, dtype=np.float64) + size_weight * np.log1p(np.asarray(size, dtype=np.float64))
    )


def page_heat(hits: float, touched_at: float, size: int, now: float, half_life: float, size_weight: float) -> float:
    """heat() of one page in plain floats (this runs for the pages of every recall's hits)."""
    return math.exp2(-max(now - touched_at, 0.0) / half_life) * (hits + size_weight * math.log1p(size))


def touched(hits: float, touched_at: float, now: float, half_life: float) -> float:
    """The decayed hit count after one more hit at ``now`` (plain floats: this runs per page per recall)."""
    return hits * math.exp2(-max(now - touched_at, 0.0) / half_life) + 1.0


def eviction_key(hits: float, touched_at: float, size: int, half_life: float, size_weight: float) -> float:
    """log2 heat(p, t) + t / half_life: orders pages by heat at any time t, and is fixed until a hit."""
    return touched_at / half_life + math.log2(max(hits + size_weight * math.log1p(size), 1e-300))
