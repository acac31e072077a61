"""Zoo data set ``fashion-mnist``: Zalando's Fashion-MNIST (70k 28x28 grey images), from Debian's apt."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import extract_deb, fetch_deb
from hftl.zoo.idx import read_idx
from hftl.zoo.image_data import grey_image_dataset
from hftl.zoo.splits import save_splits

PACKAGE, VERSION = "dataset-fashion-mnist", "0.0~git20200523.55506a9-1"
SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
DATA_DIR = "usr/share/datasets/fashion-mnist"
# Label order of the original release (and of the Hub's fashion_mnist).
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}
SEED, VALIDATION_SIZE = 42, 5_000


def read_split(root: Path, prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's images (N, 28, 28) and labels (N,) from the unpacked package.

    Raises:
        ZooError: Files missing, or not ``count`` balanced 28x28 examples.
    """
    folder = root / DATA_DIR
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.shape != (count, 28, 28) or labels.shape != (count,):
        raise ZooError(
            f"fashion-mnist {prefix}: images {images.shape} / labels {labels.shape}, expected {count}"
        )
    # The release is exactly balanced; anything else means a different or damaged file.
    per_class = np.bincount(labels, minlength=len(CLASSES))
    if len(per_class) != len(CLASSES) or (per_class != count // len(CLASSES)).any():
        raise ZooError(f"fashion-mnist {prefix}: unexpected class counts {per_class.tolist()}")
    return images, labels


def build(dest: Path) -> dict[str, Any]:
    """Write ``train`` (55k), stratified ``validation`` (5k, from train) and ``test`` (10k) into ``dest``."""
    from datasets import DatasetDict

    deb = fetch_deb(PACKAGE, VERSION, SHA256)
    with tempfile.TemporaryDirectory(prefix="hftl-fmnist-") as tmp:
        root = extract_deb(deb, Path(tmp))
        arrays = {split: read_split(root, prefix, n) for split, (prefix, n) in SPLITS.items()}
    full = {split: grey_image_dataset(x, y, CLASSES) for split, (x, y) in arrays.items()}
    carved = full["train"].train_test_split(test_size=VALIDATION_SIZE, stratify_by_column="label", seed=SEED)
    splits = DatasetDict(train=carved["train"], validation=carved["test"], test=full["test"])
    sizes = save_splits(splits, dest, "fashion-mnist")
    return {"deb": deb.name, "splits": sizes, "labels": list(CLASSES)}


register(
    ZooEntry(
        name="fashion-mnist",
        kind="dataset",
        modality="vision",
        description="Fashion-MNIST: 28x28 grey clothing images, 10 classes, 55k/5k/10k train/validation/test",
        source=f"Debian {PACKAGE}={VERSION} (/{DATA_DIR}/)",
        license="MIT",
        build=build,
    )
)
