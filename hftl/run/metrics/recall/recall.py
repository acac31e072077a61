"""recall as an `evaluate` metric module, shipped inside hftl so it loads by path with no Hub look-up."""

from sklearn.metrics import recall_score

# The module, not the class: evaluate takes the first Metric class in this file's namespace.
from hftl.run.metrics import sklearn_metric


class Recall(sklearn_metric.SklearnClassificationMetric):
    key = "recall"
    description = "Of the rows of a class, the share predicted as it; per class, then averaged."
    score_fn = recall_score
