"""Per-question LoCoMo scores and what is reported from them.

One :class:`QuestionScore` per question asked keeps its conversation and
category, so the same list gives the overall figures, the per-category ones,
the per-conversation ones and their spread, and lets cross-validation take any
subset of conversations without asking the daemon again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .locomo import CATEGORIES

CORE_CATEGORIES = (1, 2, 3, 4)
"""The categories quoted together as "categories 1-4" (adversarial excluded)."""


@dataclass(frozen=True, slots=True)
class QuestionScore:
    """Evidence recall of one question: ``recall[k]`` = |evidence ∩ top-k turns| / |evidence|."""

    sample_id: str
    category: int
    recall: dict[int, float]


def mean_recall(scores: Iterable[QuestionScore], k: int) -> float | None:
    """Question-weighted mean recall@k, unrounded (selection compares these); None when there are none."""
    values = [s.recall[k] for s in scores]
    return sum(values) / len(values) if values else None


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _category_rows(scores: Sequence[QuestionScore], ks: Sequence[int]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for cat in sorted({s.category for s in scores}):
        mine = [s for s in scores if s.category == cat]
        row: dict = {"name": CATEGORIES.get(cat, "?"), "questions": len(mine)}
        for k in ks:
            row[f"recall@{k}"] = _rounded(mean_recall(mine, k))
        out[str(cat)] = row
    return out


def summarize(scores: Sequence[QuestionScore], ks: Sequence[int]) -> dict:
    """Overall, per-category and categories 1-4 recall@k (the keys ``memosd eval locomo --json`` has always had)."""
    out: dict = {"questions": len(scores)}
    for k in ks:
        out[f"recall@{k}"] = _rounded(mean_recall(scores, k))
    out["per_category"] = _category_rows(scores, ks)
    core = [cat for cat in CORE_CATEGORIES if any(s.category == cat for s in scores)]
    core_scores = [s for s in scores if s.category in core]
    c14: dict = {"questions": len(core_scores)}
    for k in ks:
        # Per question (micro) and mean of the four category means (macro): both are quoted in the wild.
        c14[f"recall@{k}"] = _rounded(mean_recall(core_scores, k))
        # Each category mean rounded first, as the figures published before this module were.
        means = [_rounded(mean_recall([s for s in core_scores if s.category == cat], k)) for cat in core]
        c14[f"macro_recall@{k}"] = _rounded(sum(means) / len(means)) if means else None
    out["categories_1_4"] = c14
    return out


def conversation_ids(scores: Iterable[QuestionScore]) -> list[str]:
    """The conversations the scores come from, in order of first appearance."""
    return list(dict.fromkeys(s.sample_id for s in scores))


def per_conversation(scores: Sequence[QuestionScore], ks: Sequence[int]) -> dict[str, dict]:
    """sample_id -> questions, recall@k and per-category recall@k of that conversation alone."""
    out: dict[str, dict] = {}
    for sample_id in conversation_ids(scores):
        mine = [s for s in scores if s.sample_id == sample_id]
        row: dict = {"questions": len(mine)}
        for k in ks:
            row[f"recall@{k}"] = _rounded(mean_recall(mine, k))
        row["per_category"] = _category_rows(mine, ks)
        out[sample_id] = row
    return out


def _min_max(values: dict[str, float | None]) -> dict | None:
    present = {name: v for name, v in values.items() if v is not None}
    if not present:
        return None
    low = min(present, key=present.__getitem__)
    high = max(present, key=present.__getitem__)
    return {"min": present[low], "max": present[high], "min_conversation": low, "max_conversation": high}


def spread(conversations: dict[str, dict], ks: Sequence[int]) -> dict:
    """Lowest and highest per-conversation recall@k, overall and per category, with the conversations they come from.

    ``conversations`` is what :func:`per_conversation` returns.
    """
    out: dict = {}
    for k in ks:
        out[f"recall@{k}"] = _min_max({name: row[f"recall@{k}"] for name, row in conversations.items()})
    categories = sorted({cat for row in conversations.values() for cat in row["per_category"]}, key=int)
    out["per_category"] = {
        cat: {f"recall@{k}": _min_max({name: row["per_category"].get(cat, {}).get(f"recall@{k}")
                                       for name, row in conversations.items()}) for k in ks}
        for cat in categories
    }
    return out
