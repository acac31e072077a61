"""Probes on cached frozen features: same results as the step-by-step probe, cache reuse, and when it is off."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hftl.config import load_config
from hftl.evaluation import cached_probe
from hftl.recipe import run


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HFTL_HOME", str(home))
    return home / "cache" / "features"


def _run(quick_overrides, tmp_path, name: str, *extra: str) -> dict:
    return run(load_config(None, [*quick_overrides, "training.tracking=none", f"output.dir={tmp_path / name}", *extra]))


def _eval_curve(results: dict) -> list[float]:
    return [h["eval/loss"] for h in results["history"]]


def test_linear_probe_on_cached_features_matches_the_step_by_step_probe(quick_overrides, tmp_path, cache_home, caplog):
    common = ["method.name=linear_probe", "training.epochs=4", "method.probe.solver=sgd"]
    with caplog.at_level(logging.INFO, logger="hftl"):
        cached = _run(quick_overrides, tmp_path, "cached", *common)
    assert "probe on cached features" in caplog.text
    stepwise = _run(quick_overrides, tmp_path, "stepwise", *common, "training.feature_cache=false")
    assert cached["test"]["accuracy"] == stepwise["test"]["accuracy"]
    assert cached["train"]["steps"] == stepwise["train"]["steps"]
    # Same batches, same optimizer and schedule on the same head inputs: the validation curves agree to rounding.
    np.testing.assert_allclose(_eval_curve(cached), _eval_curve(stepwise), rtol=1e-4, atol=1e-5)
    assert len(list(cache_home.glob("*.npz"))) == 3  # train, validation and test head inputs, stored

    # A second run reads them back (and still trains the same head).
    again = _run(quick_overrides, tmp_path, "again", *common)
    np.testing.assert_allclose(_eval_curve(again), _eval_curve(cached), rtol=1e-6)
    assert len(list(cache_home.glob("*.npz"))) == 3


def test_probe_test_scores_from_cached_features_equal_the_models(quick_overrides, tmp_path, cache_home, caplog):
    """The probe's test rows are scored from the frozen backbone's cached test features (once per backbone and data
    set, for every seed): the same predictions, metrics and loss as running the model over the test split."""
    from hftl import recipe

    cfg = load_config(None, [*quick_overrides, "training.tracking=none", "method.name=linear_probe",
                             f"output.dir={tmp_path / 'probe'}"])  # fmt: skip
    ready = recipe.setup(cfg)
    fitted = recipe.fit(ready)
    with caplog.at_level(logging.INFO, logger="hftl"):
        cached = recipe._cached_probe_test(ready, fitted.model)
    assert cached is not None and "test scored from cached head inputs" in caplog.text
    loader = ready.accelerator.prepare(ready.loader("test", cfg.evaluation.batch_size, shuffle=False))
    direct = ready.evaluator(fitted.model, loader)
    np.testing.assert_array_equal(cached[1], direct[1])  # predictions, in the split's order
    np.testing.assert_array_equal(cached[2], direct[2])
    assert cached[0]["accuracy"] == direct[0]["accuracy"]
    assert cached[0]["loss"] == pytest.approx(direct[0]["loss"], rel=1e-5)
    # Read back from the disk cache (another run of this backbone and data set): the same scores.
    assert recipe._cached_probe_test(ready, fitted.model)[0] == cached[0]
    # A fine-tuning method moves the backbone: its test rows go through the model.
    tuned = recipe.setup(load_config(None, [*quick_overrides, "training.tracking=none", "method.name=full",
                                            f"output.dir={tmp_path / 'full'}"]))  # fmt: skip
    assert recipe._cached_probe_test(tuned, tuned.model) is None


def test_lp_ft_probe_phase_uses_the_cache_and_matches(quick_overrides, tmp_path, cache_home):
    common = ["method.name=lp_ft", "method.lp_ft.probe_epochs=2", "training.epochs=1", "method.probe.solver=sgd"]
    cached = _run(quick_overrides, tmp_path, "cached", *common)
    stepwise = _run(quick_overrides, tmp_path, "stepwise", *common, "training.feature_cache=false")
    probe = [[h["eval/loss"] for h in r["history"] if h["phase"] == "probe"] for r in (cached, stepwise)]
    np.testing.assert_allclose(probe[0], probe[1], rtol=1e-4, atol=1e-5)
    assert abs(cached["test"]["accuracy"] - stepwise["test"]["accuracy"]) <= 1 / 12  # fine-tune phase: noise only
    assert list(cache_home.glob("*.npz"))
    # The probe phase trained the model's own head: its checkpoints hold just that head, the fine-tune starts from it.
    from safetensors.torch import load_file

    from hftl.run.checkpoints import list_checkpoints

    probe_ckpt = load_file(list_checkpoints(tmp_path / "cached" / "probe_phase")[-1] / "model.safetensors")
    assert probe_ckpt and all(k.startswith("classifier.") for k in probe_ckpt)
    final = load_file(tmp_path / "cached" / "model" / "model.safetensors")
    assert not torch.equal(final["classifier.weight"], probe_ckpt["classifier.weight"])  # fine-tuned further


def test_augmentation_turns_the_cache_off_with_the_reason(quick_overrides, tmp_path, cache_home, caplog):
    cfg = load_config(None, [*quick_overrides, "method.name=linear_probe", "text.word_dropout=0.1"])
    assert cached_probe.augmentation_settings(cfg) == ["text.word_dropout=0.1"]
    with caplog.at_level(logging.INFO, logger="hftl"):
        _run(quick_overrides, tmp_path, "augmented", "method.name=linear_probe", "training.epochs=1", "text.word_dropout=0.1")
    assert "probe feature cache off: augmentation is on (text.word_dropout=0.1)" in caplog.text
    assert not cache_home.exists() or not list(cache_home.glob("*.npz"))


def test_augmentation_settings_find_nested_vision_and_audio_options():
    cfg = load_config(None, ["modality=vision", "vision.augment.hflip_prob=0.5", "vision.augment.mixup_alpha=0.2"])
    assert cached_probe.augmentation_settings(cfg) == ["vision.augment.hflip_prob=0.5", "vision.augment.mixup_alpha=0.2"]
    assert cached_probe.augmentation_settings(load_config(None, ["modality=audio", "audio.freq_masks=2"])) == ["audio.freq_masks=2"]
    assert cached_probe.augmentation_settings(load_config(None, ["modality=audio"])) == []
