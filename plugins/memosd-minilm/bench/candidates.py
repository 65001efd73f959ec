"""Fusion variants compared by locomo_fusion.py (the chosen one lives in memosd/plugins/fusion.py)."""

from __future__ import annotations

from memosd.retrieval import Hit

RRF_K = 60


def _finish(score, channels, lexical_rank, n, k):
    order = sorted(score, key=lambda s: (-score[s], lexical_rank.get(s, n + 1), s))
    return [Hit(s, score[s], channels[s]) for s in order[:k]]


def rank(lexical, dense, k, w):
    """Reciprocal-rank fusion, dense ranks weighted by w."""
    score, channels, lr = {}, {}, {}
    for r, h in enumerate(lexical, 1):
        score[h.slot], channels[h.slot], lr[h.slot] = 1.0 / (RRF_K + r), h.channels, r
    for r, (s, _) in enumerate(dense, 1):
        score[s] = score.get(s, 0.0) + w / (RRF_K + r)
        channels[s] = (*channels.get(s, ()), "dense")
    return _finish(score, channels, lr, len(lexical), k)


def _weighted(lexical, dense, k, w, norm):
    score, channels, lr = {}, {}, {}
    lex = norm([h.score for h in lexical])
    for r, (h, v) in enumerate(zip(lexical, lex), 1):
        score[h.slot], channels[h.slot], lr[h.slot] = v, h.channels, r
    den = norm([s for _, s in dense])
    for (s, _), v in zip(dense, den):
        score[s] = score.get(s, 0.0) + w * v
        channels[s] = (*channels.get(s, ()), "dense")
    return _finish(score, channels, lr, len(lexical), k)


def _max(values):
    top = max(values, default=0.0)
    return [v / top if top > 0 else 0.0 for v in values]


def _minmax(values):
    if not values:
        return []
    lo, hi = min(values), max(values)
    return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in values]


def score_max(lexical, dense, k, w):
    """Each channel scaled to a maximum of 1 over its returned list; lexical + w * dense."""
    return _weighted(lexical, dense, k, w, _max)


def score_minmax(lexical, dense, k, w):
    """Each channel min-max scaled over its returned list; lexical + w * dense."""
    return _weighted(lexical, dense, k, w, _minmax)


def score_lexmax_denseminmax(lexical, dense, k, w):
    """Lexical scaled to a maximum of 1 (its scores have a natural zero), dense min-max scaled.

    Cosine similarities have an offset (unrelated texts still score above zero); lexical scores do not.
    """
    score, channels, lr = {}, {}, {}
    for r, (h, v) in enumerate(zip(lexical, _max([h.score for h in lexical])), 1):
        score[h.slot], channels[h.slot], lr[h.slot] = v, h.channels, r
    for (s, _), v in zip(dense, _minmax([s for _, s in dense])):
        score[s] = score.get(s, 0.0) + w * v
        channels[s] = (*channels.get(s, ()), "dense")
    return _finish(score, channels, lr, len(lexical), k)
