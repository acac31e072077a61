"""training.tracking=mlflow: a real MLflow store (SQLite file) receives the run's parameters and metrics."""

from __future__ import annotations

import pytest

from hftl.config import load_config
from hftl.recipe import run


def test_mlflow_tracker_logs_params_and_metrics(quick_overrides, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is an extra: pip install hftl[mlflow]")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hftl-test")
    results = run(load_config(None, [*quick_overrides, "training.tracking=mlflow", "name=tracked"]))

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hftl-test")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.params["training.learning_rate"] == "0.003" and logged.data.params["method.name"] == "lora"
    history = client.get_metric_history(logged.info.run_id, "eval/accuracy")
    assert [m.value for m in history] == pytest.approx([h["eval/accuracy"] for h in results["history"]])
    assert logged.data.metrics["test/accuracy"] == pytest.approx(results["test"]["accuracy"])
