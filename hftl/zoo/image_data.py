"""Turn arrays of grey images and integer labels into ``datasets`` objects with an ``Image()`` column."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hftl.zoo import ZooError

if TYPE_CHECKING:
    from datasets import Dataset


def png_bytes(image: np.ndarray) -> bytes:
    """Encode one ``uint8`` HxW array as a lossless grey PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def grey_image_dataset(images: np.ndarray, labels: Sequence[int], names: Sequence[str]) -> Dataset:
    """Build a ``Dataset`` with columns ``image`` (``Image()``, mode L) and ``label`` (``ClassLabel``).

    Args:
        images: ``uint8`` array of shape (N, H, W).
        labels: N integer labels in ``range(len(names))``.
        names: Class names, in label order.

    Raises:
        ZooError: Wrong dtype/shape, or labels out of range.
    """
    from datasets import ClassLabel, Dataset, Features, Image

    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise ZooError(
            f"expected N uint8 HxW images and N labels, got {images.dtype} {images.shape}, {labels.shape}"
        )
    if len(labels) and not (labels.min() >= 0 and labels.max() < len(names)):
        raise ZooError(f"labels must lie in 0..{len(names) - 1}, got {labels.min()}..{labels.max()}")
    # PNG bytes are what Image() stores anyway; encoding here skips datasets' slower per-row inference.
    features = Features({"image": Image(), "label": ClassLabel(names=list(names))})
    return Dataset.from_dict(
        {"image": [{"bytes": png_bytes(im), "path": None} for im in images], "label": labels.tolist()},
        features=features,
    )
