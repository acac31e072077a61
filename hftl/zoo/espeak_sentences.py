"""Zoo data set ``espeak-sentences``: short BBC News sentences spoken by espeak-ng, for speech recognition transfer.

The domain shift: Whisper tiny.en was trained on human speech; these are synthetic voices with accents, timbre
variants, speeds and pitches it never heard (its WER on them is far from its WER on human speech). Sentences come
from zoo ``bbc-news`` (letters only: no digits, so a transcript is right or wrong by its words, not by how a number
is written), 5..11 words, so a clip lasts 2..6 s.

Splits (sentences AND voices of validation, test and the probe are never in train):

    train          SENTENCES["train"] sentences, each once, in a TRAIN_VOICES voice at a drawn speed and pitch
    validation     held-out sentences in held-out voices (model selection)
    test           held-out sentences in held-out voices (the reported WER)
    test_noisy     test with white noise at NOISE_SNR_DB dB SNR (same rows, seeded noise per row)
    source_probe   held-out fortunes sentences in PROBE_VOICE at 130 wpm, pitch 50: the espeak-ng speech the source
                   model transcribes best (measured WER 0.33 on ten sentences; en+m3 at 150 wpm: 0.48), never trained
                   on; forgetting = its WER before vs after adaptation

The entry folder holds ``wav/<split>/<n>.wav`` (16 kHz mono PCM16) and a ``DatasetDict`` (``save_to_disk``) with
columns ``audio`` (path RELATIVE to the entry folder), ``transcript``, ``voice``, ``speed``, ``pitch``. The marker
records every split's sha256 over its (path, transcript, wav bytes), so a rebuild is checked for sameness.
"""

from __future__ import annotations

import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, prepare, register
from hftl.zoo.espeak import espeak_binary, speak

logger = logging.getLogger("hftl")

SAMPLE_RATE = 16_000
SEED = 15
NOISE_SNR_DB = 10.0
MIN_WORDS, MAX_WORDS = 5, 11
# Voices: an accent plus a timbre variant each; no voice is in two splits. "en" is British English (espeak-ng
# ignores a "+variant" after "en-gb").
TRAIN_VOICES = (
    "en-us+m1", "en+f1", "en-gb-scotland+m2", "en-029+f2", "en-gb-x-rp+m3", "en-us+f3", "en-gb-x-gbclan+m4",
    "en+f5", "en-gb-x-gbcwmd+m5", "en-us-nyc+m6", "en+Andy", "en-us+klatt",
)  # fmt: skip
VALIDATION_VOICES = ("en-029+m7", "en-gb-x-rp+f4", "en+Alex")
TEST_VOICES = ("en-us+m8", "en-gb-scotland+f3", "en+Annie", "en-us-nyc+Jacky")
PROBE_VOICE = "en-us"
SPEEDS = (120, 140, 160, 180)  # words per minute
PITCHES = (30, 45, 60, 75)  # espeak-ng's 0..99 scale
SIZES = {"train": 480, "validation": 60, "test": 100, "source_probe": 60}
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*[A-Za-z]$|^[A-Za-z]$")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after . ! ? followed by a space or line break; quotes and trailing punctuation kept."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")) if s.strip()]


def usable(sentence: str) -> bool:
    """MIN_WORDS..MAX_WORDS plain words (commas and a final . ! ? allowed); no digits, quotes, brackets or symbols."""
    words = sentence.rstrip(".!?").replace(",", "").split()
    return MIN_WORDS <= len(words) <= MAX_WORDS and all(_WORD.match(w) for w in words)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sentence_pool(texts: list[str]) -> list[str]:
    """Usable sentences of ``texts``, deduplicated (case-insensitive), in a fixed order (by sha256)."""
    seen: dict[str, str] = {}
    for text in texts:
        for sentence in split_sentences(text):
            if usable(sentence):
                seen.setdefault(sentence.lower(), sentence)
    return sorted(seen.values(), key=_digest)


def plan(news: list[str], fortunes: list[str]) -> dict[str, list[tuple[str, str, int, int]]]:
    """(transcript, voice, speed, pitch) per row of every split; deterministic (SEED)."""
    pool = sentence_pool(news)
    needed = SIZES["train"] + SIZES["validation"] + SIZES["test"]
    if len(pool) < needed:
        raise ZooError(f"espeak-sentences: only {len(pool)} usable BBC News sentences, {needed} needed")
    probe_pool = [s for s in sentence_pool(fortunes) if s.lower() not in {p.lower() for p in pool[:needed]}]
    if len(probe_pool) < SIZES["source_probe"]:
        raise ZooError(f"espeak-sentences: only {len(probe_pool)} usable fortunes sentences")
    rng = np.random.default_rng(SEED)
    texts = {"train": pool[: SIZES["train"]], "validation": pool[SIZES["train"] : SIZES["train"] + SIZES["validation"]],
             "test": pool[SIZES["train"] + SIZES["validation"] : needed], "source_probe": probe_pool[: SIZES["source_probe"]]}  # fmt: skip
    voices = {"train": TRAIN_VOICES, "validation": VALIDATION_VOICES, "test": TEST_VOICES}
    rows: dict[str, list[tuple[str, str, int, int]]] = {}
    for split, sentences in texts.items():
        if split == "source_probe":
            rows[split] = [(s, PROBE_VOICE, 130, 50) for s in sentences]
            continue
        rows[split] = [
            (s, voices[split][i % len(voices[split])], int(rng.choice(SPEEDS)), int(rng.choice(PITCHES)))
            for i, s in enumerate(sentences)
        ]
    return rows


def add_white_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus Gaussian white noise at ``snr_db`` dB signal-to-noise ratio (signal power over the clip)."""
    power = float(np.mean(wave.astype(np.float64) ** 2))
    noise = rng.standard_normal(wave.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def _texts(name: str) -> list[str]:
    from datasets import load_from_disk

    data = load_from_disk(str(prepare(name)))
    return [t for split in data.values() for t in split["text"]]


def build(dest: Path) -> dict[str, Any]:
    """Synthesise every planned clip, the noisy test copy, and save the DatasetDict with sha256s in the marker."""
    import soundfile as sf
    from datasets import Dataset, DatasetDict

    espeak_binary()  # fail at once, with the install hint
    rows = plan(_texts("bbc-news"), _texts("fortunes"))

    def write(split: str, n: int, wave: np.ndarray) -> str:
        rel = f"wav/{split}/{n:04d}.wav"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(dest / rel, wave, SAMPLE_RATE, subtype="PCM_16")
        return rel

    waves: dict[str, list[np.ndarray]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:  # espeak-ng runs as a subprocess: two keep both cores busy
        for split, plan_rows in rows.items():
            waves[split] = list(pool.map(lambda r: speak(r[0], voice=r[1], speed=r[2], pitch=r[3]), plan_rows))
    rng = np.random.default_rng(SEED + 1)
    waves["test_noisy"] = [add_white_noise(w, NOISE_SNR_DB, rng) for w in waves["test"]]
    rows["test_noisy"] = rows["test"]
    splits, info = {}, {}
    for split, plan_rows in rows.items():
        paths = [write(split, n, w) for n, w in enumerate(waves[split])]
        columns = {"audio": paths, "transcript": [r[0] for r in plan_rows], "voice": [r[1] for r in plan_rows],
                   "speed": [r[2] for r in plan_rows], "pitch": [r[3] for r in plan_rows]}  # fmt: skip
        splits[split] = Dataset.from_dict(columns)
        sha = hashlib.sha256()
        for path, text in zip(paths, columns["transcript"], strict=True):
            sha.update(path.encode() + b"\0" + text.encode() + b"\0" + (dest / path).read_bytes())
        seconds = [len(w) / SAMPLE_RATE for w in waves[split]]
        info[split] = {"rows": len(paths), "voices": sorted(set(columns["voice"])), "sha256": sha.hexdigest(),
                       "seconds_max": round(max(seconds), 2), "seconds_mean": round(float(np.mean(seconds)), 2)}  # fmt: skip
    _check_held_out(rows)
    DatasetDict(splits).save_to_disk(str(dest))
    logger.info("zoo: espeak-sentences rows per split %s", {s: v["rows"] for s, v in info.items()})
    return {"sample_rate": SAMPLE_RATE, "noise_snr_db": NOISE_SNR_DB, "seed": SEED, **info}


def _check_held_out(rows: dict[str, list[tuple[str, str, int, int]]]) -> None:
    """Raise ZooError if a held-out split shares a sentence or a voice with train."""
    train_text = {r[0].lower() for r in rows["train"]}
    train_voices = {r[1] for r in rows["train"]}
    for split in ("validation", "test", "source_probe"):
        shared_text = train_text & {r[0].lower() for r in rows[split]}
        shared_voices = train_voices & {r[1] for r in rows[split]}
        if shared_text or shared_voices:
            raise ZooError(f"espeak-sentences: {split} shares {len(shared_text)} sentences / voices {shared_voices} with train")


register(
    ZooEntry(
        name="espeak-sentences",
        kind="dataset",
        modality="audio",
        description=(
            "short BBC News sentences spoken by espeak-ng (speech recognition): train 480 / validation 60 / test 100 "
            "(+ test_noisy at 10 dB SNR), validation and test sentences AND voices unseen in training; source_probe: "
            "60 fortunes sentences in en-us for forgetting; 16 kHz WAV"
        ),
        source="zoo bbc-news + fortunes text, Debian espeak-ng (synthesised locally)",
        license="text: BBC News (research use) / fortune-mod; espeak-ng is GPL-3.0 (its output is not covered)",
        build=build,
    )
)
