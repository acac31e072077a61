"""The trained model's scores on shifted copies of its test split (results["shift"]).

The copies come from the run's modality (``Modality.shift_variants``; the transforms: hftl/modalities/shifts.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import DataLoader

from hftl.run.data import stratified_sample
from hftl.run.training import evaluate

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config
    from hftl.modalities import Modality


def shifted_splits(split: Dataset, cfg: Config, modality: Modality, processor: Any) -> dict[str, Dataset]:
    """The shifted copies of a raw split (same columns) for the run's modality."""
    # seeded by the split seed, not the training seed: every run of a grid sees the same shifted rows
    return modality.shift_variants(split, cfg, processor, seed=cfg.data.split_seed)


def score_shift(
    cfg: Config, modality: Modality, processor: Any, model: Any, accelerator: Any, test_split: Dataset
) -> dict[str, Any]:
    """The model's metrics on the (capped) test rows and on each shifted copy of them: results["shift"]."""
    started = time.perf_counter()
    cap = cfg.evaluation.probe_max_samples
    if len(test_split) > cap:
        test_split = test_split.select(stratified_sample(np.asarray(test_split[cfg.data.label_column]), cap, cfg.data.split_seed))
    collate = modality.collator(processor, cfg)
    names = list(dict.fromkeys(["accuracy", *cfg.evaluation.metrics]))  # the mean below needs accuracy

    def metrics_on(split: Dataset) -> dict[str, float]:
        prepared = modality.prepare(split, processor, cfg, train=False)
        loader = DataLoader(prepared, batch_size=cfg.evaluation.batch_size, shuffle=False, collate_fn=collate)
        return evaluate(model, accelerator.prepare(loader), accelerator, names)[0]

    clean = metrics_on(test_split)
    variants = {name: metrics_on(split) for name, split in shifted_splits(test_split, cfg, modality, processor).items()}
    return {
        "variants": variants,
        "mean_accuracy": float(np.mean([m["accuracy"] for m in variants.values()])),
        "clean_accuracy": clean["accuracy"],
        "n_samples": len(test_split),
        "seconds": round(time.perf_counter() - started, 2),
    }
