"""The shared body of hftl's classification metric modules (each module under this folder is a thin subclass)."""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    average (str): for per-class scores, how to combine them: "macro" (default), "weighted", "micro".
    labels (list of int): the classes to average over (default: those present).
Returns:
    dict with the score under the module's name.
"""


class SklearnClassificationMetric(evaluate.Metric):
    """An `evaluate` metric computed by a scikit-learn scoring function of (references, predictions)."""

    key: str
    description: str
    score_fn: Callable[..., float]
    averaged: bool = True  # per-class score combined by `average`; classes never predicted count as 0

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.description,
            citation="scikit-learn: Machine Learning in Python, Pedregosa et al., JMLR 12, 2011.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average: str = "macro", labels: list[int] | None = None):
        if not self.averaged:
            return {self.key: float(type(self).score_fn(references, predictions))}
        score = type(self).score_fn(references, predictions, average=average, labels=labels, zero_division=0)
        return {self.key: float(score)}
