"""Zoo model ``resemblyzer``: resemblyzer's pretrained GE2E speaker encoder (3-layer LSTM on 40-band mel), from PyPI.

``pretrained.pt`` holds plain tensors in a dict (step, model_state, optimizer_state): it is read with
``torch.load(weights_only=True)`` (no pickled code runs) and saved as safetensors in a ``speaker_lstm`` folder
(hftl/models/speaker_lstm.py) with its feature extractor. The check is speaker verification: clips of the same
espeak-ng voice saying different sentences must be closer than clips of different voices saying the same sentence.
As a source for recognising WORDS from unseen voices it is a deliberately poor candidate (it learnt to ignore them).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.espeak import espeak_binary, speak
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.torch_weights import load_exactly, parameter_count, read_tensors

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "resemblyzer", "0.1.4"
SHA256 = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
MEMBER = "resemblyzer/pretrained.pt"
SAMPLE_RATE = 16_000
CLIP_SECONDS = 2
VOICES = ("en+m1", "en+m3", "en+f2", "en+f4")
SENTENCES = ("the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore")
MIN_MARGIN = 0.05  # same-voice minus different-voice mean cosine


def speaker_check(model_dir: Path) -> dict[str, Any]:
    """Speaker verification on espeak-ng voices: the mean cosine of same-voice pairs (different sentences) must beat
    that of different-voice pairs (same sentence) by :data:`MIN_MARGIN`.

    Raises:
        ZooError: espeak-ng is missing, or the voices are not told apart.
    """
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    import hftl.models  # noqa: F401  (registers the architecture)

    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    length = CLIP_SECONDS * SAMPLE_RATE
    clips = {}
    for voice, sentence in itertools.product(VOICES, SENTENCES):
        wave = speak(sentence, voice=voice, sample_rate=SAMPLE_RATE)[:length]
        clips[voice, sentence] = np.pad(wave, (0, length - wave.size))
    keys = list(clips)
    with torch.no_grad():
        features = torch.from_numpy(extractor([clips[k] for k in keys], sampling_rate=SAMPLE_RATE)["input_features"])
        embeddings = model(input_features=features).pooler_output.numpy()
    emb = dict(zip(keys, embeddings, strict=True))
    same = [float(emb[v, SENTENCES[0]] @ emb[v, SENTENCES[1]]) for v in VOICES]
    different = [float(emb[a, s] @ emb[b, s]) for a, b in itertools.combinations(VOICES, 2) for s in SENTENCES]
    result = {
        "same_voice_cosine": round(float(np.mean(same)), 4),
        "different_voice_cosine": round(float(np.mean(different)), 4),
        "margin": round(float(np.mean(same) - np.mean(different)), 4),
        "pairs": [len(same), len(different)],
        "voices": list(VOICES),
    }
    logger.info("zoo: resemblyzer speaker check %s", result)
    if not result["margin"] >= MIN_MARGIN:
        raise ZooError(f"resemblyzer weights look wrong: same-voice vs different-voice cosine {result} (need a margin of {MIN_MARGIN})")
    return result


def build(dest: Path) -> dict[str, Any]:
    """Convert ``pretrained.pt`` into a ``speaker_lstm`` folder (safetensors + feature extractor) and check it."""
    from hftl.models.speaker_lstm import SpeakerLstmConfig, SpeakerLstmFeatureExtractor, SpeakerLstmModel

    espeak_binary()  # the check needs it: fail before the download
    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    checkpoint = read_tensors(wheel, MEMBER)
    # GE2E's similarity scale and bias only serve its training loss.
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")}
    model = SpeakerLstmModel(SpeakerLstmConfig(architectures=["SpeakerLstmModel"]))
    load_exactly(model, state, f"resemblyzer: {MEMBER}")
    model.save_pretrained(dest)
    SpeakerLstmFeatureExtractor().save_pretrained(dest)
    params = parameter_count(state)
    return {"wheel": wheel.name, "training_step": int(checkpoint.get("step", -1)), "parameters": params, "check": speaker_check(dest)}


register(
    ZooEntry(
        name="resemblyzer",
        kind="model",
        modality="audio",
        description="resemblyzer GE2E speaker encoder (3-layer LSTM 256 on 40-band mel, 1.4M params): speakers, not words",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER}, tensors-only -> safetensors)",
        license="Apache-2.0",
        build=build,
        variants=("@random",),
    )
)
