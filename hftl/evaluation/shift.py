"""Shifted copies of a test split, per modality, and the trained model's scores on them.

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
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from hftl.augment.audio import add_noise

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config
    from hftl.modalities import Modality

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


def _png(image: Image.Image) -> dict[str, Any]:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _replace_column(split: Dataset, column: str, values: list[Any]) -> Dataset:
    return split.remove_columns(column).add_column(column, values)


def vision_variants(split: Dataset, cfg: Config, severities: list[int], seed: int) -> dict[str, Dataset]:
    """One copy of ``split`` per corruption and severity, the images corrupted and stored as PNG bytes."""
    from datasets import Image as ImageFeature

    from hftl.modalities.vision import load_image

    column = cfg.data.input_column
    raw = split.cast_column(column, ImageFeature(decode=False)) if isinstance(split.features[column], ImageFeature) else split
    images = [load_image(x, f"column '{column}' row {i} (shift)") for i, x in enumerate(raw[column])]
    out = {}
    for name, corrupt in CORRUPTIONS.items():
        for severity in severities:
            variant = f"{name}_s{severity}"
            shifted = [_png(corrupt(im, severity, row_rng(seed, variant, i))) for i, im in enumerate(images)]
            out[variant] = _replace_column(raw, column, shifted)
    return out


def audio_variants(split: Dataset, cfg: Config, sample_rate: int, seed: int) -> dict[str, Dataset]:
    """One copy of ``split`` per SNR, each clip cut/padded to ``audio.clip_seconds`` and mixed with white noise."""
    from hftl.modalities.audio import data_root, fit_length, load_audio

    column, root = cfg.data.input_column, data_root(cfg)
    length = cfg.audio.clip_seconds * sample_rate
    waves = [fit_length(load_audio(x, sample_rate, root), length) for x in split[column]]
    out = {}
    for snr in AUDIO_SNR_DB:
        variant = f"noise_snr{snr:g}db"
        noisy = [add_noise(w, snr, row_rng(seed, variant, i)) for i, w in enumerate(waves)]
        out[variant] = _replace_column(split, column, [{"array": w, "sampling_rate": sample_rate} for w in noisy])
    return out


def text_variants(split: Dataset, cfg: Config) -> dict[str, Dataset]:
    column = cfg.data.input_column
    return {"first_sentence": _replace_column(split, column, [first_sentence(t) for t in split[column]])}


def shifted_splits(split: Dataset, cfg: Config, modality: Modality, processor: Any) -> dict[str, Dataset]:
    """The shifted copies of a raw split (same columns) for the run's modality."""
    seed = cfg.data.split_seed  # independent of the training seed: every run of a grid sees the same shifted rows
    if modality.name == "vision":
        return vision_variants(split, cfg, cfg.evaluation.shift_severities, seed)
    if modality.name == "audio":
        return audio_variants(split, cfg, processor.sampling_rate, seed)
    if modality.name == "text":
        return text_variants(split, cfg)
    raise ValueError(f"no shifted test sets are defined for modality {modality.name!r}")


def score_shift(
    cfg: Config, modality: Modality, processor: Any, model: Any, accelerator: Any, test_split: Dataset
) -> dict[str, Any]:
    """The model's metrics on the (capped) test rows and on each shifted copy of them: results["shift"]."""
    from torch.utils.data import DataLoader

    from hftl.run.data import stratified_sample
    from hftl.run.training import evaluate

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
