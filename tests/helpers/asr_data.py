"""Small transcribed audio data sets for speech recognition tests: tones as WAV files with a transcript each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
# Each transcript goes with its own tone, so a model could in principle tell them apart.
PHRASES = {220.0: "low tone", 440.0: "middle tone here", 880.0: "a high tone"}


def write_tone(path: Path, frequency: float, seconds: float = 0.8, rate: int = SAMPLE_RATE, seed: int = 0) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.4 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32), rate)
    return path


def write_transcribed_table(folder: Path, rows: int = 24, fmt: str = "csv", audio: str = "audio",
                            transcript: str = "transcript") -> Path:  # fmt: skip
    """``folder/data.<fmt>`` (csv or jsonl) with ``audio`` (a path relative to the folder) and ``transcript`` columns."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(rows):
        frequency = list(PHRASES)[i % len(PHRASES)]
        write_tone(folder / "wav" / f"{i:03d}.wav", frequency, seed=i)
        records.append({audio: f"wav/{i:03d}.wav", transcript: PHRASES[frequency]})
    path = folder / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[audio, transcript])
            writer.writeheader()
            writer.writerows(records)
    return path
