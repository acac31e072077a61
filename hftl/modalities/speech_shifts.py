"""Robustness shifts for synthetic speech built from espeak-ng itself: the test rows' words re-spoken in voice
variants and speaking styles that no split of the training data uses.

A row qualifies when it says what was spoken: its label names the word and it has ``voice``, ``speed`` and
``pitch`` columns (zoo speech-commands-tts). Each shifted copy keeps the row's word, accent, speed and pitch and
changes one thing:

    voice_heldout_klatt     espeak-ng's Klatt formant synthesiser (another synthesis method, same accent)
    voice_heldout_whisper   whispered speech (no voicing)
    voice_heldout_croak     a creaky voice variant
    style_fast_260wpm       the row's voice at 260 words per minute (training: 130-190)
    style_low_pitch_10      the row's voice at pitch 10 (training: 30-70)

Training and selection never see these: train/validation/test voices use the m1..m8, f1..f5 and Annie variants
(hftl/zoo/speech_commands.py VOICES), and these are test-only copies of test rows. Clips are cached on disk
($HFTL_HOME/cache/espeak-shift/), since every run of a study scores the same rows.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config

logger = logging.getLogger("hftl")

HELDOUT_VARIANTS = ("klatt", "whisper", "croak")
FAST_WPM, LOW_PITCH = 260, 10
NEEDED_COLUMNS = ("voice", "speed", "pitch")


def accent(voice: str) -> str:
    """The espeak-ng language part of a voice (``en-us+m7`` -> ``en-us``)."""
    return voice.split("+", 1)[0]


def respoken_plan(voice: str, speed: int, pitch: int) -> dict[str, tuple[str, int, int]]:
    """Per shift name, the (voice, speed, pitch) that re-speaks a row of (voice, speed, pitch)."""
    plan = {f"voice_heldout_{v}": (f"{accent(voice)}+{v}", speed, pitch) for v in HELDOUT_VARIANTS}
    plan[f"style_fast_{FAST_WPM}wpm"] = (voice, FAST_WPM, pitch)
    plan[f"style_low_pitch_{LOW_PITCH}"] = (voice, speed, LOW_PITCH)
    return plan


def _spoken(word: str, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    """espeak-ng's clip, read from / written to the disk cache."""
    from hftl.zoo import hftl_home
    from hftl.zoo.espeak import speak

    key = hashlib.sha256(f"{word}|{voice}|{speed}|{pitch}|{sample_rate}".encode()).hexdigest()[:24]
    path = hftl_home() / "cache" / "espeak-shift" / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # damaged: synthesised again
    wave = speak(word, voice=voice, speed=speed, pitch=pitch, sample_rate=sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp.npy")
    np.save(tmp, wave)
    tmp.replace(path)
    return wave


def respoken_variants(split: Dataset, cfg: Config, sample_rate: int, length: int) -> dict[str, list[np.ndarray]]:
    """Per shift name, the split's rows re-spoken (cut/padded to ``length`` samples); {} when rows do not say what
    was spoken."""
    from hftl.modalities.audio import fit_length

    label = cfg.data.label_column
    names = getattr(split.features.get(label), "names", None)
    if names is None or any(c not in split.column_names for c in NEEDED_COLUMNS):
        logger.info("shift: no held-out espeak-ng voices (the rows have no word label and voice/speed/pitch columns)")
        return {}
    rows = list(zip(split[label], split["voice"], split["speed"], split["pitch"], strict=True))
    jobs: list[tuple[str, str, str, int, int]] = []
    for word_id, voice, speed, pitch in rows:
        for shift, (v, s, p) in respoken_plan(voice, int(speed), int(pitch)).items():
            jobs.append((shift, names[word_id], v, s, p))
    with ThreadPoolExecutor(max_workers=2) as pool:  # espeak-ng is a subprocess
        waves = list(pool.map(lambda job: _spoken(job[1], job[2], job[3], job[4], sample_rate), jobs))
    out: dict[str, list[np.ndarray]] = {}
    for (shift, *_), wave in zip(jobs, waves, strict=True):
        out.setdefault(shift, []).append(fit_length(wave, length))
    return out

