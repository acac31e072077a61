"""Whisper surgery: its encoder takes exactly 30 s of audio; a classifier of short clips cuts it to the clip length.

Used by the audio modality (``adapt_model``) and by the forgetting measurement (an ASR copy of the backbone).
"""

from __future__ import annotations

import torch
from transformers import WhisperFeatureExtractor

from hftl.errors import ModelError

POSITIONS_PER_SECOND = 50  # encoder positions per second of audio (2 mel frames each, 100 frames/s)
SAMPLE_RATE = 16_000


def shorten_whisper_encoder(model, clip_seconds: int):
    """Cut a Whisper model's encoder to ``clip_seconds`` inputs, in place, and return the matching feature extractor.

    The encoder insists on exactly ``2 * max_source_positions`` mel frames (30 s by default), so short
    clips would be padded to 30 s. This keeps the first ``clip_seconds * 50`` rows of
    ``embed_positions`` (the positions a short clip uses anyway) and sets ``max_source_positions`` to match.
    The returned ``WhisperFeatureExtractor(chunk_length=clip_seconds)`` pads/cuts audio to that length.
    ``save_pretrained`` on the cut model writes a folder that reloads with the short encoder.

    Args:
        model: ``WhisperForAudioClassification``, ``WhisperForConditionalGeneration``, ``WhisperModel``
            or ``WhisperEncoder``.
        clip_seconds: Whole seconds, 1..30 (the feature extractor works in whole-second chunks).

    Returns:
        A ``WhisperFeatureExtractor`` for ``clip_seconds`` clips.

    Raises:
        ModelError: ``clip_seconds`` is out of range or not whole.
    """
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else getattr(model, "encoder", model)
    old = encoder.embed_positions
    if not (isinstance(clip_seconds, int) and 1 <= clip_seconds * POSITIONS_PER_SECOND <= old.num_embeddings):
        raise ModelError(
            f"clip_seconds must be a whole number of seconds in 1..{old.num_embeddings // POSITIONS_PER_SECOND}"
        )
    positions = clip_seconds * POSITIONS_PER_SECOND
    new = torch.nn.Embedding(positions, old.embedding_dim, dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[:positions])
    new.requires_grad_(old.weight.requires_grad)  # Whisper keeps them frozen
    encoder.embed_positions = new
    encoder.max_source_positions = positions
    # The encoder checks its input length against config.max_source_positions.
    for config in {id(c): c for c in (encoder.config, model.config)}.values():
        config.max_source_positions = positions
    return WhisperFeatureExtractor(
        feature_size=model.config.num_mel_bins, sampling_rate=SAMPLE_RATE, chunk_length=clip_seconds
    )
