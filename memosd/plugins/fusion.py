"""Reciprocal-rank fusion of the lexical hits with the dense channel's hits."""

from __future__ import annotations

from collections.abc import Sequence

from ..retrieval import Hit

RRF_K = 60
"""The usual reciprocal-rank constant: damps the head so one channel's top hit cannot dominate."""


def fuse_ranks(lexical: Sequence[Hit], dense: Sequence[tuple[int, float]], k: int,
               dense_weight: float = 1.0) -> list[Hit]:
    """Top ``k`` slots by 1 / (RRF_K + lexical rank) + dense_weight / (RRF_K + dense rank).

    A channel that did not return a slot adds nothing for it.

    Ties are broken by the lexical order, then by slot ascending, so results are stable.
    ``dense`` is (slot, similarity) best first; a hit found by both channels reports both.
    """
    score: dict[int, float] = {}
    channels: dict[int, tuple[str, ...]] = {}
    lexical_rank: dict[int, int] = {}
    for rank, hit in enumerate(lexical, start=1):
        score[hit.slot] = 1.0 / (RRF_K + rank)
        channels[hit.slot] = hit.channels
        lexical_rank[hit.slot] = rank
    for rank, (slot, _) in enumerate(dense, start=1):
        score[slot] = score.get(slot, 0.0) + dense_weight / (RRF_K + rank)
        channels[slot] = (*channels.get(slot, ()), "dense")
    order = sorted(score, key=lambda slot: (-score[slot], lexical_rank.get(slot, len(lexical) + 1), slot))
    return [Hit(slot, score[slot], channels[slot]) for slot in order[:k]]
