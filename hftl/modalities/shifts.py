"""Distribution shift as data transforms: corruptions, noise and cuts that make the shifted copies of a test split.

Each modality builds its shifted copies (``Modality.shift_variants``) from these:

    vision  corruptions of the raw images at set severities (1..5), after Hendrycks & Dietterich (ICLR 2019,
            "Benchmarking Neural Network Robustness to Common Corruptions"), CIFAR-10-C's parameters since the zoo's
            images are small: Gaussian noise, Gaussian blur, contrast reduction (named ``NAME@SEVERITY``), plus
            rotation (10 degrees a step), which is NOT a CIFAR-10-C corruption and is named so. Blur is scaled to the
            image (CIFAR-10-C's sigma is for 32 px sides), so it is as strong at any resolution. Grey images (all
            channels equal, e.g. Fashion-MNIST) take grey noise: one draw per pixel for every channel, as MNIST-C.
    audio   signal processing of the clip the model hears: white noise at 10, 5 and 0 dB SNR, reverberation (an
            exponentially decaying noise tail, RT60 0.5 s), band-limiting (low-pass at 2 kHz) and the telephone band
            (8 kHz sampling, 300-3400 Hz, 8-bit mu-law); and, where the rows say what was spoken (zoo
            speech-commands-tts: word, speed, pitch), the same words re-spoken by espeak-ng in voice variants and
            speaking styles held out of every split (hftl/modalities/speech_shifts.py).
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
AUDIO_SNR_DB = (10.0, 5.0, 0.0)
REVERB_RT60_SECONDS = 0.5
LOWPASS_HZ = 2000.0
TELEPHONE_RATE, TELEPHONE_BAND_HZ, MU = 8000, (300.0, 3400.0), 255.0


def _level(table: tuple[float, ...], severity: int) -> float:
    if not 1 <= severity <= len(table):
        raise ValueError(f"severity must be in 1..{len(table)}, got {severity}")
    return table[severity - 1]


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))


def is_grey(pixels: np.ndarray) -> bool:
    return pixels.ndim == 2 or pixels.shape[-1] == 1 or bool(np.all(pixels == pixels[..., :1]))


def gaussian_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """CIFAR-10-C's Gaussian noise; a grey image takes grey noise (one draw per pixel), so it stays grey."""
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    shape = pixels.shape[:2] + ((1,) if pixels.ndim == 3 else ()) if is_grey(pixels) else pixels.shape
    return _to_image(pixels + rng.normal(0.0, _level(NOISE_STD, severity), shape))


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
CIFAR_10_C = ("gaussian_noise", "gaussian_blur", "contrast")  # the others are named as what they are


def corruption_name(name: str, severity: int) -> str:
    """``gaussian_noise@3`` for a CIFAR-10-C corruption; ``rotation_30deg (not CIFAR-10-C)`` for anything else."""
    if name in CIFAR_10_C:
        return f"{name}@{severity}"
    if name == "rotation":
        return f"rotation_{_level(ROTATION_DEGREES, severity):g}deg (not CIFAR-10-C)"
    return f"{name}_s{severity} (not CIFAR-10-C)"


# -- audio: signal processing ----------------------------------------------------------------------------------


def _same_power(shaped: np.ndarray, like: np.ndarray) -> np.ndarray:
    power, target = float(np.mean(shaped.astype(np.float64) ** 2)), float(np.mean(like.astype(np.float64) ** 2))
    if power == 0.0:
        return shaped.astype(np.float32)
    return (shaped * np.sqrt(target / power)).astype(np.float32)


def reverb(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, rt60: float = REVERB_RT60_SECONDS) -> np.ndarray:
    """A room: the dry sound plus an exponentially decaying noise tail (60 dB down after ``rt60`` s), same power."""
    from scipy.signal import fftconvolve

    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    response = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    response *= 0.3 / np.sqrt(np.sum(response**2))
    response[0] = 1.0  # the direct path
    return _same_power(fftconvolve(wave, response)[: len(wave)], wave)


def lowpass(wave: np.ndarray, sample_rate: int, cutoff: float = LOWPASS_HZ) -> np.ndarray:
    """Band-limited: an 8th-order Butterworth low-pass, zero phase."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff, btype="lowpass", fs=sample_rate, output="sos")
    return _same_power(sosfiltfilt(sos, wave), wave)


def telephone(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The telephone channel: down to 8 kHz, the 300-3400 Hz band, 8-bit mu-law, and back to the model's rate."""
    import soxr
    from scipy.signal import butter, sosfiltfilt

    narrow = soxr.resample(wave.astype(np.float32), sample_rate, TELEPHONE_RATE)
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    narrow = sosfiltfilt(sos, narrow)
    peak = float(np.max(np.abs(narrow))) or 1.0
    x = np.clip(narrow / peak, -1.0, 1.0)
    coded = np.round((np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)) * 127.0) / 127.0  # 8-bit mu-law
    decoded = np.sign(coded) * ((1.0 + MU) ** np.abs(coded) - 1.0) / MU * peak
    back = soxr.resample(decoded.astype(np.float32), TELEPHONE_RATE, sample_rate)
    return _same_power(back[: len(wave)] if len(back) >= len(wave) else np.pad(back, (0, len(wave) - len(back))), wave)

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


