"""Weighted Kendall tau (the LogME paper's, i.e. scipy's defaults) and top-pick regret, against hand-computed cases.

By hand, three items ranked by x: weights 1, 1/2, 1/3 (hyperbolic, rank 0 first); an exchange of two items weighs
the sum of their weights, so the pairs weigh (0,1) 3/2, (0,2) 4/3, (1,2) 5/6, 11/3 in all;
tau = sum(+-weight over concordant/discordant pairs) / 11/3, then averaged over ranking by x and by y.
"""

from __future__ import annotations

import pytest
from scipy.stats import kendalltau

from hftl.evaluation.ranking import rank_candidates, top_pick_regret, weighted_tau


def test_bottom_swap_costs_less_than_top_swap():
    # bottom pair swapped: 3/2 + 4/3 - 5/6 = 2 -> 2 / (11/3) = 6/11 (ranking by y gives the same)
    assert weighted_tau([3, 2, 1], [3, 1, 2]) == pytest.approx(6 / 11)
    # top pair swapped: -3/2 + 4/3 + 5/6 = 2/3 -> 2/11; plain Kendall tau is 1/3 for both
    assert weighted_tau([3, 2, 1], [2, 3, 1]) == pytest.approx(2 / 11)
    assert kendalltau([3, 2, 1], [3, 1, 2]).statistic == pytest.approx(kendalltau([3, 2, 1], [2, 3, 1]).statistic)


def test_the_two_lexicographic_rankings_are_averaged():
    # x = 3, 2, 1 and y = 1, 3, 2: ranked by x, pairs -3/2 - 4/3 + 5/6 = -2 -> -6/11;
    # ranked by y (item 1 first, then 2, then 0): -4/3 - 5/6 + 3/2 = -2/3 -> -2/11; the mean is -4/11
    assert weighted_tau([3, 2, 1], [1, 3, 2]) == pytest.approx(-4 / 11)
    assert weighted_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert weighted_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        weighted_tau([1], [1])


def test_regret_of_the_top_scored_pick():
    assert top_pick_regret([0.1, 0.5, 0.3], [0.9, 0.7, 0.8]) == pytest.approx(0.2)  # picks 0.7, best is 0.9
    assert top_pick_regret([0.5, 0.1, 0.3], [0.9, 0.7, 0.8]) == 0.0
    assert top_pick_regret([0.5, 0.5, 0.3], [0.9, 0.7, 0.8]) == pytest.approx(0.2)  # a tie at the top: the worse one


def _rows():
    """Two data sets x 3 backbones x 2 seeds x (full, lora); the score belongs to (backbone, seed), not the method."""
    rows = []
    score = {"a": 3.0, "b": 2.0, "c": 1.0}
    acc = {"full": {"a": 0.8, "b": 0.9, "c": 0.5}, "lora": {"a": 0.9, "b": 0.7, "c": 0.6}}
    for dataset in ("d1", "d2"):
        for backbone in "abc":
            for seed in (0, 1):
                for method in ("full", "lora"):
                    rows.append({"modality": "vision", "dataset": dataset, "backbone": backbone, "method": method,
                                 "shots_per_class": 16, "seed": seed,
                                 "test_accuracy": acc[method][backbone] + 0.01 * seed,
                                 "logme": score[backbone] + 0.1 * seed, "n_le_d": backbone == "c"})  # fmt: skip
    return rows


def test_rankings_are_per_data_set_and_size_over_backbones():
    rankings = rank_candidates(_rows(), "logme", "full")
    assert [(r.dataset, r.method) for r in rankings] == [("d1", "full"), ("d2", "full")]  # never pooled
    r = rankings[0]
    assert r.candidates == ["a", "b", "c"] and r.top_scored == "a" and r.best == "b"
    assert r.tau == pytest.approx(2 / 11)  # scores 3, 2, 1 vs accuracies 0.8, 0.9, 0.5: the top pair swapped
    assert r.regret == pytest.approx(0.1)  # picks a (0.805) instead of b (0.905)
    assert r.seed_taus == pytest.approx([2 / 11, 2 / 11]) and r.seed_regrets == pytest.approx([0.1, 0.1])
    assert r.n_le_d == ["c"]
    lora = rank_candidates(_rows(), "logme", "lora")[0]
    assert lora.tau == pytest.approx(1.0) and lora.regret == 0.0


def test_fewer_than_three_candidates_rank_nothing():
    rows = [r for r in _rows() if r["backbone"] != "c"]
    assert rank_candidates(rows, "logme", "full") == []
    assert rank_candidates(_rows(), "knn_transfer", "full") == []  # no such score measured
