"""Turn postings into a score per slot, fuse channels and pick the best slots fast."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Slots are split into this many interleaved groups (slot % n_groups) whose
# maxima bound the top-k threshold; must divide the score array length.
GROUP_ROWS = 64

_TINY = np.nextafter(0.0, 1.0)

# numpy 2 gave ufunc.at a fast path that beats bincount (which widens indices
# and weights and returns float64); numpy 1.x's ufunc.at is far slower.
_FAST_UFUNC_AT = int(np.__version__.split(".")[0]) >= 2

Postings = tuple[np.ndarray, np.ndarray]
"""Aligned (slots, weights) arrays; a slot may repeat and its weights add up."""

EMPTY_POSTINGS: Postings = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))


def padded_size(n: int) -> int:
    """Smallest multiple of GROUP_ROWS holding ``n`` slots."""
    return max(GROUP_ROWS, -(-n // GROUP_ROWS) * GROUP_ROWS)


def sum_scores(postings: Postings, size: int) -> np.ndarray:
    """Total weight per slot as float32 (``size`` is a padded_size)."""
    slots, weights = postings
    if not _FAST_UFUNC_AT:
        return np.bincount(slots, weights, minlength=size).astype(np.float32)
    scores = np.zeros(size, dtype=np.float32)
    np.add.at(scores, slots, weights)
    return scores


def restrict(scores: np.ndarray, allowed: np.ndarray) -> None:
    """Zero the scores of slots that are False in ``allowed`` or past its end."""
    n = min(len(allowed), len(scores))
    np.multiply(scores[:n], allowed[:n], out=scores[:n])
    scores[n:] = 0.0


def top_fused(
    channels: Sequence[tuple[float, np.ndarray]], depth: int, normalise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``depth`` slots of sum_c weight_c * scores_c, ordered by value desc then slot asc.

    With ``normalise`` each channel is first scaled to a maximum of 1, which on
    LoCoMo recalls as well as reciprocal-rank fusion while needing a single
    top-k pass. Slots need a positive fused value. Per-group maxima give, for
    every group, an upper bound (sum over channels) and a lower bound (max over
    channels) of its best fused value; the depth-th largest lower bound is a
    floor under the depth-th best value, so only groups whose upper bound
    reaches it are fused and inspected. Ties keep the lowest slots.
    """
    grids = [scores.reshape(GROUP_ROWS, -1) for _, scores in channels]
    maxima = [grid.max(axis=0) for grid in grids]
    scales = []
    for (weight, _), group_max in zip(channels, maxima):
        top = group_max.max() if normalise else 1.0
        scales.append(weight / top if top > 0 else 0.0)
    bounds = [scale * group_max for scale, group_max in zip(scales, maxima)]
    if len(bounds) == 1:  # one channel (the usual call): both bounds are its maxima
        upper = lower = bounds[0]
    else:
        upper, lower = sum(bounds), np.maximum.reduce(bounds)
    n_groups = len(upper)
    floor = np.partition(lower, n_groups - depth)[n_groups - depth] if n_groups > depth else 0.0
    floor = max(floor, _TINY)  # also drops slots scoring 0
    groups = np.flatnonzero(upper >= floor)
    if len(grids) == 1:
        block = scales[0] * grids[0][:, groups]
    else:
        block = sum(scale * grid[:, groups] for scale, grid in zip(scales, grids))
    rows, cols = np.nonzero(block >= floor)
    values = block[rows, cols]
    slots = rows * n_groups + groups[cols]
    if len(values) > 4 * depth:
        # Many ties at the floor: cut to the depth-th value (keeping its ties) before sorting.
        keep = values >= np.partition(values, len(values) - depth)[len(values) - depth]
        slots, values = slots[keep], values[keep]
    order = np.lexsort((slots, -values))[:depth]
    return slots[order], values[order]
