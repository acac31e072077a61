"""The trained model's scores on shifted copies of its test split (results["shift"]).

The copies come from the run's modality (``Modality.shift_variants``; the transforms: hftl/modalities/shifts.py).
Every copy is of the SAME test rows the run's test accuracy is measured on (``data.max_test_samples`` /
``max_eval_samples`` set how many), in the same order, so clean and shifted accuracy are a paired comparison:
``correct`` holds each row's correctness per variant (moved to results.json 'per_row' by the recipe).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import DataLoader

from hftl.errors import ConfigError
from hftl.run.training import evaluate

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config
    from hftl.modalities import Modality


def shifted_splits(split: Dataset, cfg: Config, modality: Modality, processor: Any) -> dict[str, Dataset]:
    """The shifted copies of a raw split (same columns) for the run's modality: those ``evaluation.shift_variants``
    names, in that order, or all of them.

    Raises:
        ConfigError: a name in evaluation.shift_variants that this modality and data do not make (listing those).
    """
    # seeded by the split seed, not the training seed: every run of a grid sees the same shifted rows
    variants = modality.shift_variants(split, cfg, processor, seed=cfg.data.split_seed)
    wanted = cfg.evaluation.shift_variants
    if wanted is None:
        return variants
    unknown = [name for name in wanted if name not in variants]
    if unknown:
        raise ConfigError(
            f"evaluation.shift_variants: {unknown} not among the {modality.name} shifts of this data "
            f"({', '.join(variants)}); the severities come from evaluation.shift_severities"
        )
    return {name: variants[name] for name in wanted}


def score_shift(
    cfg: Config, modality: Modality, processor: Any, model: Any, accelerator: Any, test_split: Dataset,
    clean_accuracy: float | None = None,
) -> dict[str, Any]:
    """The model's metrics on the test rows and on each shifted copy of the same rows: results["shift"].

    clean_accuracy: the model's accuracy on these test rows when the caller has just scored them (the run's test
    pass), which saves a pass over them; None scores them here.
    """
    started = time.perf_counter()
    collate = modality.collator(processor, cfg)
    names = list(dict.fromkeys(["accuracy", *cfg.evaluation.metrics]))  # the mean below needs accuracy

    correct: dict[str, list[int]] = {}

    def metrics_on(name: str, split: Dataset) -> dict[str, float]:
        prepared = modality.prepare(split, processor, cfg, train=False)
        loader = DataLoader(prepared, batch_size=cfg.evaluation.batch_size, shuffle=False, collate_fn=collate)
        metrics, preds, labels = evaluate(model, accelerator.prepare(loader), accelerator, names)
        correct[name] = [int(p == t) for p, t in zip(preds.tolist(), labels.tolist(), strict=True)]
        return metrics

    splits = shifted_splits(test_split, cfg, modality, processor)  # before any pass: a wrong name fails first
    if clean_accuracy is None:
        clean_accuracy = metrics_on("clean", test_split)["accuracy"]
        correct.pop("clean")
    variants = {name: metrics_on(name, split) for name, split in splits.items()}
    return {
        "variants": variants,
        "mean_accuracy": float(np.mean([m["accuracy"] for m in variants.values()])),
        "clean_accuracy": clean_accuracy,
        "n_samples": len(test_split),
        "same_rows_as_test": True,
        "seconds": round(time.perf_counter() - started, 2),
        "correct": correct,
    }
