"""The one way zoo data sets without their own validation/test splits are cut: stratified, seeded, by share of the whole."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger("hftl")


def train_validation_test(full: Dataset, test_size: float, validation_size: float, seed: int) -> DatasetDict:
    """Stratified on ``label``: ``test_size`` of the whole, then ``validation_size`` of the whole from what is left."""
    from datasets import DatasetDict

    first = full.train_test_split(test_size=test_size, stratify_by_column="label", seed=seed)
    second = first["train"].train_test_split(
        test_size=validation_size / (1 - test_size), stratify_by_column="label", seed=seed
    )
    return DatasetDict(train=second["train"], validation=second["test"], test=first["test"])


def save_splits(splits: DatasetDict, dest: Path, name: str) -> dict[str, int]:
    """Write ``splits`` to ``dest`` (``save_to_disk``) and return, and log, the rows per split."""
    splits.save_to_disk(str(dest))
    sizes = {split: len(rows) for split, rows in splits.items()}
    logger.info("zoo: %s splits %s", name, sizes)
    return sizes
