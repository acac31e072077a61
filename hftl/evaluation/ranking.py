"""Transferability evaluated as in the literature: do the scores rank CANDIDATE BACKBONES like their fine-tuned accuracy?

A score (LogME, k-NN, probe accuracy) is computed on a backbone before any method is applied, so it can only rank
backbones within one target data set and training size; never methods (they share the backbone's score) and never
pooled over data sets (the scores' scales differ). Per (data set, size) and reference method:

    weighted tau  scipy.stats.weightedtau(scores, accuracies) with its defaults, as the LogME paper (You et al. 2021)
                  and TLlib's model-selection benchmark compute it: the additive hyperbolic weigher (an exchange of the
                  items ranked r and s, from 0, weighs 1/(r+1) + 1/(s+1)) averaged over the decreasing lexicographic
                  ranks by (score, accuracy) and by (accuracy, score): swapping the top candidates costs most.
    regret        the best candidate's accuracy minus the accuracy of the candidate the score puts first: what a
                  user loses by trusting the score instead of fine-tuning every candidate.
Both on the seed means, and per seed (scores on that seed's training subset vs that seed's accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_CANDIDATES = 3  # below this a ranking says next to nothing (2 items: tau is +-1)
# Whose accuracy a score must predict, in order of preference: LogME's reference is the fine-tuned accuracy.
REFERENCE_METHODS = ("full", "lora", "lp_ft", "linear_probe")


def weighted_tau(scores: Sequence[float], accuracies: Sequence[float]) -> float:
    """Weighted Kendall tau between scores and accuracies (scipy's defaults, the LogME paper's convention)."""
    from scipy.stats import weightedtau

    if len(scores) != len(accuracies) or len(scores) < 2:
        raise ValueError(f"weighted tau needs two equally long sequences of at least 2, got {len(scores)} and {len(accuracies)}")
    return float(weightedtau(np.asarray(scores, dtype=np.float64), np.asarray(accuracies, dtype=np.float64)).statistic)


def top_pick_regret(scores: Sequence[float], accuracies: Sequence[float]) -> float:
    """max(accuracy) - accuracy of the top-scored candidate (ties in the score: the worst of the tied, a cautious pick)."""
    scores, accuracies = np.asarray(scores, dtype=np.float64), np.asarray(accuracies, dtype=np.float64)
    if len(scores) != len(accuracies) or len(scores) == 0:
        raise ValueError(f"regret needs equally long, non-empty sequences, got {len(scores)} and {len(accuracies)}")
    top = scores == scores.max()
    return float(accuracies.max() - accuracies[top].min())


@dataclass
class Ranking:
    """How well one score ranks the candidates of one (modality, data set, size), against one method's accuracy."""

    modality: str
    dataset: str
    shots: Any
    score: str
    method: str  # the reference: each candidate's accuracy under this method
    candidates: list[str]
    scores: list[float]  # seed means, in candidates' order
    accuracies: list[float]
    tau: float
    regret: float
    seed_taus: list[float] = field(default_factory=list)
    seed_regrets: list[float] = field(default_factory=list)
    n_le_d: list[str] = field(default_factory=list)  # candidates whose score came from N <= D rows (prior-dominated)

    @property
    def top_scored(self) -> str:
        return self.candidates[int(np.argmax(self.scores))]

    @property
    def best(self) -> str:
        return self.candidates[int(np.argmax(self.accuracies))]


def finite_number(value: Any) -> float | None:
    """A number (or its string, as results.csv holds it) as a float; None when absent, not a number, or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def rank_candidates(rows: list[dict[str, Any]], score: str, method: str) -> list[Ranking]:
    """One Ranking per (modality, data set, size) with at least MIN_CANDIDATES backbones having the score and a run of
    ``method``. rows: results.csv rows (numbers or their strings) with modality, dataset, backbone, method,
    shots_per_class, seed, test_accuracy, the score's column and optionally n_le_d."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["modality"], row["dataset"], str(row["shots_per_class"])), []).append(row)
    out = []
    for (modality, dataset, _), members in groups.items():
        # The score belongs to (backbone, seed subset): any method's run of that backbone and seed carries it.
        score_of: dict[tuple[str, str], float] = {}
        small: set[str] = set()
        for r in members:
            value = finite_number(r.get(score))
            if value is not None:
                score_of.setdefault((r["backbone"], str(r["seed"])), value)
                if _flag(r.get("n_le_d")):
                    small.add(r["backbone"])
        accuracy_of = {(r["backbone"], str(r["seed"])): finite_number(r.get("test_accuracy")) for r in members if r["method"] == method}
        pairs = {k: (score_of[k], a) for k, a in accuracy_of.items() if a is not None and k in score_of}
        candidates = list(dict.fromkeys(b for b, _ in pairs))
        if len(candidates) < MIN_CANDIDATES:
            continue
        mean_score = [float(np.mean([s for (b, _), (s, _) in pairs.items() if b == c])) for c in candidates]
        mean_acc = [float(np.mean([a for (b, _), (_, a) in pairs.items() if b == c])) for c in candidates]
        ranking = Ranking(modality, dataset, members[0]["shots_per_class"], score, method, candidates, mean_score,
                          mean_acc, weighted_tau(mean_score, mean_acc), top_pick_regret(mean_score, mean_acc),
                          n_le_d=sorted(small & set(candidates)))  # fmt: skip
        for seed in dict.fromkeys(s for _, s in pairs):
            at = [pairs[(c, seed)] for c in candidates if (c, seed) in pairs]
            if len(at) >= MIN_CANDIDATES and len({s for s, _ in at}) > 1 and len({a for _, a in at}) > 1:
                ranking.seed_taus.append(weighted_tau([s for s, _ in at], [a for _, a in at]))
                ranking.seed_regrets.append(top_pick_regret([s for s, _ in at], [a for _, a in at]))
        out.append(ranking)
    return out


def published_regime(rankings: list[Ranking]) -> tuple[list[Ranking], int]:
    """The groups to judge LogME on, and how many were set aside. LogME's published band was measured on whole
    downstream data sets (N >> D): where some group scored every candidate with N > D rows, only those groups count,
    since a prior-dominated N <= D score tests another regime; without such a group every group counts (flagged)."""
    large = [r for r in rankings if not r.n_le_d]
    judged = large or rankings
    return judged, len(rankings) - len(judged)


def reference_rankings(rows: list[dict[str, Any]], score: str) -> list[Ranking]:
    """The rankings against the first of REFERENCE_METHODS that has any ([] when none has)."""
    for method in REFERENCE_METHODS:
        found = rank_candidates(rows, score, method)
        if found:
            return found
    return []
