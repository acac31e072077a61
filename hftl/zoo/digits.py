"""Zoo data set ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.image_data import grey_image_dataset
from hftl.zoo.splits import save_splits, train_validation_test

N_IMAGES, CLASSES = 1797, tuple(str(d) for d in range(10))
SEED, TEST_SIZE, VALIDATION_SIZE = 42, 0.2, 0.1


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Return the digits as ``uint8`` (N, 8, 8) images scaled 0..16 -> 0..255, and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def build(dest: Path) -> dict[str, Any]:
    """Write a stratified 70/10/20 train/validation/test ``DatasetDict`` into ``dest``."""
    import sklearn

    images, labels = digit_images()
    if images.shape != (N_IMAGES, 8, 8) or sorted(set(labels.tolist())) != list(range(len(CLASSES))):
        raise ZooError(f"digits: expected {N_IMAGES} 8x8 images of 10 classes, got {images.shape}")
    full = grey_image_dataset(images, labels, CLASSES)
    splits = train_validation_test(full, TEST_SIZE, VALIDATION_SIZE, SEED)
    sizes = save_splits(splits, dest, "digits")
    return {"sklearn": sklearn.__version__, "splits": sizes, "labels": list(CLASSES)}


register(
    ZooEntry(
        name="digits",
        kind="dataset",
        modality="vision",
        description="scikit-learn's 8x8 handwritten digits: 1797 grey images, 10 classes, stratified 70/10/20",
        source="scikit-learn load_digits (bundled with the sklearn package)",
        license="BSD-3-Clause (scikit-learn); data: UCI optdigits, CC BY 4.0",
        build=build,
    )
)
