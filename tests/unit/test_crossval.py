"""Cross-validation of settings: grids, per-conversation figures and fold selection, on made-up scores."""

import pytest

from memosd.bench.crossval import (
    agreement,
    best_point,
    combination,
    cross_validate,
    fold_combinations,
    parameter_picks,
)
from memosd.bench.grid import GridPoint, joint_grid, normalise, parse_param, sweep_grid
from memosd.bench.scores import QuestionScore, per_conversation, spread, summarize

K = 10
A = GridPoint((("tiers.page_weight", "0.6"),))
B = GridPoint((("retrieval.k1", "1.2"),))
AB = GridPoint((("retrieval.k1", "1.2"), ("tiers.page_weight", "0.6")))


def scores(recalls: dict[str, list[float]], category: int = 4) -> list[QuestionScore]:
    """Questions of each conversation with the given recall@10."""
    return [QuestionScore(cid, category, {K: r}) for cid, values in recalls.items() for r in values]


# --------------------------------------------------------------------------- grid


def test_params_are_normalised_against_the_config_types():
    spec = parse_param("retrieval.b=0.20, 0.6,0.6")
    assert spec.values == ("0.2", "0.6") and spec.default == "0.2"
    assert spec.env_name == "MEMOSD_RETRIEVAL_B"
    assert normalise("tiers.candidate_pages", "16") == "16"
    assert normalise("retrieval.k1", "1") == "1.0"
    for bad in ("tiers.nope=1", "tiers.candidate_pages=many", "page_weight=0.2", "tiers.page_weight="):
        with pytest.raises(ValueError):
            parse_param(bad)


def test_sweep_varies_one_parameter_at_a_time_and_collapses_defaults():
    specs = [parse_param("tiers.candidate_lexical=10,20,40"), parse_param("retrieval.k1=0.8,1.2")]
    points = sweep_grid(specs)
    assert points[0] == GridPoint() and points[0].label == "default"
    assert [p.label for p in points[1:]] == ["tiers.candidate_lexical=10", "tiers.candidate_lexical=40",
                                             "retrieval.k1=1.2"]
    assert points[-1].env() == {"MEMOSD_RETRIEVAL_K1": "1.2"}
    joint = joint_grid(specs)
    assert len(joint) == 6 and joint[0] == GridPoint()  # 3 x 2 values, the all-default one first
    assert GridPoint((("retrieval.k1", "1.2"), ("tiers.candidate_lexical", "10"))) in joint


# --------------------------------------------------------------------------- figures


def test_per_conversation_figures_and_spread():
    run = scores({"c1": [1.0, 0.0], "c2": [1.0]}) + [QuestionScore("c2", 2, {K: 0.5})]
    rows = per_conversation(run, [K])
    assert rows["c1"]["recall@10"] == 0.5 and rows["c2"]["recall@10"] == 0.75
    assert rows["c2"]["per_category"]["2"]["recall@10"] == 0.5
    ends = spread(rows, [K])
    assert ends["recall@10"] == {"min": 0.5, "max": 0.75, "min_conversation": "c1", "max_conversation": "c2"}
    assert ends["per_category"]["2"]["recall@10"]["min_conversation"] == "c2"
    assert summarize(run, [K])["recall@10"] == 0.625


# --------------------------------------------------------------------------- selection


def three_conversations() -> dict[GridPoint, list[QuestionScore]]:
    # A is better on c1 and c2 and much worse on c3; B is a little better everywhere.
    return {
        GridPoint(): scores({"c1": [0.5, 0.5], "c2": [0.5], "c3": [0.5]}),
        A: scores({"c1": [0.9, 0.9], "c2": [0.9], "c3": [0.0]}),
        B: scores({"c1": [0.6, 0.6], "c2": [0.6], "c3": [0.6]}),
    }


def test_fold_selection_is_given_held_in_scores_only():
    given = []

    def recording(candidates, k):
        given.append(candidates)
        return best_point(candidates, k)

    results = three_conversations()
    folds = cross_validate(results, ["c1", "c2", "c3"], K, select=recording)
    assert len(given) == 3
    for fold, candidates in zip(folds, given):
        seen = {s.sample_id for point_scores in candidates.values() for s in point_scores}
        assert fold.held_out not in seen and seen == {"c1", "c2", "c3"} - {fold.held_out}
        assert all(s.sample_id == fold.held_out for s in fold.held_out_scores)


def test_held_out_conversation_does_not_sway_the_choice():
    folds = {f.held_out: f for f in cross_validate(three_conversations(), ["c1", "c2", "c3"], K)}
    # Without c3, A looks best (0.9 vs 0.6) and is chosen, though it scores 0 on c3 itself.
    assert folds["c3"].chosen == A and folds["c3"].held_in == pytest.approx(0.9)
    assert [s.recall[K] for s in folds["c3"].held_out_scores] == [0.0]
    assert folds["c3"].default_held_out_scores[0].recall[K] == 0.5
    # Without c1, A's held-in mean is (0.9 + 0.0) / 2 = 0.45: B wins.
    assert folds["c1"].chosen == B and folds["c1"].held_in == pytest.approx(0.6)


def test_ties_go_to_the_default():
    tied = {GridPoint(): scores({"c1": [0.5], "c2": [0.5]}), A: scores({"c1": [0.5], "c2": [0.5]})}
    assert all(f.chosen == GridPoint() for f in cross_validate(tied, ["c1", "c2"], K))


def test_a_fold_combination_is_built_on_held_in_and_offered_to_its_fold_only():
    results = three_conversations()
    picks = parameter_picks(results, K)
    assert picks == {"tiers.page_weight": "0.6", "retrieval.k1": "1.2"}
    assert combination(picks) == AB and combination({"retrieval.k1": "1.2", "x.y": None}) is None
    combos = fold_combinations(results, ["c1", "c2", "c3"], K)
    # Without c1, A loses to the default (0.45 vs 0.5): that fold has a single pick, so no combination.
    assert combos == {"c2": AB, "c3": AB}
    # Suppose c2's combination were perfect, also on c3 and c1: only fold c2 (and c3, whose own it also is) may
    # choose it; fold c1 may not, since c1 was held-in when it was built.
    results[AB] = scores({"c1": [1.0, 1.0], "c2": [1.0], "c3": [1.0]})
    folds = {f.held_out: f for f in cross_validate(results, ["c1", "c2", "c3"], K, combined=combos)}
    assert folds["c2"].chosen == AB and folds["c3"].chosen == AB
    assert folds["c1"].chosen != AB and folds["c1"].combined is None
    table = agreement(list(folds.values()))
    assert table["retrieval.k1"]["agree"] and not table["tiers.page_weight"]["agree"]
    assert table["tiers.page_weight"]["picks"]["c1"] is None
