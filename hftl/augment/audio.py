"""Waveform and log-mel augmentations for audio classification.

Each function takes a float32 array and a ``numpy.random.Generator`` and returns a new array; the same
generator state gives the same result, and a setting of zero / None returns the input unchanged.
"""

from __future__ import annotations

import numpy as np


def time_shift(wave: np.ndarray, max_seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Shift the waveform by up to ``max_seconds`` either way, filling the gap with silence (no wrap-around)."""
    limit = int(round(max_seconds * sample_rate))
    if limit <= 0 or wave.size == 0:
        return wave
    shift = int(rng.integers(-limit, limit + 1))
    out = np.zeros_like(wave)
    if shift >= 0:
        out[shift:] = wave[: wave.size - shift]
    else:
        out[:shift] = wave[-shift:]
    return out


def gain(wave: np.ndarray, db_range: tuple[float, float] | None, rng: np.random.Generator) -> np.ndarray:
    """Scale by a gain drawn uniformly from ``db_range`` (decibels)."""
    if not db_range:
        return wave
    db = rng.uniform(db_range[0], db_range[1])
    return (wave * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise scaled so that signal power / noise power is exactly ``snr_db``."""
    if snr_db is None:
        return wave
    power = float(np.mean(wave.astype(np.float64) ** 2))
    if power == 0.0:  # silence has no SNR to keep
        return wave
    noise = rng.standard_normal(wave.shape)
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0) / np.mean(noise**2))
    return (wave + noise).astype(np.float32)


def speed_perturb(
    wave: np.ndarray, factor_range: tuple[float, float] | None, rng: np.random.Generator
) -> np.ndarray:
    """Play faster (factor > 1, shorter) or slower (factor < 1, longer), pitch moving with it (Kaldi-style)."""
    if not factor_range or wave.size == 0:
        return wave
    import soxr

    factor = rng.uniform(factor_range[0], factor_range[1])
    if abs(factor - 1.0) < 1e-6:
        return wave
    # Resampling from rate*factor to rate keeps the samples' rate label but shortens the sound by `factor`.
    return soxr.resample(wave, 1000.0 * factor, 1000.0).astype(np.float32)


def spec_mask(
    features: np.ndarray, count: int, width: int, axis: int, rng: np.random.Generator
) -> np.ndarray:
    """SpecAugment: ``count`` bands of up to ``width`` rows (axis 0, frequency) or columns (axis 1, time).

    Masked cells take the features' mean, so a masked band looks like neither silence nor speech.
    """
    if count <= 0 or width <= 0:
        return features
    out = features.copy()
    size = out.shape[axis]
    fill = out.mean()
    for _ in range(count):
        w = int(rng.integers(1, min(width, size) + 1))
        start = int(rng.integers(0, size - w + 1))
        index = [slice(None)] * out.ndim
        index[axis] = slice(start, start + w)
        out[tuple(index)] = fill
    return out
