"""The confusion matrix as a PNG: counts in each cell, rows normalised for the colour (recall per true class)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_confusion_png(report: dict[str, Any], path: Path, title: str) -> Path:
    """Write ``report`` (``per_class_report``'s dict) as a heat map with the counts written in."""
    names, counts = report["labels"], np.asarray(report["confusion_matrix"], dtype=np.int64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.55 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(side, side * 0.9), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=9)
    for (i, j), value in np.ndenumerate(counts):
        if len(names) <= 30:  # beyond that the numbers cannot be read; the colours still show the pattern
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
