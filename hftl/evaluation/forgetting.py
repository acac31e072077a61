"""How much of the source model's ability survives fine-tuning (results["forgetting"]).

vision, text
    A held-out probe task the run never trains on (vision: ``zoo:digits``, upscaled like the run's images; text:
    ``zoo:fortunes``, short texts in 8 topics). The pooled features of the source backbone (``model.source`` as
    loaded for the run) and of the fine-tuned one are scored by cosine k-NN accuracy, train -> test of the probe set,
    and compared by linear CKA on all probe rows. ``evaluation.probe_max_samples`` caps the probe rows
    (2/3 train, 1/3 test, stratified). The source's features are the same for every run of a grid: they are cached
    on disk (``$HFTL_HOME/cache/features``, see :mod:`hftl.evaluation.feature_cache`).
audio (Whisper)
    Whisper's original decoder (the source's ``WhisperForConditionalGeneration``) transcribes ten espeak-ng sentences,
    once with the original encoder and once with the fine-tuned one swapped in; the score is the word error rate.
    The run's encoder may be cut to a short clip (``audio.clip_seconds``, 2 s in the recipe) and the sentences last
    3-4 s, so both encoders read a 10-s window: the original cut to it, the fine-tuned one extended to it with the
    original's position rows (Whisper's position embeddings are frozen sinusoids, so these are the rows fine-tuning
    would have used). Measured with tiny.en on these sentences: WER 0.34 in a 10-s window vs 0.33 in the full 30-s
    one, at a fifth of the time; a 4-s window made the decoder loop. Linear CKA compares the two encoders' frames
    over the spoken part of the sentences.
Values that do not apply are None (e.g. k-NN for audio; WER for an audio backbone without a Whisper decoder).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hftl import zoo
from hftl.config import DataConfig
from hftl.errors import ModelError
from hftl.evaluation.feature_cache import cache_key, cached_arrays, folder_fingerprint
from hftl.evaluation.features import backbone_of, load_backbone, split_features
from hftl.evaluation.similarity import linear_cka
from hftl.evaluation.transferability import knn_predict
from hftl.evaluation.wer import word_error_rate
from hftl.modalities import get_modality
from hftl.modalities.whisper import POSITIONS_PER_SECOND, SAMPLE_RATE, shorten_whisper_encoder
from hftl.run.backbone import variant_key
from hftl.run.data import load_splits, stratified_sample
from hftl.run.methods import get_method
from hftl.run.models import find_adapter, resolve_model_source
from hftl.zoo.espeak import espeak_binary, speak

if TYPE_CHECKING:
    from hftl.config import Config
    from hftl.modalities import Modality

logger = logging.getLogger("hftl")

KNN_K = 5
# Five Harvard sentences (list 1, IEEE 1969) and five everyday ones: no numbers or names, so a transcript is right
# or wrong by its words alone.
SENTENCES = (
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "these days a chicken leg is a rare dish",
    "rice is often served in round bowls",
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "we will meet at the station tomorrow morning",
    "please close the door when you leave the room",
    "the weather is cold and windy today",
)
VOICE, WORDS_PER_MINUTE = "en-us", 130  # tiny.en's WER on these: 0.33 (en+m3 at 150 wpm: 0.48)
WINDOW_SECONDS = 10


def _result(probe: str, **values: Any) -> dict[str, Any]:
    keys = ("knn_accuracy_before", "knn_accuracy_after", "cka", "cka_debiased", "wer_before", "wer_after")
    return {"probe": probe, **{k: None for k in keys}, **values}


def preflight(cfg: Config) -> None:
    """Fail before training, not after it, when the forgetting probe cannot run here (missing zoo data, no espeak-ng)."""
    modality = get_modality(cfg.modality)
    if modality.forgetting_probe is not None:
        zoo.resolve(modality.forgetting_probe[0])
    elif modality.speech:
        espeak_binary()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def probe_forgetting(
    cfg: Config, modality: Modality, processor: Any, model: torch.nn.Module, label_names: list[str]
) -> dict[str, Any]:
    """k-NN accuracy on the probe task before / after fine-tuning, and linear CKA between the two feature sets."""
    from datasets import concatenate_datasets

    source, column, label = modality.forgetting_probe
    probe_cfg = dataclasses.replace(
        cfg, data=DataConfig(source=source, input_column=column, label_column=label, split_seed=cfg.data.split_seed)
    )
    splits, _ = load_splits(probe_cfg.data)
    cap = cfg.evaluation.forgetting_rows or cfg.evaluation.probe_max_samples
    parts = []
    for name, share in (("train", cap - cap // 3), ("test", cap // 3)):
        part = splits[name]
        if len(part) > share:
            part = part.select(stratified_sample(np.asarray(part[label]), share, cfg.data.split_seed))
        parts.append(part)
    rows = concatenate_datasets(parts)
    n_train = len(parts[0])

    def source_features() -> dict[str, np.ndarray]:
        before_model, _ = load_backbone(cfg, modality, label_names)
        before_model.to(_device(model))
        features, labels = split_features(before_model, modality, processor, probe_cfg, rows)
        return {"features": next(iter(features.values())), "labels": labels}

    cached = cached_arrays(_source_key(cfg, len(rows)), source_features)
    before, labels = cached["features"], cached["labels"]
    after, _ = split_features(model, modality, processor, probe_cfg, rows)
    after = next(iter(after.values()))

    def knn_correct(features: np.ndarray) -> list[int]:
        predicted = knn_predict(features[:n_train], labels[:n_train], features[n_train:], KNN_K)
        return [int(p == t) for p, t in zip(predicted.tolist(), labels[n_train:].tolist(), strict=True)]

    correct_before, correct_after = knn_correct(before), knn_correct(after)
    return _result(
        source,
        knn_accuracy_before=float(np.mean(correct_before)),
        knn_accuracy_after=float(np.mean(correct_after)),
        cka=linear_cka(before, after),
        # the biased estimator has a positive floor when rows are few against feature dimensions; the debiased one not
        cka_debiased=linear_cka(before, after, debiased=True),
        n_train=n_train,
        n_test=len(rows) - n_train,
        k=KNN_K,
        # paired per-row correctness on the same probe rows: the change and its interval come from these
        probe_rows=len(correct_before),
        correct_before=correct_before,
        correct_after=correct_after,
        paired_change_se=paired_change_se(correct_before, correct_after),
    )


def paired_change_se(before: list[int], after: list[int]) -> float:
    """Standard error of mean(after - before) over paired rows (sd of the per-row differences / sqrt(n))."""
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    return float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")


def _source_key(cfg: Config, n_rows: int) -> str | None:
    """Cache key of the source backbone's probe features (None: the source is not a local folder, no caching)."""
    if find_adapter(cfg.model.source, cfg.model.revision) is not None:
        return None
    try:
        model_files = folder_fingerprint(resolve_model_source(cfg.model.source))
    except ModelError:
        return None
    if model_files is None:
        return None
    probe = get_modality(cfg.modality).forgetting_probe[0]
    section = cfg.section(cfg.modality)
    return cache_key({
        "model": cfg.model.source, "model_files": model_files, "modality": cfg.modality, "backbone": variant_key(cfg),
        "probe": probe, "probe_files": folder_fingerprint(zoo.entry_path(probe.removeprefix("zoo:"))),
        # the rows are a function of these (stratified_sample is seeded); the inputs of the modality's settings
        "rows": [cfg.evaluation.forgetting_rows or cfg.evaluation.probe_max_samples, cfg.data.split_seed, n_rows],
        "inputs": dataclasses.asdict(section) if section is not None else None,
    })  # fmt: skip


def _merged(model: torch.nn.Module) -> torch.nn.Module:
    """The model with any LoRA adapters merged, on a copy: the run's own model stays as it is (it is saved next)."""
    from peft import PeftModel

    return copy.deepcopy(model).merge_and_unload() if isinstance(model, PeftModel) else model


def extended_encoder_state(trained: torch.nn.Module, original: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained encoder's weights with its position embeddings extended to the original encoder's length.

    Rows the trained encoder has are its own (Whisper keeps them frozen, so they equal the source's); the rest are
    the original's.
    """
    state = {k: v.detach().clone() for k, v in trained.state_dict().items()}
    positions = original.embed_positions.weight.detach().clone()
    cut = state["embed_positions.weight"]
    if cut.shape[0] > positions.shape[0]:
        raise ValueError(f"the trained encoder has {cut.shape[0]} positions, more than the original's {positions.shape[0]}")
    positions[: cut.shape[0]] = cut.to(positions.dtype)
    state["embed_positions.weight"] = positions
    return state


@torch.no_grad()
def _transcribe_and_encode(asr: Any, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy transcript token ids and the encoder's frames."""
    from transformers.utils import logging as hf_logging

    encoded = asr.model.encoder(features).last_hidden_state
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # generate() warns about defaults the zoo's generation config sets on purpose
    try:
        ids = asr.generate(input_features=features, do_sample=False, num_beams=1, max_new_tokens=64)
    finally:
        hf_logging.set_verbosity(level)
    return ids, encoded


def whisper_forgetting(cfg: Config, model: torch.nn.Module) -> dict[str, Any]:
    """WER of the source's Whisper decoder with the original vs the fine-tuned encoder, and CKA of their frames."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    probe = f"espeak-ng sentences ({len(SENTENCES)}, {VOICE} at {WORDS_PER_MINUTE} wpm)"
    try:
        source = resolve_model_source(cfg.model.source)
        asr, info = WhisperForConditionalGeneration.from_pretrained(
            source, revision=cfg.model.revision, output_loading_info=True, use_safetensors=True
        )
        asr_processor = WhisperProcessor.from_pretrained(source, revision=cfg.model.revision)
    except (ModelError, OSError, ValueError, RuntimeError, AssertionError) as err:  # torch asserts on odd configs
        logger.warning("forgetting: %s has no Whisper speech recogniser to test (%s): WER not measured", cfg.model.source, err)
        return _result(probe)
    if any(".decoder." in key or key.startswith("model.decoder") for key in info["missing_keys"]):
        logger.warning("forgetting: %s holds no trained Whisper decoder: WER not measured", cfg.model.source)
        return _result(probe)
    device = _device(model)
    trained = backbone_of(_merged(model))
    window = max(WINDOW_SECONDS, math.ceil(trained.embed_positions.num_embeddings / POSITIONS_PER_SECOND))
    extractor = shorten_whisper_encoder(asr, window)
    asr = asr.to(device).eval()
    swapped = copy.deepcopy(asr)
    swapped.model.encoder.load_state_dict(extended_encoder_state(trained, asr.model.encoder))

    waves = [speak(text, voice=VOICE, speed=WORDS_PER_MINUTE, sample_rate=SAMPLE_RATE) for text in SENTENCES]
    features = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(device)
    ids_before, frames_before = _transcribe_and_encode(asr, features)
    ids_after, frames_after = _transcribe_and_encode(swapped, features)
    before = [t.strip() for t in asr_processor.batch_decode(ids_before, skip_special_tokens=True)]
    after = [t.strip() for t in asr_processor.batch_decode(ids_after, skip_special_tokens=True)]
    # CKA over the frames that hold speech (the rest of each window is padding).
    spoken = [min(frames_before.shape[1], math.ceil(len(w) / SAMPLE_RATE * POSITIONS_PER_SECOND)) for w in waves]
    rows_before = torch.cat([f[:n] for f, n in zip(frames_before, spoken, strict=True)]).float().cpu().numpy()
    rows_after = torch.cat([f[:n] for f, n in zip(frames_after, spoken, strict=True)]).float().cpu().numpy()
    return _result(
        probe,
        cka=linear_cka(rows_before, rows_after),
        cka_debiased=linear_cka(rows_before, rows_after, debiased=True),
        wer_before=word_error_rate(list(SENTENCES), before),
        wer_after=word_error_rate(list(SENTENCES), after),
        transcripts_before=before,
        transcripts_after=after,
    )


def measure_forgetting(
    cfg: Config, modality: Modality, processor: Any, model: torch.nn.Module, label_names: list[str]
) -> dict[str, Any]:
    """results["forgetting"] for the run's modality (``model``: the fine-tuned classifier, unwrapped)."""
    started = time.perf_counter()
    if modality.forgetting_probe is not None:
        result = probe_forgetting(cfg, modality, processor, model, label_names)
    elif modality.speech and getattr(model.config, "model_type", None) == "whisper":
        result = whisper_forgetting(cfg, model)
    else:
        logger.warning("forgetting: no probe for modality %s with %s", cfg.modality, type(model).__name__)
        result = _result("none")
    result["control"] = not get_method(cfg.method.name).changes_backbone  # the probe: the zero-change control
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
