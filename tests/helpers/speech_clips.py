"""Tiny speech recognisers and clips for the speech export tests (no espeak-ng: a random model hears only numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from hftl import zoo
from tests.helpers.tiny_models import tiny_asr_model

RATE = 16_000
TARGET_POSITIONS = 48  # decoder positions of the tiny model: greedy decoding stops within 44 new tokens


def tiny_recogniser(path: Path, clip_seconds: int = 2) -> Path:
    """A tiny random WhisperForConditionalGeneration with the zoo's Whisper tokenizer, its encoder cut to
    ``clip_seconds`` (max_source_positions and the feature extractor's chunk_length to match), saved with save_pretrained."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer

    from hftl.modalities.whisper import shorten_whisper_encoder

    full = tiny_asr_model(path.parent / f"{path.name}-full", tokenizer_from=zoo.prepare("whisper-tiny"))
    model = WhisperForConditionalGeneration.from_pretrained(full).eval()
    extractor = shorten_whisper_encoder(model, clip_seconds)
    _shorten_decoder(model, TARGET_POSITIONS)
    model.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    WhisperProcessor(feature_extractor=extractor, tokenizer=WhisperTokenizer.from_pretrained(full)).save_pretrained(path)
    return path


def _shorten_decoder(model, positions: int) -> None:
    """Keep the first ``positions`` decoder positions: a random model talks until the table ends, so this bounds
    greedy decoding (and the tests' time)."""
    import torch

    decoder = model.model.decoder
    old = decoder.embed_positions
    new = type(old)(positions, old.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(old.weight[:positions])
    decoder.embed_positions = new
    decoder.max_target_positions = model.config.max_target_positions = positions


def chirp(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """A frequency sweep plus a little noise: varied mel frames, so a random model's transcripts differ by clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0, f1 = rng.uniform(200, 800), rng.uniform(1000, 4000)
    wave = 0.4 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / (2 * seconds)) * t) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def write_clips(folder: Path, n: int, seconds: float = 1.5, rate: int = RATE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i}.wav"
        sf.write(path, chirp(seconds, seed=i, rate=rate), rate)
        paths.append(path)
    return paths
