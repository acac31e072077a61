"""Forgetting probes: WER, the fortunes parser, Whisper's encoder extension; slow: the real Whisper and fortunes."""

from __future__ import annotations

import pytest
import torch

from hftl.evaluation.forgetting import extended_encoder_state
from hftl.evaluation.wer import edit_distance, normalise, word_error_rate
from hftl.zoo.fortunes import read_topic


def test_edit_distance_counts_substitutions_deletions_insertions():
    assert edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1  # substitution
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1  # deletion
    assert edit_distance(["a", "b"], ["a", "b", "c", "d"]) == 2  # insertions
    assert edit_distance(["a", "b", "c"], ["a", "c", "d"]) == 2
    assert edit_distance([], ["a"]) == 1 and edit_distance(["a"], []) == 1


def test_wer_normalises_case_and_punctuation_and_pools_the_corpus():
    assert normalise("The dog's bowl, please!") == ["the", "dog's", "bowl", "please"]
    assert word_error_rate(["the cat sat"], ["The cat sat."]) == 0.0
    assert word_error_rate(["the cat sat down"], ["the bat sat down"]) == 0.25
    # 1 edit in 2 words + 0 in 6 words: pooled 1/8, not the mean of 0.5 and 0.
    assert word_error_rate(["a b", "c d e f g h"], ["a x", "c d e f g h"]) == 0.125
    assert word_error_rate(["one"], ["one two three"]) == 2.0  # insertions can push WER above 1


def test_wer_refuses_mismatched_or_empty_references():
    with pytest.raises(ValueError, match="hypotheses"):
        word_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["..."], ["a"])


def test_fortune_records_are_split_and_cleaned(tmp_path):
    path = tmp_path / "topic"
    path.write_bytes(b"First one,\n  indented line.\n%\nB\x08Bold word.\n%\n\n%\nLast -- no trailing percent\n")
    assert read_topic(path) == ["First one,\n  indented line.", "Bold word.", "Last -- no trailing percent"]


def test_extended_encoder_keeps_trained_rows_and_borrows_the_rest():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    def encoder(positions: int) -> WhisperEncoder:
        config = WhisperConfig(
            num_mel_bins=8, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=8,
            max_source_positions=positions,
        )  # fmt: skip
        return WhisperEncoder(config)

    torch.manual_seed(0)
    original, trained = encoder(50), encoder(10)
    with torch.no_grad():
        trained.embed_positions.weight.add_(1.0)  # tell the rows apart
    state = extended_encoder_state(trained, original)
    rows = state["embed_positions.weight"]
    assert rows.shape == (50, 16)
    assert torch.equal(rows[:10], trained.embed_positions.weight) and torch.equal(rows[10:], original.embed_positions.weight[10:])
    assert torch.equal(state["layers.0.fc1.weight"], trained.layers[0].fc1.weight)
    original.load_state_dict(state)  # fits the original's shapes exactly
    with pytest.raises(ValueError, match="more than"):
        extended_encoder_state(original, trained)


# ---- slow: real zoo entries ---------------------------------------------------------------------------


@pytest.mark.slow
def test_whisper_forgetting_is_zero_for_an_unchanged_encoder_and_shows_a_changed_one():
    from hftl.config import load_config
    from hftl.evaluation.features import load_backbone
    from hftl.evaluation.forgetting import SENTENCES, whisper_forgetting
    from hftl.modalities import get_modality

    cfg = load_config(None, ["modality=audio", "model.source=zoo:whisper-tiny", "audio.clip_seconds=2"])
    model, _ = load_backbone(cfg, get_modality("audio"), ["a", "b"])
    assert model.encoder.embed_positions.num_embeddings == 100  # cut to the 2-s clip, as a run's is
    same = whisper_forgetting(cfg, model)
    assert same["wer_before"] == same["wer_after"] and same["wer_before"] < 0.5
    assert same["cka"] == pytest.approx(1.0, abs=1e-6) and same["cka_debiased"] == pytest.approx(1.0, abs=1e-6)
    assert same["transcripts_before"] == same["transcripts_after"] and len(same["transcripts_before"]) == len(SENTENCES)
    assert same["knn_accuracy_before"] is None and same["knn_accuracy_after"] is None
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.encoder.layers.parameters():
            param.add_(0.05 * torch.randn_like(param))
    changed = whisper_forgetting(cfg, model)
    assert changed["wer_before"] == same["wer_before"]
    assert changed["wer_after"] > same["wer_before"] + 0.2 and changed["cka"] < 0.9
    assert changed["cka_debiased"] < 0.9


@pytest.mark.slow
def test_real_fortunes():
    from collections import Counter

    from datasets import load_from_disk

    from hftl import zoo
    from hftl.zoo.fortunes import PER_TOPIC, TOPICS

    ds = load_from_disk(str(zoo.prepare("fortunes")))
    assert {s: len(ds[s]) for s in ds} == {"train": 784, "validation": 112, "test": 224}
    assert ds["train"].features["label"].names == list(TOPICS)
    counts = Counter(ds["train"]["label"]) + Counter(ds["validation"]["label"]) + Counter(ds["test"]["label"])
    assert set(counts.values()) == {PER_TOPIC}
    assert all(text.strip() and "\x08" not in text for text in ds["test"]["text"])


# ---- the source-feature cache -------------------------------------------------------------------------


def test_feature_cache_computes_once_per_key_and_recovers_from_a_damaged_file(tmp_path):
    import numpy as np

    from hftl.evaluation.feature_cache import cached_arrays

    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(6.0).reshape(3, 2), "labels": np.array([0, 1, 0])}

    first = cached_arrays("k1", compute, tmp_path)
    again = cached_arrays("k1", compute, tmp_path)
    assert len(calls) == 1 and np.array_equal(first["features"], again["features"])
    assert again["labels"].tolist() == [0, 1, 0]
    cached_arrays("k2", compute, tmp_path)
    cached_arrays(None, compute, tmp_path)  # no key: never cached
    assert len(calls) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["k1.npz", "k2.npz"]
    (tmp_path / "k1.npz").write_bytes(b"not an npz")
    assert np.array_equal(cached_arrays("k1", compute, tmp_path)["features"], first["features"]) and len(calls) == 4


def test_folder_fingerprint_sees_a_changed_file(tmp_path):
    import os

    from hftl.evaluation.feature_cache import cache_key, folder_fingerprint

    (tmp_path / "model.safetensors").write_bytes(b"a")
    before = cache_key({"files": folder_fingerprint(tmp_path)})
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert cache_key({"files": folder_fingerprint(tmp_path)}) != before
    assert folder_fingerprint(tmp_path / "missing") is None
