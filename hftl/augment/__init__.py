"""Data augmentation as small numpy functions: deterministic given a ``numpy.random.Generator``."""

from __future__ import annotations

import numpy as np


class AugmentRng:
    """The generator a training transform draws from: seeded, and reseeded per DataLoader worker.

    In the main process (``num_workers=0``) it is one generator seeded with the training seed, so a run's
    augmentations repeat exactly. Workers are forked with a copy of the parent's generator: without reseeding
    every worker would repeat the same augmentations, and again every epoch. Inside a worker it switches to
    torch's per-worker seed, which differs per worker and per epoch.
    """

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    def get(self) -> np.random.Generator:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng(info.seed)
        return self._rng
