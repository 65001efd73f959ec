"""Score fusion of the lexical hits with the dense channel's hits.

Each channel's scores are min-max scaled over the list it returned (its best
``max(k, 50)``), so both span [0, 1], then summed with the dense channel
weighted: fused = lexical + dense_weight * dense. A channel that did not return
a memory adds nothing for it.

Why scores and not ranks: reciprocal-rank fusion gives the dense channel's
top hit as much say as the lexical top hit whatever their margins, and on
LoCoMo dev it lost recall against lexical alone even with a real encoder
(all-MiniLM-L6-v2: R@10 0.608 fused by rank at weight 1, 0.659 lexical
only). Min-max score fusion keeps each channel's confidence: 0.695 at weight
0.5, and 0.69 or more anywhere from 0.3 to 1.0 (plugins/memosd-minilm/README.md).
Min-max rather than dividing by the maximum because cosine similarities carry
an offset (unrelated texts still score 0.1-0.3), which would otherwise crowd
out the lexical channel's spread.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..retrieval import Hit

DENSE_WEIGHT = 0.5
"""Best measured weight of the dense channel against lexical (1): the middle of the plateau 0.3-0.7."""


def _minmax(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1] over the list; a list of equal scores (one hit, say) scales to 1."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high <= low:
        return [1.0] * len(values)
    span = high - low
    return [(v - low) / span for v in values]


def fuse_scores(lexical: Sequence[Hit], dense: Sequence[tuple[int, float]], k: int,
                dense_weight: float = DENSE_WEIGHT) -> list[Hit]:
    """Top ``k`` slots by minmax(lexical score) + dense_weight * minmax(dense similarity).

    ``lexical`` is the lexical channels' hits, best first; ``dense`` is (slot,
    similarity) best first. Min-max scaling is over each list as given, so pass
    both at the same depth. Ties are broken by the lexical order, then by slot
    ascending, so results are stable. A hit found by both channels reports both.
    """
    if not lexical:
        # The dense hits alone (a query with nothing to match lexically): the scores and order below,
        # without the bookkeeping that merging two lists needs.
        scaled = _minmax([similarity for _, similarity in dense])
        ranked = sorted(zip(scaled, [slot for slot, _ in dense]), key=lambda pair: (-pair[0], pair[1]))
        return [Hit(slot, dense_weight * value, ("dense",)) for value, slot in ranked[:k]]
    score: dict[int, float] = {}
    channels: dict[int, tuple[str, ...]] = {}
    lexical_rank: dict[int, int] = {}
    for rank, (hit, value) in enumerate(zip(lexical, _minmax([h.score for h in lexical])), start=1):
        score[hit.slot] = value
        channels[hit.slot] = hit.channels
        lexical_rank[hit.slot] = rank
    for (slot, _), value in zip(dense, _minmax([similarity for _, similarity in dense])):
        score[slot] = score.get(slot, 0.0) + dense_weight * value
        channels[slot] = (*channels.get(slot, ()), "dense")
    order = sorted(score, key=lambda slot: (-score[slot], lexical_rank.get(slot, len(lexical) + 1), slot))
    return [Hit(slot, score[slot], channels[slot]) for slot in order[:k]]

