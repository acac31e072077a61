"""Classification metrics through `evaluate`, from the modules shipped in this folder (loaded by path).

``evaluate.load("accuracy")`` would look for ./accuracy/accuracy.py and then the Hub (1.5 s and a failure offline);
loading by path takes milliseconds and never touches the network.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from hftl.errors import ConfigError

_HERE = Path(__file__).parent

# name in configs and results -> (module folder, extra compute kwargs)
METRICS: dict[str, tuple[str, dict]] = {
    "accuracy": ("accuracy", {}),
    "f1_macro": ("f1", {"average": "macro"}),
    "f1_weighted": ("f1", {"average": "weighted"}),
    "precision_macro": ("precision", {"average": "macro"}),
    "recall_macro": ("recall", {"average": "macro"}),
}


@cache
def load_metric(module: str):
    import evaluate

    return evaluate.load(str(_HERE / module / f"{module}.py"))


def check_metric_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"evaluation.metrics: unknown metric(s) {unknown}; available: {sorted(METRICS)}")


def compute_metrics(names: list[str], predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Each named metric over integer predictions and references."""
    check_metric_names(names)
    predictions = np.asarray(predictions).astype(np.int64).tolist()
    references = np.asarray(references).astype(np.int64).tolist()
    labels = sorted(set(references) | set(predictions))
    results = {}
    for name in names:
        module, kwargs = METRICS[name]
        if "average" in kwargs:
            kwargs = {**kwargs, "labels": labels}
        value = load_metric(module).compute(predictions=predictions, references=references, **kwargs)
        results[name] = float(value[module])
    return results
