"""The metric modules shipped in hftl/metrics load by path (no Hub) and agree with scikit-learn."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from hftl.errors import ConfigError
from hftl.run.metrics import METRICS, compute_metrics, load_metric


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 4, 200)
    preds = np.where(rng.random(200) < 0.7, refs, rng.integers(0, 4, 200))
    got = compute_metrics(["accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"], preds, refs)
    assert got["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert got["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro"))
    assert got["f1_weighted"] == pytest.approx(f1_score(refs, preds, average="weighted"))
    assert got["precision_macro"] == pytest.approx(precision_score(refs, preds, average="macro"))
    assert got["recall_macro"] == pytest.approx(recall_score(refs, preds, average="macro"))


def test_perfect_and_missing_class_predictions():
    assert compute_metrics(["accuracy", "f1_macro"], [0, 1, 2], [0, 1, 2]) == {"accuracy": 1.0, "f1_macro": 1.0}
    # a class never predicted scores 0 for it (no warning, no NaN)
    got = compute_metrics(["precision_macro"], [0, 0, 0], [0, 1, 2])
    assert got["precision_macro"] == pytest.approx(1 / 9)


def test_modules_load_offline_by_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_metric.cache_clear()
    start = time.perf_counter()
    for module, _ in METRICS.values():
        load_metric(module)
    # A Hub look-up would take ~1.5 s per metric before failing; by path it is instant.
    assert time.perf_counter() - start < 5.0


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="evaluation.metrics.*bleu"):
        compute_metrics(["accuracy", "bleu"], [0], [0])
