"""Zoo data set ``speech-commands-tts``: ten command words spoken by espeak-ng, split by voice.

No speech-commands recordings are available from package registries, so the words of Google Speech Commands'
ten-word task are synthesised with many espeak-ng voices (an accent plus a voice variant each), at several speeds
and pitches. Train, validation and test use disjoint voices: test accuracy measures voices never heard in training.

The entry folder holds ``wav/<voice>/<word>_s<speed>_p<pitch>.wav`` (16 kHz mono PCM16) and a ``DatasetDict``
(``save_to_disk``) with columns ``audio`` (the WAV path RELATIVE to the entry folder, so ``$HFTL_HOME`` can move),
``label`` (ClassLabel of :data:`WORDS`), ``voice``, ``speed`` and ``pitch``. The audio modality resolves relative
paths against the data source's folder.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path
from typing import Any

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.espeak import espeak_binary, speak

logger = logging.getLogger("hftl")

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16_000
# Every voice has its own variant (m = male, f = female timbre), accents rotate; test variants are unused elsewhere.
# "en" is British English: espeak-ng silently ignores a "+variant" after "en-gb", so that spelling is not used.
VOICES = {
    "train": (
        "en-us+m1", "en+f1", "en-gb-scotland+m2", "en-029+f2", "en-gb-x-rp+m3",
        "en-us+f3", "en-gb-x-gbclan+m4", "en+f5", "en-gb-x-gbcwmd+m5",
    ),
    "validation": ("en-029+m6", "en-gb-x-rp+f4"),
    "test": ("en-us+m7", "en-gb-scotland+m8", "en+Annie"),
}  # fmt: skip
SPEEDS = (130, 160, 190)  # words per minute
PITCHES = (30, 50, 70)  # espeak-ng's 0..99 scale


def _clip_path(voice: str, word: str, speed: int, pitch: int) -> str:
    return f"wav/{voice.replace('+', '_')}/{word}_s{speed}_p{pitch}.wav"


def _write_clip(dest: Path, voice: str, word: str, speed: int, pitch: int) -> str:
    import soundfile as sf

    rel = _clip_path(voice, word, speed, pitch)
    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(dest / rel, speak(word, voice=voice, speed=speed, pitch=pitch, sample_rate=SAMPLE_RATE), SAMPLE_RATE,
             subtype="PCM_16")  # fmt: skip
    return rel


def check_balance(split: str, labels: list[int]) -> dict[str, int]:
    """Per-word counts of a split.

    Raises:
        ZooError: a word is missing or the counts differ.
    """
    counts = Counter(WORDS[i] for i in labels)
    if set(counts) != set(WORDS) or len(set(counts.values())) != 1:
        raise ZooError(f"speech-commands-tts: split {split} is not balanced over the {len(WORDS)} words: {dict(counts)}")
    return dict(counts)


def _check_voices_differ(dest: Path) -> None:
    """Raise ZooError if two voices wrote the same audio (espeak-ng ignores a variant it cannot apply)."""
    import hashlib

    word, speed, pitch = WORDS[0], SPEEDS[1], PITCHES[1]
    owners: dict[str, str] = {}
    for voice in (v for voices in VOICES.values() for v in voices):
        digest = hashlib.sha256((dest / _clip_path(voice, word, speed, pitch)).read_bytes()).hexdigest()
        if digest in owners:
            raise ZooError(f"speech-commands-tts: voices {owners[digest]} and {voice} sound the same")
        owners[digest] = voice


def build(dest: Path) -> dict[str, Any]:
    """Synthesise every (voice, word, speed, pitch) clip into ``dest`` and save the voice-split DatasetDict."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    espeak_binary()  # fail at once, with the install hint
    features = Features(
        audio=Value("string"), label=ClassLabel(names=list(WORDS)), voice=Value("string"),
        speed=Value("int32"), pitch=Value("int32"),
    )  # fmt: skip
    splits, info = {}, {}
    # espeak-ng runs as a subprocess: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for split, voices in VOICES.items():
            jobs = list(product(voices, WORDS, SPEEDS, PITCHES))
            paths = list(pool.map(lambda job: _write_clip(dest, *job), jobs))
            rows = {
                "audio": paths,
                "label": [WORDS.index(word) for _, word, _, _ in jobs],
                "voice": [voice for voice, *_ in jobs],
                "speed": [speed for *_, speed, _ in jobs],
                "pitch": [pitch for *_, pitch in jobs],
            }
            splits[split] = Dataset.from_dict(rows, features=features)
            info[split] = {"clips": len(jobs), "voices": list(voices), "per_word": check_balance(split, rows["label"])}
    _check_voices_differ(dest)
    seen = [set(VOICES[s]) for s in VOICES]
    if seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]:
        raise ZooError("speech-commands-tts: a voice is in more than one split")
    DatasetDict(splits).save_to_disk(str(dest))
    logger.info("zoo: speech-commands-tts clips per split %s", {s: v["clips"] for s, v in info.items()})
    return {"sample_rate": SAMPLE_RATE, "labels": list(WORDS), "speeds": list(SPEEDS), "pitches": list(PITCHES), **info}


register(
    ZooEntry(
        name="speech-commands-tts",
        kind="dataset",
        modality="audio",
        description=(
            f"{len(WORDS)} command words spoken by espeak-ng: 14 voices x 9 speed/pitch settings, split by voice "
            "9/2/3 (test voices unheard in training), 16 kHz WAV"
        ),
        source="Debian espeak-ng (synthesised locally)",
        license="generated data; espeak-ng is GPL-3.0 (its output is not covered)",
        build=build,
    )
)
