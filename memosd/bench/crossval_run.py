"""The cross-validation tuner's run: evaluate a grid through real daemons, then cross-validate.

Each grid point is evaluated once, on every conversation, through its own
temporary daemon (:mod:`.locomo_daemon`); the folds then reuse those per-question
scores (:mod:`.crossval`). After a sweep, the folds' own combination points are
evaluated in a second pass. The result is one JSON-ready dict, printed by
:mod:`.crossval_report`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .crossval import Fold, agreement, cross_validate, fold_combinations
from .grid import GridPoint, ParamSpec, joint_grid, sweep_grid
from .locomo import Conversation
from .locomo_daemon import eval_with_settings
from .scores import QuestionScore, conversation_ids, mean_recall, per_conversation, spread, summarize

Evaluator = Callable[[GridPoint], list[QuestionScore]]
"""Per-question scores of one grid point over every conversation (a daemon run, or a stub in tests)."""


@dataclass(slots=True)
class TuneOptions:
    """How the tuner runs."""

    k: int = 10
    """Selection and reporting use recall@k."""
    joint: bool = False
    """Evaluate every combination of the values instead of one parameter at a time."""
    combine: bool = True
    """After a sweep, let each fold also try its best held-in value of every parameter together."""
    jobs: int = 1
    """Daemons evaluated at once (each uses about one core while it ingests and answers)."""
    no_fsync: bool = True


@dataclass(slots=True)
class GridResults:
    """Scores of every evaluated point, in evaluation order (the default first), and the seconds taken."""

    scores: dict[GridPoint, list[QuestionScore]] = field(default_factory=dict)
    seconds: dict[GridPoint, float] = field(default_factory=dict)


def daemon_evaluator(conversations: list[Conversation], options: TuneOptions) -> Evaluator:
    """An :data:`Evaluator` that runs each point through a fresh temporary daemon."""

    def evaluate(p: GridPoint) -> list[QuestionScore]:
        return eval_with_settings(conversations, [options.k], p.env(), no_fsync=options.no_fsync).scores

    return evaluate


def check_environment(specs: Sequence[ParamSpec], environ: dict[str, str] | None = None) -> None:
    """Refuse to tune a setting the caller's environment already sets: the daemons inherit it, so the
    "default" point would not be the default."""
    environ = os.environ if environ is None else environ
    clash = [spec.env_name for spec in specs if spec.env_name in environ]
    if clash:
        raise ValueError(f"unset {', '.join(clash)} first: the temporary daemons would inherit it")


def evaluate_points(points: Sequence[GridPoint], evaluate: Evaluator, results: GridResults, k: int, *,
                    jobs: int = 1, say: Callable[[str], None] = lambda _: None) -> None:
    """Evaluate the points not yet in ``results`` (``jobs`` at a time), adding their scores in order;
    each one's recall@k goes to ``say`` as it comes."""
    todo = [p for p in dict.fromkeys(points) if p not in results.scores]

    def timed(p: GridPoint) -> tuple[list[QuestionScore], float]:
        started = time.perf_counter()
        scores = evaluate(p)
        return scores, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for n, (p, (scores, seconds)) in enumerate(zip(todo, pool.map(timed, todo)), 1):
            results.scores[p] = scores
            results.seconds[p] = seconds
            say(f"[{n}/{len(todo)}] {p.label}: R@{k} {mean_recall(scores, k):.4f} ({seconds:.1f} s)")


def _figures(scores: Sequence[QuestionScore], k: int) -> dict:
    out = summarize(scores, [k])
    out["per_conversation"] = per_conversation(scores, [k])
    out["spread"] = spread(out["per_conversation"], [k])
    return out


def _paired(chosen: Sequence[QuestionScore], default: Sequence[QuestionScore], k: int) -> dict[str, int]:
    """How many held-out questions the chosen setting scored higher / lower than the default on.

    Both lists hold the same questions in the same order (one conversation, asked in file order).
    """
    pairs = [(a.recall[k], b.recall[k]) for a, b in zip(chosen, default, strict=True)]
    return {"better": sum(a > b for a, b in pairs), "worse": sum(a < b for a, b in pairs)}


def _fold_row(fold: Fold, k: int) -> dict:
    return {
        "held_out": fold.held_out,
        "chosen": fold.chosen.label,
        "chosen_settings": dict(fold.chosen.settings),
        "held_in": round(fold.held_in, 4),
        "default_held_in": round(fold.default_held_in, 4),
        "held_out_figures": summarize(fold.held_out_scores, [k]),
        "default_held_out_figures": summarize(fold.default_held_out_scores, [k]),
        "vs_default_questions": _paired(fold.held_out_scores, fold.default_held_out_scores, k),
        "picks": fold.picks,
        "combined": fold.combined.label if fold.combined else None,
    }


def run_tuning(conversations: list[Conversation], specs: Sequence[ParamSpec], options: TuneOptions, *,
               evaluate: Evaluator | None = None, say: Callable[[str], None] = lambda _: None) -> dict:
    """Evaluate the grid of ``specs``, cross-validate over the conversations, and return every figure.

    ``evaluate`` defaults to a fresh daemon per point. Keys: ``k``, ``grid`` (every point's figures on all
    conversations), ``folds``, ``cross_validated`` (the held-out questions of all folds pooled),
    ``cross_validated_grid_only`` (the folds choosing among the grid points without their combinations),
    ``default``, ``in_sample_best`` (the point a tuner that saw every conversation would pick, and its
    own, optimistic, figure), ``agreement`` and ``seconds``.
    """
    started = time.perf_counter()
    k = options.k
    evaluate = evaluate or daemon_evaluator(conversations, options)
    points = joint_grid(specs) if options.joint else sweep_grid(specs)
    results = GridResults()
    say(f"evaluating {len(points)} grid points, one daemon each")
    evaluate_points(points, evaluate, results, k, jobs=options.jobs, say=say)
    ids = conversation_ids(results.scores[GridPoint()])
    if len(ids) < 2:
        raise ValueError("cross-validation needs at least two conversations with questions")
    combined = fold_combinations(results.scores, ids, k) if options.combine and not options.joint else {}
    if combined:
        extra = list(dict.fromkeys(combined.values()))
        say(f"evaluating {len(extra)} combination point(s) chosen on held-in folds")
        evaluate_points(extra, evaluate, results, k, jobs=options.jobs, say=say)
    folds = cross_validate(results.scores, ids, k, combined=combined)
    held_out = [s for fold in folds for s in fold.held_out_scores]
    # The same folds choosing among the grid points alone: how much the combinations add, or cost, out of sample.
    plain = cross_validate({p: results.scores[p] for p in points}, ids, k) if combined else folds
    in_sample = max(points, key=lambda p: (mean_recall(results.scores[p], k), -points.index(p)))
    return {
        "k": k,
        "mode": "joint" if options.joint else "sweep",
        "params": [{"key": s.key, "values": list(s.values), "default": s.default} for s in specs],
        "conversations": ids,
        "grid": [{"label": p.label, "settings": dict(p.settings), "seconds": round(results.seconds[p], 1),
                  f"recall@{k}": round(mean_recall(s, k), 4),
                  "per_conversation": {cid: row[f"recall@{k}"] for cid, row in per_conversation(s, [k]).items()}}
                 for p, s in results.scores.items()],
        "folds": [_fold_row(fold, k) for fold in folds],
        "cross_validated": _figures(held_out, k),
        "cross_validated_grid_only": {
            "chosen": {fold.held_out: fold.chosen.label for fold in plain},
            **_figures([s for fold in plain for s in fold.held_out_scores], k)},
        "default": _figures(results.scores[GridPoint()], k),
        "in_sample_best": {"label": in_sample.label, **_figures(results.scores[in_sample], k)},
        "agreement": agreement(folds),
        "seconds": round(time.perf_counter() - started, 1),
    }
