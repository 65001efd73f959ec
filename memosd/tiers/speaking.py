"""The speaker term of the fine stage: a question that names a person prefers what that person said."""

from __future__ import annotations

import numpy as np

from ..retrieval.query import AnalyzedQuery


def speaker_boost(query: str | AnalyzedQuery, tiers, slots: np.ndarray) -> np.ndarray | None:
    """Per candidate slot, ``speaker_weight`` where the question names the turn's speaker; None when
    it adds nothing (no weight, no speakers, or none named)."""
    weight = tiers.cfg.speaker_weight
    speakers = tiers.speakers
    if not weight or not len(slots) or speakers is None or not len(speakers):
        return None
    named = speakers.named_in(query.text if isinstance(query, AnalyzedQuery) else query)
    if not named:
        return None
    # Speaker codes are small (-1: none): a lookup table beats np.isin's sort by an order of magnitude.
    boost = np.zeros(len(speakers) + 1, dtype=np.float32)
    boost[np.fromiter(named, dtype=np.int64, count=len(named)) + 1] = weight
    return boost[tiers.table.speaker[slots] + 1]
