"""Data augmentation as small numpy functions: deterministic given a ``numpy.random.Generator``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset

ROW_COLUMN = "_hftl_row"  # row ids carried through a training transform so each row gets its own draw


class AugmentRng:
    """Random generators for training transforms: one per (seed, epoch, row).

    A row's augmentation depends only on the training seed, the epoch and the row's position in the split, never
    on what was drawn before. So it is the same with 0 or 8 DataLoader workers (forked workers would otherwise
    share a copy of one generator), after a resume from a checkpoint (nothing to save), and a new draw each epoch
    (the training loop calls ``set_epoch`` before each pass; workers are forked after it).
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def for_row(self, row: int, stream: int = 0) -> np.random.Generator:
        """The generator of one row; ``stream`` separates independent uses (e.g. waveform vs spectrogram)."""
        return np.random.default_rng((self.seed, self.epoch, int(row), stream))

    def for_batch(self, rows: list[int]) -> np.random.Generator:
        """The generator of a batch-level transform (mixup, cutmix): fixed by the batch's rows."""
        return np.random.default_rng((self.seed, self.epoch, *sorted(int(r) for r in rows), 1 << 30))


def with_row_ids(ds: Dataset) -> Dataset:
    """``ds`` plus a column of row positions (read by training transforms through ``ROW_COLUMN``)."""
    return ds.add_column(ROW_COLUMN, list(range(len(ds))))
