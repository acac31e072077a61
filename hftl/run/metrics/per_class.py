"""Per-class precision / recall / F1 / support and the confusion matrix: where a classifier's errors are.

A macro average hides which classes fail; these are what a user reads before trusting a model on their classes.
Written into results.json (``per_class``) and by ``hftl evaluate``; plain numpy so the numbers are exact counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(predictions: np.ndarray, references: np.ndarray, num_labels: int) -> np.ndarray:
    """counts[true, predicted] over label ids 0..num_labels-1."""
    counts = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(counts, (np.asarray(references, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return counts


def per_class_report(predictions: np.ndarray, references: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``{"labels", "classes": {name: {precision, recall, f1, support}}, "confusion_matrix": [[...]]}``.

    Precision of a class never predicted, and recall of a class with no rows, are 0.0 (as scikit-learn's
    ``zero_division=0``); a class with no rows in the references has support 0 and is kept, so the matrix is square
    over every label the model knows.
    """
    counts = confusion_matrix(predictions, references, len(names))
    hits = np.diag(counts).astype(np.float64)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    classes = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }
    return {"labels": list(names), "classes": classes, "confusion_matrix": counts.tolist()}


def format_per_class(report: dict[str, Any], indent: str = "  ") -> list[str]:
    """The report as text lines: one row per class, then the confusion matrix (rows true, columns predicted)."""
    names = report["labels"]
    width = max(12, *(len(n) for n in names))
    lines = [f"{indent}{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for name in names:
        c = report["classes"][name]
        lines.append(f"{indent}{name:<{width}} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>7.4f} {c['support']:>8}")
    longest_count = max(len(str(v)) for row in report["confusion_matrix"] for v in row)
    cell = max(5, min(9, max(len(n) for n in names)), longest_count)
    lines.append(f"{indent}confusion matrix (rows: true label, columns: predicted)")
    lines.append(f"{indent}{'':<{width}} " + " ".join(f"{n[:cell]:>{cell}}" for n in names))  # long names cut
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        lines.append(f"{indent}{name:<{width}} " + " ".join(f"{v:>{cell}}" for v in row))
    return lines
