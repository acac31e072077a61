"""accuracy as an `evaluate` metric module, shipped inside hftl so it loads by path with no Hub look-up."""

from sklearn.metrics import accuracy_score

# The module, not the class: evaluate takes the first Metric class in this file's namespace.
from hftl.run.metrics import sklearn_metric


class Accuracy(sklearn_metric.SklearnClassificationMetric):
    key = "accuracy"
    description = "Fraction of predictions equal to the references."
    score_fn = accuracy_score
    averaged = False
