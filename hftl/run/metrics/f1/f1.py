"""f1 as an `evaluate` metric module, shipped inside hftl so it loads by path with no Hub look-up."""

from sklearn.metrics import f1_score

# The module, not the class: evaluate takes the first Metric class in this file's namespace.
from hftl.run.metrics import sklearn_metric


class F1(sklearn_metric.SklearnClassificationMetric):
    key = "f1"
    description = "Harmonic mean of precision and recall, per class, then averaged."
    score_fn = f1_score
