"""LP-FT on a tiny BERT: the probe phase moves only the head, the fine-tune phase moves the backbone, resume is exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.recipe import run
from hftl.run.checkpoints import list_checkpoints
from hftl.run.freezing import freeze_backbone, unfreeze

LP_FT = ["method.name=lp_ft", "method.lp_ft.probe_epochs=2", "method.lp_ft.probe_learning_rate=3e-2",
         "training.epochs=2", "training.save_total_limit=10"]  # fmt: skip


def finetune(overrides, *extra):
    return run(load_config(None, [*overrides, *LP_FT, *extra]))


def out_dir(overrides) -> Path:
    return Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


def test_probe_moves_only_the_head_then_fine_tune_moves_the_backbone(quick_overrides, tiny_bert):
    # Step by step: the probe checkpoints hold the whole model (on cached features they hold the head only).
    results = finetune(quick_overrides, "training.feature_cache=false")
    out = out_dir(quick_overrides)
    initial = load_file(tiny_bert / "model.safetensors")
    probe_end = load_file(list_checkpoints(out / "probe_phase")[-1] / "model.safetensors")
    final = load_file(out / "model" / "model.safetensors")
    assert changed(initial, probe_end, "classifier.")
    assert not changed(initial, probe_end, "bert.")
    assert changed(probe_end, final, "bert.encoder.")

    # both phases in the results: 2 probe epochs then 2 fine-tune epochs of 6 steps (86 rows, batch 16)
    assert [(h["phase"], h["step"]) for h in results["history"]] == [
        ("probe", 6), ("probe", 12), ("fine_tune", 6), ("fine_tune", 12)
    ]  # fmt: skip
    phases = results["train"]["phases"]
    assert phases["probe"]["steps"] == phases["fine_tune"]["steps"] == 12
    assert results["train"]["steps"] == 24
    assert results["train"]["runtime_s"] == pytest.approx(phases["probe"]["runtime_s"] + phases["fine_tune"]["runtime_s"], abs=2e-3)
    assert results["params"]["trainable"] == results["params"]["total"]  # the fine-tune phase trains every weight
    assert json.loads((out / "results.json").read_text())["history"] == results["history"]


def test_probe_steps_cap_and_probe_learning_rate(quick_overrides):
    results = finetune(quick_overrides, "method.lp_ft.probe_max_steps=3", "training.max_steps=4")
    assert [(h["phase"], h["step"]) for h in results["history"]] == [("probe", 3), ("fine_tune", 4)]


def test_resume_continues_exactly(quick_overrides, tmp_path):
    straight = finetune(quick_overrides)
    first = out_dir(quick_overrides)
    for cut in ("mid-probe", "before-fine-tune", "mid-fine-tune"):
        interrupted = tmp_path / cut
        shutil.copytree(first, interrupted)
        (interrupted / "results.json").unlink()
        shutil.rmtree(interrupted / "model")
        if cut == "mid-probe":  # killed in the probe phase's second epoch: only its first checkpoint exists
            shutil.rmtree(interrupted / "checkpoints")
            probe_checkpoints = list_checkpoints(interrupted / "probe_phase")
            assert len(probe_checkpoints) == 2
            shutil.rmtree(probe_checkpoints[-1])
        elif cut == "before-fine-tune":  # killed after the probe phase finished, before the first fine-tune checkpoint
            shutil.rmtree(interrupted / "checkpoints")
        else:  # killed during the second fine-tune epoch
            shutil.rmtree(list_checkpoints(interrupted)[-1])
        resumed = finetune(quick_overrides, f"output.dir={interrupted}", "training.resume_from=latest")
        assert [h["step"] for h in resumed["history"]] == [h["step"] for h in straight["history"]], cut
        for a, b in zip(straight["history"], resumed["history"], strict=True):
            assert a["eval/loss"] == pytest.approx(b["eval/loss"], abs=1e-5), cut
        assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], abs=1e-5), cut


def test_resume_needs_latest(quick_overrides, tmp_path):
    with pytest.raises(ConfigError, match="resume_from=latest only"):
        load_config(None, [*quick_overrides, *LP_FT, f"training.resume_from={tmp_path}"])


def test_unfreeze_restores_training_and_dropout(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    rates = {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    replaced = freeze_backbone(model, ["classifier"])
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}
    assert all(m.p == 0.0 for n, m in model.named_modules() if n.startswith("bert.") and isinstance(m, torch.nn.Dropout))
    unfreeze(model, replaced)
    assert all(p.requires_grad for p in model.parameters())
    assert {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)} == rates
