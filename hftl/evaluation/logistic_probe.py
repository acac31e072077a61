"""The linear probe as the reference studies fit it: an L2-regularised logistic regression on frozen features.

Kornblith et al. 2019 and Kumar et al. 2022 fit the probe with L-BFGS and choose the L2 strength on a validation
split; a probe trained by a few SGD steps at one learning rate measures the learning rate, not the features. Here
the features (cached, :mod:`hftl.evaluation.cached_probe`) are standardised with the training rows' mean and scale,
one ``sklearn.linear_model.LogisticRegression`` (L-BFGS, multinomial) is fitted per C of the grid, the C with the
best validation accuracy wins (ties: the stronger regularisation, i.e. the smaller C), and the standardisation is
folded into the weights so that the head is one affine map of the raw features: ``logits = W x + b``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

SCALE_FLOOR = 1e-6  # a constant feature (a dead unit) is left unscaled rather than divided by zero


@dataclass
class LogisticProbe:
    weight: np.ndarray  # (classes, features): logits = features @ weight.T + bias, on the raw (unstandardised) features
    bias: np.ndarray  # (classes,)
    c: float  # the chosen inverse L2 strength
    validation_accuracy: float
    iterations: int  # L-BFGS iterations of the chosen fit
    converged: bool  # the chosen fit met L-BFGS's tolerance before max_iter
    scores: dict[float, float] = field(default_factory=dict)  # validation accuracy per C

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias


def _fit_one(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as converged=False instead
        model.fit(x, y)
    return model


def _full_matrix(model, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, features) weights and biases for all classes; a class absent from training never wins."""
    coef, intercept = np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)
    classes = np.asarray(model.classes_)
    if len(classes) == 2:  # sklearn's binary model is one row: logit(class 1) - logit(class 0)
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((num_classes, coef.shape[1]))
    bias = np.full(num_classes, -1e4)
    weight[classes], bias[classes] = coef, intercept
    return weight, bias


def fit_logistic_probe(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
    c_grid: list[float], num_classes: int, max_iter: int = 1000,
) -> LogisticProbe:
    """Sweep C on validation (never test) and return the chosen probe, folded back onto the raw features."""
    train_x, val_x = np.asarray(train_x, np.float64), np.asarray(val_x, np.float64)
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)
    if len(np.unique(train_y)) < 2:
        raise ValueError(f"a logistic probe needs at least 2 classes in training, got {np.unique(train_y).tolist()}")
    mean = train_x.mean(axis=0)
    scale = np.maximum(train_x.std(axis=0), SCALE_FLOOR)
    z_train, z_val = (train_x - mean) / scale, (val_x - mean) / scale
    best = None
    scores: dict[float, float] = {}
    for c in sorted(c_grid):  # ascending: a tie keeps the smaller C (stronger L2)
        model = _fit_one(z_train, train_y, c, max_iter)
        weight, bias = _full_matrix(model, num_classes)
        accuracy = float(np.mean((z_val @ weight.T + bias).argmax(axis=1) == val_y))
        scores[float(c)] = accuracy
        if best is None or accuracy > best[0]:
            best = (accuracy, c, weight, bias, int(np.max(model.n_iter_)))
    accuracy, c, weight, bias, iterations = best
    folded = weight / scale  # W z + b = W (x - mean) / scale + b
    return LogisticProbe(
        weight=folded, bias=bias - folded @ mean, c=float(c), validation_accuracy=accuracy,
        iterations=iterations, converged=iterations < max_iter, scores=scores,
    )  # fmt: skip
