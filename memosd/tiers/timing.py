"""The time term of the fine stage: candidates that answer a question's time intent score higher.

A question that asks for a time ("when did ...", "how long ...") is answered by
turns that say one; a question about a period ("... in June 2023", "... in May")
by turns said in that period or talking about a time in it (the slot table's
``time_mentions``, ``talks_from`` and ``talks_to``, from memosd.temporal).
"""

from __future__ import annotations

import numpy as np

from ..retrieval.query import AnalyzedQuery
from ..temporal import TimeIntent, time_intent


def intent_of(query: str | AnalyzedQuery) -> TimeIntent:
    """The query's time intent (read once per analysed query)."""
    return query.time_intent() if isinstance(query, AnalyzedQuery) else time_intent(query)


def in_period(table, slots: np.ndarray | slice, intent: TimeIntent) -> np.ndarray:
    """Which ``slots`` (an index array, or a slice of the table) were said in, or talk about a time in,
    the period the question names."""
    if intent.interval is None:  # a month of any year: one bit of the slot table's months column
        return (table.months[slots] & (1 << (intent.month - 1))) != 0
    start, end = intent.interval
    said = table.event_time[slots]
    said_in = (said >= start) & (said < end)  # NaN compares False
    talks_in = (table.talks_from[slots] < end) & (table.talks_to[slots] > start)
    return said_in | talks_in


PERIOD_CANDIDATES = 256
"""Most turns a named period may add to the fine stage's candidates; a wider period (a whole year
of a busy namespace) adds none and only boosts the candidates found otherwise."""


def period_units(query: str | AnalyzedQuery, tiers) -> set[int]:
    """The units (pages, rings) of the turns said in, or talking about, the period a question names,
    when there are few enough of them to score closely."""
    cfg = tiers.cfg
    if not cfg.period_weight:
        return set()
    intent = intent_of(query)
    if intent.interval is None and intent.month is None:
        return set()
    table = tiers.table
    n = table.size
    slots = np.flatnonzero(table.current[:n] & in_period(table, slice(0, n), intent))
    if not len(slots) or len(slots) > PERIOD_CANDIDATES:
        return set()
    return set(tiers.unit_of[slots].tolist())


def time_boost(query: str | AnalyzedQuery, table, slots: np.ndarray, cfg) -> np.ndarray | None:
    """Per candidate slot, the time term of its final score; None when it adds nothing."""
    if not (cfg.time_weight or cfg.period_weight) or not len(slots):
        return None
    intent = intent_of(query)
    if not intent.any:
        return None
    boost = np.zeros(len(slots), dtype=np.float32)
    if intent.asks_time and cfg.time_weight:
        boost += np.float32(cfg.time_weight) * (table.time_mentions[slots] > 0)
    if (intent.interval is not None or intent.month is not None) and cfg.period_weight:
        boost += np.float32(cfg.period_weight) * in_period(table, slots, intent)
    return boost
