"""Classification: one label per input; the modality's head (``AutoModelFor...Classification``), argmax + metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hftl.run.metrics import compute_metrics
from hftl.tasks import Evaluator, Task, register_task

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from hftl.config import Config
    from hftl.modalities import Modality


def evaluate(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, metric_names: list[str]
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Metrics (+ mean loss) over a prepared loader; every sample counted once across processes."""
    model.eval()
    preds, labels, losses = [], [], []
    with torch.no_grad():
        for batch in loader:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none")
            gathered = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"], loss))
            for bucket, value in zip((preds, labels, losses), gathered, strict=True):
                bucket.append(value.cpu().numpy())
    preds, labels = np.concatenate(preds), np.concatenate(labels)
    metrics = compute_metrics(metric_names, preds, labels)
    metrics["loss"] = float(np.concatenate(losses).mean())
    return metrics, preds, labels


class Classification(Task):
    name = "classification"
    labels = "class"
    per_class = True

    def auto_model(self, modality: Modality) -> Any:
        return modality.auto_model()

    def label_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }

    def evaluator(self, cfg: Config, accelerator: Accelerator, processor: Any) -> Evaluator:
        return lambda model, loader: evaluate(model, loader, accelerator, cfg.evaluation.metrics)


register_task(Classification())
