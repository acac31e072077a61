"""A run's extra measurements end to end on tiny models: evaluation.transferability / shift / forgetting, per modality."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.evaluation.features import extract, spread_layers
from hftl.modalities import get_modality
from tests.helpers.audio_data import write_tone_csv
from tests.helpers.tiny_models import tiny_asr_model, tiny_audio_model, tiny_vision_model
from tests.helpers.vision_data import vision_overrides

ALL = ["evaluation.transferability=true", "evaluation.shift=true", "evaluation.forgetting=true"]


def _run(overrides: list[str]) -> dict:
    from hftl.recipe import run

    return run(load_config(None, overrides))


def test_text_run_with_a_frozen_backbone_forgets_nothing(quick_overrides, tmp_path):
    results = _run([*quick_overrides, "method.name=linear_probe", "evaluation.probe_max_samples=90", *ALL])
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["forgetting"] == results["forgetting"] and on_disk["shift"] == results["shift"]

    t = results["transferability"]
    assert t["n_train"] == results["data"]["train"] and t["n_validation"] == results["data"]["validation"]
    # The same numbers from the source backbone's features computed here, through the public functions.
    from hftl.evaluation.features import load_backbone, split_features
    from hftl.evaluation.transferability import knn_accuracy, logme, probe_accuracy
    from hftl.run.data import load_splits

    cfg = load_config(None, [*quick_overrides, "evaluation.probe_max_samples=90"])
    splits, labels = load_splits(cfg.data)
    backbone, tokenizer = load_backbone(cfg, get_modality("text"), labels)
    train, y_train = split_features(backbone, get_modality("text"), tokenizer, cfg, splits["train"], 90)
    val, y_val = split_features(backbone, get_modality("text"), tokenizer, cfg, splits["validation"], 90)
    train, val = next(iter(train.values())), next(iter(val.values()))
    assert t["logme"] == pytest.approx(logme(train, y_train), rel=1e-6)
    assert t["knn_accuracy"] == pytest.approx(knn_accuracy(train, y_train, val, y_val, k=t["k"]))
    assert t["probe_accuracy"] == pytest.approx(probe_accuracy(train, y_train, val, y_val, seed=cfg.training.seed))

    s = results["shift"]
    assert list(s["variants"]) == ["first_sentence"] and s["n_samples"] == results["data"]["test"]
    assert s["clean_accuracy"] == pytest.approx(results["test"]["accuracy"])  # the whole (small) test split
    assert s["mean_accuracy"] == s["variants"]["first_sentence"]["accuracy"]

    f = results["forgetting"]
    assert f["probe"] == "zoo:fortunes" and (f["n_train"], f["n_test"]) == (60, 30)
    # linear_probe never changes the backbone: the same features before and after.
    assert f["knn_accuracy_before"] == f["knn_accuracy_after"]
    assert f["cka"] == pytest.approx(1.0, abs=1e-9)
    assert f["wer_before"] is None and f["wer_after"] is None


def test_transferability_does_not_change_the_run(quick_overrides, tmp_path):
    # LoRA draws its init and dropout masks from torch's RNG: measuring before training must not move it.
    common = [*quick_overrides, "method.name=lora", "method.lora.r=4"]
    plain = _run([*common, f"output.dir={tmp_path / 'plain'}"])
    measured = _run([*common, f"output.dir={tmp_path / 'measured'}", "evaluation.transferability=true"])
    assert "transferability" in measured and "transferability" not in plain
    assert measured["test"] == plain["test"]
    assert [h["train/loss"] for h in measured["history"] if "train/loss" in h] == [
        h["train/loss"] for h in plain["history"] if "train/loss" in h
    ]


def test_vision_run_scores_corruptions_and_digits_probe(tmp_path):
    from tests.helpers.vision_data import write_pattern_folder

    root = write_pattern_folder(tmp_path / "patterns", per_class=12)
    model = tiny_vision_model(tmp_path / "tiny_dinov2", num_labels=3, image_size=28)
    results = _run([
        *vision_overrides(model, root, tmp_path / "run", "method.name=linear_probe", "training.epochs=1"),
        *ALL, "evaluation.shift_severities=[2, 5]", "evaluation.probe_max_samples=30",
    ])  # fmt: skip
    s = results["shift"]
    assert sorted(s["variants"]) == sorted(f"{c}_s{v}" for c in ("gaussian_noise", "gaussian_blur", "contrast", "rotation") for v in (2, 5))
    assert s["mean_accuracy"] == pytest.approx(np.mean([m["accuracy"] for m in s["variants"].values()]))
    f = results["forgetting"]
    assert f["probe"] == "zoo:digits" and (f["n_train"], f["n_test"]) == (20, 10)
    assert f["knn_accuracy_before"] == f["knn_accuracy_after"] and f["cka"] == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(results["transferability"]["logme"])


def test_audio_run_scores_noise_and_reports_no_wer_without_a_decoder(tmp_path):
    model = tiny_audio_model(tmp_path / "tiny_whisper", num_labels=3, clip_seconds=1)
    data = write_tone_csv(tmp_path / "tones", per_class=8)
    results = _run([
        "modality=audio", f"model.source={model}", f"data.source={data}", "data.input_column=audio",
        "audio.clip_seconds=1", "method.name=full", "training.epochs=1", "training.batch_size=8",
        "training.tracking=none", f"output.dir={tmp_path / 'run'}", *ALL,
    ])  # fmt: skip
    assert sorted(results["shift"]["variants"]) == ["noise_snr0db", "noise_snr5db"]
    f = results["forgetting"]
    assert f["probe"].startswith("espeak-ng") and f["wer_before"] is None and f["cka"] is None
    assert results["transferability"]["n_train"] == results["data"]["train"]


def test_text_full_fine_tuning_changes_the_backbone(quick_overrides, tmp_path):
    # The control to the probe test above: if "after" silently reused the source features, CKA would be 1 here too.
    results = _run([*quick_overrides, "method.name=full", "evaluation.probe_max_samples=90", "evaluation.forgetting=true"])
    f = results["forgetting"]
    assert f["cka"] < 0.99, f
    assert f["knn_accuracy_after"] != f["knn_accuracy_before"], f


def test_vision_full_fine_tuning_changes_the_backbone(tmp_path):
    from tests.helpers.vision_data import write_pattern_folder

    root = write_pattern_folder(tmp_path / "patterns", per_class=12)
    model = tiny_vision_model(tmp_path / "tiny_dinov2", num_labels=3, image_size=28)
    results = _run([
        *vision_overrides(model, root, tmp_path / "run", "method.name=full", "training.epochs=2",
                          "training.learning_rate=3e-3"),
        "evaluation.forgetting=true", "evaluation.probe_max_samples=30",
    ])  # fmt: skip
    f = results["forgetting"]
    assert f["cka"] < 0.99, f
    assert f["knn_accuracy_after"] != f["knn_accuracy_before"], f


@pytest.mark.slow  # needs the zoo's Whisper tokenizer (whisper-tiny) and espeak-ng
def test_audio_run_with_a_whisper_decoder_measures_wer_before_and_after(tmp_path):
    from hftl import zoo

    model = tiny_asr_model(tmp_path / "tiny_asr", tokenizer_from=zoo.prepare("whisper-tiny"))
    data = write_tone_csv(tmp_path / "tones", per_class=8)
    results = _run([
        "modality=audio", f"model.source={model}", f"data.source={data}", "data.input_column=audio",
        "audio.clip_seconds=1", "method.name=full", "training.epochs=2", "training.batch_size=8",
        "training.learning_rate=3e-3", "training.tracking=none", f"output.dir={tmp_path / 'run'}",
        "evaluation.forgetting=true",
    ])  # fmt: skip
    f = results["forgetting"]
    assert f["probe"].startswith("espeak-ng")
    assert np.isfinite(f["wer_before"]) and np.isfinite(f["wer_after"]), f
    assert len(f["transcripts_before"]) == len(f["transcripts_after"]) == 10
    assert f["cka"] < 0.99, f  # the fine-tuned encoder's frames moved away from the source's


def test_features_of_several_layers_in_one_pass(tiny_bert, topic_csv):
    from datasets import load_dataset

    from hftl.evaluation.features import load_backbone

    cfg = load_config(None, [f"model.source={tiny_bert}", "text.max_length=16"])
    text = get_modality("text")
    model, tokenizer = load_backbone(cfg, text, ["a", "b", "c"])
    split = load_dataset("csv", data_files=str(topic_csv))["train"].select(range(10))
    split = split.class_encode_column("label")
    prepared = text.prepare(split, tokenizer, cfg, train=False)
    feats, labels = extract(model, prepared, text.collator(tokenizer, cfg), text.pooling, layers=[0, 1, 2], batch_size=4)
    assert sorted(feats) == [0, 1, 2] and all(f.shape == (10, 32) for f in feats.values())
    last, _ = extract(model, prepared, text.collator(tokenizer, cfg), text.pooling, batch_size=7)
    assert np.allclose(last[2], feats[2], atol=1e-6)  # batching does not change the features
    assert not np.allclose(feats[0], feats[2]) and labels.tolist() == split["label"]
    assert spread_layers(12) == [3, 6, 9, 12] and spread_layers(2) == [1, 2]


@pytest.mark.parametrize("override", ["evaluation.shift_severities=[0]", "evaluation.shift_severities=[]", "evaluation.probe_max_samples=5"])
def test_bad_measurement_settings_name_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(None, [override])
