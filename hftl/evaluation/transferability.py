"""Transferability scores of frozen features, before any fine-tuning: LogME, k-NN accuracy, a logistic-regression probe.

LogME (You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning") treats each
class's one-hot target y as a Bayesian linear regression on the features F (n x D), with a Gaussian prior of
precision alpha on the weights and Gaussian noise of precision beta. It maximises the log marginal likelihood
(evidence) over alpha and beta by the paper's fixed-point updates and scores the features with the maximised
evidence per sample, averaged over classes. One SVD of F serves every class and every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Features are scored in float64: the evidence adds and subtracts terms of size n * log(...).
_TINY = 1e-12


@dataclass
class Evidence:
    """The maximised evidence of one target and the hyper-parameters that reach it."""

    log_evidence: float  # log p(y | F, alpha, beta), not divided by n
    alpha: float  # prior precision of the weights
    beta: float  # noise precision
    iterations: int


def _check_xy(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise ValueError(f"expected features (n, d) and labels (n,), got {features.shape} and {labels.shape}")
    if len(labels) < 2:
        raise ValueError(f"need at least 2 samples, got {len(labels)}")
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or inf")
    return features, labels


def logme_evidence(
    singular_values: np.ndarray, projected: np.ndarray, target_sq: float, n: int, dim: int,
    tol: float = 1e-3, max_iter: int = 100,
) -> Evidence:
    """Maximise the evidence of one target by the fixed-point updates, from the SVD of the features.

    With F = U diag(s) V^T (thin SVD, k = min(n, D) singular values), x = U^T y and sigma = s^2:
        gamma  = sum_i beta sigma_i / (alpha + beta sigma_i)            (effective number of parameters)
        m^T m  = sum_i sigma_i x_i^2 / (t + sigma_i)^2,  t = alpha / beta   (m = beta A^-1 F^T y, A = alpha I + beta F^T F)
        |Fm-y|^2 = |y|^2 - |x|^2 + sum_i x_i^2 / (1 + sigma_i / t)^2
        alpha <- gamma / m^T m,   beta <- (n - gamma) / |Fm - y|^2,   until t changes by less than ``tol`` (relative).
    The evidence at the final (alpha, beta):
        n/2 log beta + D/2 log alpha - n/2 log 2 pi - beta/2 |Fm-y|^2 - alpha/2 m^T m - 1/2 log|A|,
        log|A| = sum_i log(alpha + beta sigma_i) + (D - k) log alpha   (A's other D - k eigenvalues are alpha).

    Args:
        singular_values: s, the k singular values of F.
        projected: x = U^T y, length k.
        target_sq: |y|^2.
        n: Samples.
        dim: D, the feature dimension.
        tol: Relative change of alpha / beta that ends the iteration.
        max_iter: Cap on the iterations (the paper sees convergence in a few).
    """
    sigma = np.asarray(singular_values, dtype=np.float64) ** 2
    x2 = np.asarray(projected, dtype=np.float64) ** 2
    rest = max(target_sq - x2.sum(), 0.0)  # the part of y outside F's column space
    k = len(sigma)

    def terms(alpha: float, beta: float) -> tuple[float, float, float]:
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1.0 + sigma / t) ** 2).sum() + rest)
        return gamma, m2, res2

    alpha, beta, iterations = 1.0, 1.0, 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        gamma, m2, res2 = terms(alpha, beta)
        t = alpha / beta
        alpha = gamma / max(m2, _TINY)
        beta = max(n - gamma, _TINY) / max(res2, _TINY)
        if abs(alpha / beta - t) / t <= tol:
            break
    _, m2, res2 = terms(alpha, beta)
    log_det = float(np.log(alpha + beta * sigma).sum()) + (dim - k) * np.log(alpha)
    evidence = (
        n / 2.0 * np.log(beta) + dim / 2.0 * np.log(alpha) - n / 2.0 * np.log(2.0 * np.pi)
        - beta / 2.0 * res2 - alpha / 2.0 * m2 - 0.5 * log_det
    )  # fmt: skip
    return Evidence(float(evidence), float(alpha), float(beta), iterations)


def logme(features: np.ndarray, labels: np.ndarray, tol: float = 1e-3, max_iter: int = 100) -> float:
    """LogME score of features for a classification task: mean over classes of the maximised log evidence / n.

    Higher is better; the scale depends on the data, so compare scores of several models on the same data.

    Args:
        features: (n, D) frozen features.
        labels: (n,) class ids (any hashable values; one regression target per distinct value).
    """
    features, labels = _check_xy(features, labels)
    n, dim = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    scores = []
    for cls in np.unique(labels):
        y = (labels == cls).astype(np.float64)
        ev = logme_evidence(s, u.T @ y, float(y @ y), n, dim, tol=tol, max_iter=max_iter)
        scores.append(ev.log_evidence / n)
    return float(np.mean(scores))


def _normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_predict(
    train_features: np.ndarray, train_labels: np.ndarray, query_features: np.ndarray, k: int = 5,
    exclude_self: bool = False, chunk: int = 1024,
) -> np.ndarray:
    """Majority vote of the k most cosine-similar training rows; a tie goes to the class with the larger summed similarity.

    Args:
        exclude_self: Query row i is training row i (leave-one-out): it is never its own neighbour.
    """
    train = _normalise(train_features)
    query = _normalise(query_features)
    train_labels = np.asarray(train_labels)
    classes, label_ids = np.unique(train_labels, return_inverse=True)
    k = max(1, min(k, len(train) - (1 if exclude_self else 0)))
    out = np.empty(len(query), dtype=train_labels.dtype)
    for start in range(0, len(query), chunk):
        sims = query[start : start + chunk] @ train.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near_sims = np.take_along_axis(sims, nearest, axis=1)
        votes = np.zeros((sims.shape[0], len(classes)))
        weight = np.zeros_like(votes)
        rows = np.repeat(np.arange(sims.shape[0]), k)
        np.add.at(votes, (rows, label_ids[nearest].ravel()), 1.0)
        np.add.at(weight, (rows, label_ids[nearest].ravel()), near_sims.ravel())
        # Votes first; summed similarity (< k, since cosine <= 1) only breaks ties.
        out[start : start + chunk] = classes[np.argmax(votes * (2 * k + 1) + weight, axis=1)]
    return out


def knn_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray,
    eval_features: np.ndarray | None = None, eval_labels: np.ndarray | None = None, k: int = 5,
) -> float:
    """Cosine k-NN accuracy: train -> eval when an eval set is given, else leave-one-out on the training set."""
    if eval_features is None:
        predicted = knn_predict(train_features, train_labels, train_features, k, exclude_self=True)
        return float(np.mean(predicted == np.asarray(train_labels)))
    predicted = knn_predict(train_features, train_labels, eval_features, k)
    return float(np.mean(predicted == np.asarray(eval_labels)))


def probe_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, eval_features: np.ndarray, eval_labels: np.ndarray,
    seed: int = 0,
) -> float:
    """Accuracy of an L2-regularised logistic regression (C=1) on standardised frozen features: a quick linear probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_labels = np.asarray(train_labels)
    if len(np.unique(train_labels)) < 2:
        return float(np.mean(np.asarray(eval_labels) == train_labels[0]))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    probe.fit(np.asarray(train_features, dtype=np.float64), train_labels)
    return float(probe.score(np.asarray(eval_features, dtype=np.float64), np.asarray(eval_labels)))
