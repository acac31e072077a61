"""A small learnable audio set: sine tones of three pitches as WAVs and a CSV naming them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000
TONES = {"low": 300.0, "mid": 1200.0, "high": 4000.0}


def tone(freq: float, seconds: float, rate: int = RATE, phase: float = 0.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def write_tone_csv(folder: Path, per_class: int = 20, seed: int = 0) -> Path:
    """WAVs of three tones (random length, phase, loudness) and a CSV naming them by paths relative to it."""
    rng = np.random.default_rng(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for label, freq in TONES.items():
        for i in range(per_class):
            wave = tone(freq, rng.uniform(0.3, 0.9), phase=rng.uniform(0, 6.28), amp=rng.uniform(0.1, 0.8))
            name = f"wav/{label}_{i:02d}.wav"
            sf.write(folder / name, wave, RATE)
            rows.append({"audio": name, "label": label})
    with (folder / "tones.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "tones.csv"
