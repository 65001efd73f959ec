"""Candidate selection per channel and weighted reciprocal-rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_slots(
    scores: np.ndarray, depth: int, masks: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``depth`` slots with a positive score, ordered by score then slot.

    A slot must be True in every bool mask of ``masks``; slots past a mask's
    end count as False. Ties at the cut-off keep the lowest slots, so the
    result is fully determined by the scores.
    """
    slots = np.flatnonzero(scores > 0)
    for mask in masks:
        if len(mask) < len(scores):
            slots = slots[slots < len(mask)]
        slots = slots[mask[slots]]
    values = scores[slots]
    if len(slots) > depth:
        threshold = np.partition(values, len(values) - depth)[len(values) - depth]
        keep = values > threshold
        ties = np.flatnonzero(values == threshold)[: depth - int(keep.sum())]
        keep[ties] = True
        slots, values = slots[keep], values[keep]
    order = np.lexsort((slots, -values))
    return slots[order], values[order]


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[str, float, np.ndarray]], rrf_k: float, limit: int
) -> list[tuple[int, float, tuple[str, ...]]]:
    """Fuse ``(channel, weight, ranked slots)`` lists; ties broken by slot ascending."""
    fused: dict[int, float] = {}
    seen: dict[int, list[str]] = {}
    for channel, weight, slots in rankings:
        for rank, slot in enumerate(slots.tolist(), start=1):
            fused[slot] = fused.get(slot, 0.0) + weight / (rrf_k + rank)
            seen.setdefault(slot, []).append(channel)
    best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(slot, score, tuple(seen[slot])) for slot, score in best]
