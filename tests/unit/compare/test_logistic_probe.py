"""The probe is an L2-swept logistic regression: the cached-feature probe equals a direct sklearn fit."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hftl.evaluation.cached_probe import CapturedHead, write_linear_head
from hftl.evaluation.logistic_probe import fit_logistic_probe


def _blobs(seed: int, n: int = 90, d: int = 12, classes: int = 3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, (classes, d))
    y = np.arange(n) % classes
    return centers[y] + rng.normal(0, 2.0, (n, d)) * rng.uniform(0.5, 3, d), y


def test_probe_equals_a_direct_sklearn_fit_at_the_chosen_c():
    x, y = _blobs(0)
    vx, vy = _blobs(1)
    grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    probe = fit_logistic_probe(x, y, vx, vy, grid, num_classes=3)
    # each C's validation accuracy is a direct sklearn fit's, and the chosen C is the best (smallest on ties)
    scaler = StandardScaler().fit(x)
    direct = {c: LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x), y) for c in grid}
    accuracy = {c: float(np.mean(m.predict(scaler.transform(vx)) == vy)) for c, m in direct.items()}
    assert probe.scores == accuracy
    assert probe.c == min(c for c in grid if accuracy[c] == max(accuracy.values()))
    # the folded weights give sklearn's logits on the raw features
    reference = direct[probe.c].decision_function(scaler.transform(vx))
    np.testing.assert_allclose(probe.logits(vx), reference, rtol=1e-6, atol=1e-6)
    assert probe.converged and probe.iterations > 0


def test_probe_never_sees_anything_but_train_and_validation():
    x, y = _blobs(0)
    vx, vy = _blobs(1)
    a = fit_logistic_probe(x, y, vx, vy, [0.01, 1.0], 3)
    b = fit_logistic_probe(x, y, vx, vy, [0.01, 1.0], 3)
    np.testing.assert_array_equal(a.weight, b.weight)


def test_a_class_missing_from_training_never_wins():
    x, y = _blobs(0)
    keep = y != 2
    probe = fit_logistic_probe(x[keep], y[keep], x, y, [1.0], num_classes=3)
    assert (probe.logits(x).argmax(axis=1) != 2).all()


class _Projected(torch.nn.Module):
    """Whisper's layout: a projector, then the classifier."""

    def __init__(self, width: int, hidden: int, classes: int):
        super().__init__()
        self.projector = torch.nn.Linear(width, hidden)
        self.classifier = torch.nn.Linear(hidden, classes)


def test_the_fit_is_written_into_one_or_two_linear_head_modules():
    x, y = _blobs(0)
    probe = fit_logistic_probe(x, y, x, y, [1.0], 3)
    single = torch.nn.Module()
    single.classifier = torch.nn.Linear(12, 3)
    for model, order in ((single, ["classifier"]), (_Projected(12, 8, 3), ["projector", "classifier"])):
        head = CapturedHead(model, order, 3)
        assert write_linear_head(head, probe.weight, probe.bias)
        got = head(torch.as_tensor(x, dtype=torch.float32)).logits.detach().numpy()
        np.testing.assert_allclose(got, probe.logits(x), rtol=1e-4, atol=1e-3)
    # a projector narrower than the classes cannot hold the map
    assert not write_linear_head(CapturedHead(_Projected(12, 2, 3), ["projector", "classifier"], 3), probe.weight, probe.bias)
