"""Leave-one-conversation-out cross-validation of settings, from per-question scores.

Every grid point has been evaluated once on every conversation. For each
conversation in turn (the fold's held-out one), the setting is chosen on the
other conversations only (the held-in ones) and then scored on the held-out
one; the cross-validated figure pools the held-out questions of all folds.
The selection functions are given held-in scores only (:func:`held_in_view`),
so nothing about a fold's held-out conversation can reach its choice.

After a one-at-a-time sweep, each fold may also build its own combination
point (every parameter at its best held-in value). That point is a candidate
of its own fold only: another fold's combination was built with this fold's
held-out conversation among its held-in ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .grid import GridPoint
from .scores import QuestionScore, mean_recall

Results = Mapping[GridPoint, Sequence[QuestionScore]]
"""Per-question scores of each evaluated grid point, over every conversation."""

Selector = Callable[[Results, int], GridPoint]
"""Chooses a point from held-in scores at recall@k."""

TIE = 1e-12
"""Means closer than this are a tie; ties go to the earlier point (the default comes first)."""


def held_in_view(results: Results, held_out: str) -> dict[GridPoint, list[QuestionScore]]:
    """The scores of every point with the held-out conversation's questions removed."""
    return {p: [s for s in scores if s.sample_id != held_out] for p, scores in results.items()}


def best_point(candidates: Results, k: int) -> GridPoint:
    """The point with the highest question-weighted mean recall@k; ties go to the earliest."""
    best, best_mean = None, None
    for p, scores in candidates.items():
        mean = mean_recall(scores, k)
        if mean is not None and (best_mean is None or mean > best_mean + TIE):
            best, best_mean = p, mean
    if best is None:
        raise ValueError("no grid point has any scored question")
    return best


def parameter_picks(candidates: Results, k: int) -> dict[str, str | None]:
    """For each parameter swept one at a time: its value with the best mean recall@k (None: the default).

    Only the default point and points that set exactly one parameter are compared, so
    each parameter is judged with every other one at its default.
    """
    default = next((p for p in candidates if p.is_default), None)
    if default is None:
        return {}
    keys = list(dict.fromkeys(p.settings[0][0] for p in candidates if len(p.settings) == 1))
    picks: dict[str, str | None] = {}
    for key in keys:
        options = {default: candidates[default]}
        options.update({p: s for p, s in candidates.items() if len(p.settings) == 1 and p.settings[0][0] == key})
        picks[key] = best_point(options, k).value(key)
    return picks


def combination(picks: Mapping[str, str | None]) -> GridPoint | None:
    """The point setting every non-default pick; None when fewer than two (then it is already in the sweep)."""
    chosen = sorted((key, value) for key, value in picks.items() if value is not None)
    return GridPoint(tuple(chosen)) if len(chosen) >= 2 else None


def fold_combinations(results: Results, conversations: Sequence[str], k: int) -> dict[str, GridPoint]:
    """held-out conversation -> that fold's combination point, for the folds that have one (built on held-in only)."""
    out: dict[str, GridPoint] = {}
    for held_out in conversations:
        combined = combination(parameter_picks(held_in_view(results, held_out), k))
        if combined is not None:
            out[held_out] = combined
    return out


@dataclass(frozen=True, slots=True)
class Fold:
    """One fold: the setting chosen without ``held_out`` and how it does there."""

    held_out: str
    chosen: GridPoint
    held_in: float
    """The chosen point's mean recall@k over the held-in questions."""
    default_held_in: float
    held_out_scores: tuple[QuestionScore, ...]
    """The chosen point's scores on the held-out conversation."""
    default_held_out_scores: tuple[QuestionScore, ...]
    picks: dict[str, str | None]
    """Best held-in value of each swept parameter (None: its default), whatever was chosen overall."""
    combined: GridPoint | None = None
    """The fold's own combination point, when it had one to consider."""


def cross_validate(results: Results, conversations: Sequence[str], k: int, *,
                   combined: Mapping[str, GridPoint] | None = None,
                   select: Selector = best_point) -> list[Fold]:
    """Leave each conversation out in turn, choose on the rest with ``select``, score on the one left out.

    ``results`` must hold the default point and, for every point in ``combined``, its scores; a
    fold's candidates are the points of ``results`` that are not another fold's combination, plus
    its own.
    """
    combined = dict(combined or {})
    default = GridPoint()
    if default not in results:
        raise ValueError("the default point must be evaluated: folds are compared with it")
    others = set(combined.values())
    folds = []
    for held_out in conversations:
        own = combined.get(held_out)
        candidates = {p: s for p, s in results.items() if p not in others or p == own}
        view = held_in_view(candidates, held_out)
        chosen = select(view, k)
        folds.append(Fold(
            held_out=held_out,
            chosen=chosen,
            held_in=mean_recall(view[chosen], k),
            default_held_in=mean_recall(view[default], k),
            held_out_scores=tuple(s for s in results[chosen] if s.sample_id == held_out),
            default_held_out_scores=tuple(s for s in results[default] if s.sample_id == held_out),
            picks=parameter_picks(view, k),
            combined=own,
        ))
    return folds


def agreement(folds: Sequence[Fold]) -> dict[str, dict]:
    """Per swept parameter: each fold's pick and whether all folds picked the same value."""
    keys = list(dict.fromkeys(key for fold in folds for key in fold.picks))
    out = {}
    for key in keys:
        picks = {fold.held_out: fold.picks.get(key) for fold in folds}
        out[key] = {"picks": picks, "agree": len(set(picks.values())) == 1}
    return out
