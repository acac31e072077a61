"""A run's extra measurements, switched on under ``evaluation``: transferability before training, shift and
forgetting after it. ``hftl.recipe.run`` calls these and puts what they return into results.json."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hftl.evaluation.features import split_features
from hftl.evaluation.forgetting import measure_forgetting
from hftl.evaluation.shift import score_shift
from hftl.evaluation.transferability import knn_accuracy, logme, probe_accuracy
from hftl.run.methods import get_method

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from datasets import DatasetDict

    from hftl.config import Config
    from hftl.modalities import Modality

KNN_K = 5


def transferability(
    cfg: Config, modality: Modality, processor: Any, model: torch.nn.Module, splits: DatasetDict
) -> dict[str, Any]:
    """LogME of the initial model's features on the training split, k-NN and probe accuracy train -> validation.

    ``model`` is the model as built, before training (pretrained; random for method=scratch). Extraction draws no
    random numbers, so the run that follows is the same with or without this measurement.
    """
    started = time.perf_counter()
    cap = cfg.evaluation.probe_max_samples
    train, train_labels = split_features(model, modality, processor, cfg, splits["train"], cap)
    val, val_labels = split_features(model, modality, processor, cfg, splits["validation"], cap)
    train, val = next(iter(train.values())), next(iter(val.values()))
    return {
        "logme": logme(train, train_labels),
        "knn_accuracy": knn_accuracy(train, train_labels, val, val_labels, k=KNN_K),
        "probe_accuracy": probe_accuracy(train, train_labels, val, val_labels, seed=cfg.training.seed),
        "n_train": len(train_labels),
        "n_validation": len(val_labels),
        # LogME with no more rows than feature dimensions is dominated by its prior: flagged for the reader
        "n_rows": len(train_labels),
        "feature_dim": int(train.shape[1]),
        "n_le_d": bool(len(train_labels) <= train.shape[1]),
        "k": KNN_K,
        "seconds": round(time.perf_counter() - started, 2),
    }


def after_training(
    cfg: Config,
    modality: Modality,
    processor: Any,
    model: torch.nn.Module,
    accelerator: Accelerator,
    splits: DatasetDict,
    label_names: list[str],
    test_accuracy: float | None = None,
) -> dict[str, Any]:
    """results["shift"] (every process takes part: it evaluates through the prepared loaders) and
    results["forgetting"] (main process only), for the best model. test_accuracy: the best model's accuracy on the
    whole test split, already measured (shift then skips its own clean pass)."""
    out: dict[str, Any] = {}
    if cfg.evaluation.shift:
        out["shift"] = score_shift(cfg, modality, processor, model, accelerator, splits["test"], test_accuracy)
    # scratch never had the source's knowledge: there is nothing for it to forget
    if cfg.evaluation.forgetting and accelerator.is_main_process and get_method(cfg.method.name).pretrained:
        out["forgetting"] = measure_forgetting(cfg, modality, processor, accelerator.unwrap_model(model), label_names)
    return out
