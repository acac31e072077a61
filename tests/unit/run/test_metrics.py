"""The metric modules shipped in hftl/metrics load by path (no Hub) and agree with scikit-learn."""

from __future__ import annotations

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


def test_modules_load_by_path_without_asking_a_hub(monkeypatch, tmp_path):
    """Online mode against a loopback Hub that records every request: loading the shipped metrics asks it nothing.

    (Timing cannot tell: a refused Hub look-up fails fast on a closed network.)
    """
    from tests.helpers.hub_server import HubServer, use_loopback_hub

    with HubServer(tmp_path / "hub", token="t") as hub:
        use_loopback_hub(monkeypatch, hub.url, tmp_path / "cache")
        import evaluate.config  # evaluate keeps its own copy of the endpoint, read at import

        monkeypatch.setattr(evaluate.config, "HF_ENDPOINT", hub.url)
        monkeypatch.setattr(evaluate.config, "HUB_EVALUATE_URL", hub.url + "/spaces/{path}/resolve/{revision}/{name}")
        monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", False)
        load_metric.cache_clear()
        try:
            for name, (module, _) in METRICS.items():
                assert load_metric(module) is not None, name
        finally:
            load_metric.cache_clear()
        assert hub.requests == [] and hub.unknown == []
        # The control: a metric hftl does not ship goes to the Hub, and this server sees it.
        with pytest.raises(Exception):  # noqa: B017  (evaluate raises FileNotFoundError or an HTTP error by version)
            evaluate.load("hftl-test/no-such-metric", download_config=None)
        assert hub.requests or hub.unknown


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="evaluation.metrics.*bleu"):
        compute_metrics(["accuracy", "bleu"], [0], [0])
