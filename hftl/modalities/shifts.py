"""Distribution shift as data transforms: corruptions, noise and cuts that make the shifted copies of a test split.

Each modality builds its shifted copies (``Modality.shift_variants``) from these:

    vision  corruptions of the raw images at set severities (1..5), after Hendrycks & Dietterich (ICLR 2019,
            "Benchmarking Neural Network Robustness to Common Corruptions"), CIFAR-10-C's parameters since the zoo's
            images are small: Gaussian noise, Gaussian blur, contrast reduction, plus rotation (10 degrees a step).
            Blur is scaled to the image (CIFAR-10-C's sigma is for 32 px sides), so it is as strong at any resolution.
    audio   white Gaussian background noise at 5 and 0 dB SNR over the clip the model hears (the zoo's test voices
            are already unseen in training).
    text    the first sentence only (text up to the first line break or sentence end: a BBC article's headline).

Every variant is deterministic: row i of variant v draws from ``numpy.random.default_rng([seed, crc32(v), i])``,
whatever the batch order.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

if TYPE_CHECKING:
    from datasets import Dataset

# CIFAR-10-C (Hendrycks & Dietterich's make_cifar_c.py), severity 1..5; pixel values in [0, 1].
NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
BLUR_SIGMA_AT_32PX = (0.4, 0.6, 0.7, 0.8, 1.0)
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
ROTATION_DEGREES = (10.0, 20.0, 30.0, 40.0, 50.0)  # sign drawn per image
AUDIO_SNR_DB = (5.0, 0.0)


def _level(table: tuple[float, ...], severity: int) -> float:
    if not 1 <= severity <= len(table):
        raise ValueError(f"severity must be in 1..{len(table)}, got {severity}")
    return table[severity - 1]


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))


def gaussian_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    return _to_image(pixels + rng.normal(0.0, _level(NOISE_STD, severity), pixels.shape))


def gaussian_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    sigma = _level(BLUR_SIGMA_AT_32PX, severity) * min(image.size) / 32.0
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))  # PIL's radius is the standard deviation


def contrast(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    means = pixels.mean(axis=(0, 1), keepdims=True)
    return _to_image((pixels - means) * _level(CONTRAST_FACTOR, severity) + means)


def rotation(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    angle = _level(ROTATION_DEGREES, severity) * (1.0 if rng.random() < 0.5 else -1.0)
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(0, 0, 0))


CORRUPTIONS: dict[str, Callable[[Image.Image, int, np.random.Generator], Image.Image]] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "rotation": rotation,
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\s*\n\s*")


def first_sentence(text: str) -> str:
    """Text up to the first line break or sentence end (a simple rule: 'Mr. Smith' ends a sentence too)."""
    for part in _SENTENCE_END.split(text.strip()):
        if part.strip():
            return part.strip()
    return text.strip()


def row_rng(seed: int, variant: str, row: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(variant.encode()), row])


def png(image: Image.Image) -> dict[str, Any]:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def replace_column(split: Dataset, column: str, values: list[Any]) -> Dataset:
    return split.remove_columns(column).add_column(column, values)


