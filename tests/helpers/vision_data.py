"""A small learnable image set (seeded grey patterns in an imagefolder) and a quick vision run's overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("bright", "dark", "stripes")


def pattern(kind: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A grey uint8 image whose class shows in its intensity or layout, with pixel noise."""
    noise = rng.normal(0, 20, (size, size))
    if kind == "bright":
        base = np.full((size, size), 200.0)
    elif kind == "dark":
        base = np.full((size, size), 50.0)
    else:
        base = np.where((np.arange(size) // 4) % 2 == 0, 230.0, 20.0)[:, None].repeat(size, axis=1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_pattern_folder(root: Path, per_class: int) -> Path:
    """An imagefolder (one sub-folder per class) of ``per_class`` seeded grey pattern PNGs under ``root``."""
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(pattern(kind, rng)).save(root / kind / f"{i:02d}.png")
    return root


def vision_overrides(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A quick vision run of the tiny model on a pattern folder at 28 px; ``extra`` overrides come last."""
    return [
        "modality=vision",
        f"model.source={model}",
        f"data.source={data}",
        "data.input_column=image",
        "vision.image_size=28",
        "vision.augment.hflip_prob=0.5",
        "training.epochs=4",
        "training.batch_size=8",
        "training.learning_rate=3e-3",
        "training.warmup_ratio=0.0",
        "training.tracking=none",
        "evaluation.batch_size=16",
        f"output.dir={out}",
        *extra,
    ]
