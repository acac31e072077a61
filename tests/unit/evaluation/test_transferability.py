"""LogME, k-NN and probe scores on synthetic features with known answers; linear CKA identities."""

from __future__ import annotations

import numpy as np
import pytest

from hftl.evaluation.similarity import linear_cka
from hftl.evaluation.transferability import knn_accuracy, knn_predict, logme, logme_evidence, probe_accuracy


def _labels(n_per_class: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(classes), n_per_class))


def _reference_evidence(features: np.ndarray, y: np.ndarray, tol: float = 1e-10) -> tuple[float, float, float]:
    """Slow LogME for one target: the evidence formula with A, A^-1 and log|A| computed directly (D x D)."""
    n, dim = features.shape
    ftf, fty = features.T @ features, features.T @ y
    eig = np.linalg.eigvalsh(ftf)
    alpha, beta = 1.0, 1.0
    for _ in range(10_000):
        a = alpha * np.eye(dim) + beta * ftf
        m = beta * np.linalg.solve(a, fty)
        gamma = float(np.sum(beta * eig / (alpha + beta * eig)))
        t = alpha / beta
        alpha = gamma / float(m @ m)
        beta = (n - gamma) / float(np.sum((features @ m - y) ** 2))
        if abs(alpha / beta - t) / t < tol:
            break
    a = alpha * np.eye(dim) + beta * ftf
    m = beta * np.linalg.solve(a, fty)
    _, log_det = np.linalg.slogdet(a)
    evidence = (
        n / 2 * np.log(beta) + dim / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * np.sum((features @ m - y) ** 2) - alpha / 2 * float(m @ m) - 0.5 * log_det
    )  # fmt: skip
    return float(evidence), alpha, beta


@pytest.mark.parametrize("n,dim", [(60, 8), (12, 20)])  # more samples than dimensions, and fewer (few-shot)
def test_logme_matches_direct_evidence(n, dim):
    rng = np.random.default_rng(1)
    features = rng.standard_normal((n, dim))
    y = (features @ rng.standard_normal(dim) + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    fast = logme_evidence(s, u.T @ y, float(y @ y), n, dim, tol=1e-10, max_iter=10_000)
    evidence, alpha, beta = _reference_evidence(features, y)
    assert fast.alpha == pytest.approx(alpha, rel=1e-6)
    assert fast.beta == pytest.approx(beta, rel=1e-6)
    assert fast.log_evidence == pytest.approx(evidence, rel=1e-8, abs=1e-8)


def test_logme_prefers_informative_features():
    labels = _labels(30, 4)
    rng = np.random.default_rng(2)
    one_hot = np.eye(4)[labels] + 0.01 * rng.standard_normal((len(labels), 4))
    informative = np.hstack([one_hot, 0.01 * rng.standard_normal((len(labels), 12))])
    noise = rng.standard_normal((len(labels), 16))
    assert logme(informative, labels) > logme(noise, labels) + 1.0


def test_logme_is_invariant_to_label_permutation():
    labels = _labels(20, 3)
    features = np.random.default_rng(3).standard_normal((len(labels), 10)) + labels[:, None]
    renamed = np.array([2, 0, 1])[labels]
    assert logme(features, renamed) == pytest.approx(logme(features, labels), rel=1e-12)
    assert logme(features, np.array(["c", "a", "b"])[labels]) == pytest.approx(logme(features, labels), rel=1e-12)


def test_logme_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        logme(np.array([[1.0, np.nan], [0.0, 1.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        logme(np.zeros((3, 2)), np.zeros(4))


def test_knn_on_separable_clusters_is_perfect():
    rng = np.random.default_rng(4)
    labels = _labels(25, 4)
    centres = 10 * np.eye(8)[:4]
    features = centres[labels] + 0.1 * rng.standard_normal((len(labels), 8))
    assert knn_accuracy(features, labels, k=5) == 1.0  # leave-one-out
    test_labels = _labels(5, 4, seed=9)
    test_features = centres[test_labels] + 0.1 * rng.standard_normal((len(test_labels), 8))
    assert knn_accuracy(features, labels, test_features, test_labels, k=3) == 1.0
    assert probe_accuracy(features, labels, test_features, test_labels) == 1.0


def test_knn_leave_one_out_never_uses_the_row_itself():
    # Each point's only exact copy is itself: with k=1 and self excluded, the nearest is the other cluster's point.
    features = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 1])
    assert knn_accuracy(features, labels, k=1) == 0.0
    assert knn_accuracy(features, labels, features, labels, k=1) == 1.0


def test_knn_tie_goes_to_the_more_similar_class():
    train = np.array([[1.0, 0.1], [0.0, 1.0]])
    query = np.array([[1.0, 0.0]])
    assert knn_predict(train, np.array([7, 3]), query, k=2)[0] == 7


def test_knn_on_random_labels_is_near_chance():
    rng = np.random.default_rng(5)
    features = rng.standard_normal((400, 16))
    labels = rng.integers(0, 4, 400)
    assert abs(knn_accuracy(features, labels, k=5) - 0.25) < 0.08


# ---- linear CKA ----------------------------------------------------------------------------------------


def test_cka_of_a_representation_with_itself_is_one():
    x = np.random.default_rng(6).standard_normal((50, 7))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((80, 6))
    y = x @ rng.standard_normal((6, 5)) + 0.3 * rng.standard_normal((80, 5))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    base = linear_cka(x, y)
    assert 0.1 < base < 0.99
    assert linear_cka(x, y @ q) == pytest.approx(base, rel=1e-10)
    assert linear_cka(3.5 * x, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 4.0, y - 2.0) == pytest.approx(base, rel=1e-10)  # centred internally
    assert linear_cka(x, x @ np.linalg.qr(rng.standard_normal((6, 6)))[0] * 0.2) == pytest.approx(1.0, abs=1e-10)


def test_cka_of_independent_features_is_near_zero():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((5000, 10)), rng.standard_normal((5000, 12))
    assert linear_cka(x, y) < 0.02


def test_cka_rejects_constant_or_mismatched_inputs():
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((5, 3)), np.random.default_rng(0).standard_normal((5, 3)))
    with pytest.raises(ValueError, match="same n"):
        linear_cka(np.zeros((5, 3)), np.zeros((4, 3)))
