"""Trainer hooks that let a search see each evaluation: Optuna prunes from them, Ray Tune's scheduler reads them.

Intermediate values are reported per evaluation number (1, 2, ...), not per optimizer step: trials of one study
evaluate on the same schedule, and lp_ft's two phases each restart their step count.
"""

from __future__ import annotations

from typing import Any

from hftl.run.hooks import Hook


class EvaluationCounter(Hook):
    def __init__(self, metric: str) -> None:
        self.metric, self.evaluations, self.last_step = metric, 0, 0

    def on_evaluate(self, state: Any, metrics: dict[str, float]) -> None:
        self.evaluations += 1
        self.last_step = state.global_step
        self.seen(state, metrics[self.metric])

    def seen(self, state: Any, value: float) -> None:
        """What a search does with this evaluation's value."""


class OptunaPruning(EvaluationCounter):
    """Reports each evaluation to the trial; stops training cleanly when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        super().__init__(metric)
        self.trial, self.pruned_at_step = trial, None

    def seen(self, state: Any, value: float) -> None:
        self.trial.report(value, step=self.evaluations)
        if self.pruned_at_step is None and self.trial.should_prune():
            self.pruned_at_step = state.global_step
            state.should_stop = True
            state.stop_reason = f"pruned by the search after evaluation {self.evaluations}"


class RayTuneReport(EvaluationCounter):
    """Reports each evaluation to Ray Tune; its scheduler (ASHA, median stopping) ends the trial if it must."""

    def __init__(self, metric: str, greater_is_better: bool) -> None:
        super().__init__(metric)
        self.best: float | None = None
        self.better = (lambda a, b: a > b) if greater_is_better else (lambda a, b: a < b)

    def seen(self, state: Any, value: float) -> None:
        from ray import tune

        self.best = value if self.best is None or self.better(value, self.best) else self.best
        tune.report({self.metric: value, "best": self.best, "evaluation": self.evaluations, "step": state.global_step})
