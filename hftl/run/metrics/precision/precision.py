"""precision as an `evaluate` metric module, shipped inside hftl so it loads by path with no Hub look-up."""

from sklearn.metrics import precision_score

# The module, not the class: evaluate takes the first Metric class in this file's namespace.
from hftl.run.metrics import sklearn_metric


class Precision(sklearn_metric.SklearnClassificationMetric):
    key = "precision"
    description = "Of the rows predicted as a class, the share that belong to it; per class, then averaged."
    score_fn = precision_score
