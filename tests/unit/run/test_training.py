"""End to end on a tiny BERT: the recipe writes a complete run directory, resumes exactly, stops early, tracks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hftl.config import load_config
from hftl.errors import ConfigError, RunDirError
from hftl.recipe import run


def finetune(overrides, *extra):
    return run(load_config(None, [*overrides, *extra]))


def run_dir(overrides) -> Path:
    return Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])


def test_lora_run_writes_a_complete_run_directory(quick_overrides):
    results = finetune(quick_overrides, "method.name=lora", "method.lora.r=4", "training.epochs=4")
    out = run_dir(quick_overrides)
    for name in ("config.yaml", "results.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "model/config.json", "model/model.safetensors", "model/tokenizer.json"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for section in ("eval", "test"):
        assert set(saved[section]) >= {"accuracy", "f1_macro", "precision_macro", "recall_macro", "loss"}
    assert set(saved["train"]) >= {"runtime_s", "samples_per_second", "steps"}
    assert saved["train"]["steps"] == 4 * 6  # 86 train rows / batch 16 = 6 steps per epoch
    assert saved["run"]["method"] == "lora" and saved["run"]["seed"] == 42
    assert {"torch", "transformers", "peft", "accelerate"} <= set(saved["run"]["versions"])
    assert 0 < saved["params"]["trainable"] < saved["params"]["total"]
    assert saved["data"] == {"labels": ["business", "film", "sport"], "train": 86, "validation": 10, "test": 24,
                             "skipped_samples": 0}
    # the adapter moved away from its zero init (B starts at 0)
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in adapter.items())


def test_saved_model_reproduces_the_reported_test_accuracy(quick_overrides):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hftl.run.data import load_splits

    cfg = load_config(None, [*quick_overrides, "method.name=full"])
    results = run(cfg)
    model_dir = run_dir(quick_overrides) / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.id2label == {0: "business", 1: "film", 2: "sport"}
    test = load_splits(cfg.data)[0]["test"]
    batch = tokenizer(list(test["text"]), truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        preds = model(**batch).logits.argmax(-1).numpy()
    assert np.mean(preds == np.array(test["label"])) == pytest.approx(results["test"]["accuracy"])
    assert results["test"]["accuracy"] > 0.6  # the topic words are learnable; chance is 0.33


@pytest.mark.parametrize(
    ("eval_steps", "augment"),
    [(None, False), (3, False), (3, True)],
    ids=["epoch-checkpoints", "mid-epoch-checkpoints", "mid-epoch-with-augmentation"],
)
def test_resume_continues_exactly(quick_overrides, tmp_path, eval_steps, augment):
    common = [*quick_overrides, "method.name=full", "training.gradient_accumulation_steps=2",
              "training.save_total_limit=10", f"training.eval_steps={'null' if eval_steps is None else eval_steps}"]  # fmt: skip
    if augment:  # draws per (seed, epoch, row): a resumed run sees the same augmented words
        common += ["text.word_dropout=0.3", "text.word_swap=0.2"]
    straight = finetune(common)
    first = run_dir(quick_overrides)
    checkpoints = sorted((first / "checkpoints").iterdir())
    resume_point = checkpoints[1]  # mid-run: epoch 2 of 3, or step 6 of 9
    resumed = finetune(common, f"output.dir={tmp_path / 'resumed'}", f"training.resume_from={resume_point}")
    assert resumed["train"]["steps"] == straight["train"]["steps"]
    for a, b in zip(straight["history"], resumed["history"], strict=True):
        assert a["step"] == b["step"]
        assert a["eval/loss"] == pytest.approx(b["eval/loss"], abs=1e-5)
    assert resumed["test"]["loss"] == pytest.approx(straight["test"]["loss"], abs=1e-5)
    w1 = load_file(first / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5


def test_resume_latest_in_place_and_missing_checkpoint(quick_overrides):
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        finetune(quick_overrides, "training.resume_from=latest")
    sgd = "method.probe.solver=sgd"  # the loop's probe: it checkpoints and resumes (the L-BFGS one takes no steps)
    finetune(quick_overrides, "method.name=linear_probe", sgd)
    again = finetune(quick_overrides, "method.name=linear_probe", sgd, "training.resume_from=latest")
    assert again["train"]["steps"] == 18


def test_finished_run_is_not_overwritten_unless_asked(quick_overrides):
    finetune(quick_overrides, "method.name=linear_probe", "training.epochs=1")
    results = run_dir(quick_overrides) / "results.json"
    before = results.read_bytes()
    with pytest.raises(RunDirError, match="finished run"):
        finetune(quick_overrides, "method.name=linear_probe", "training.epochs=1")
    assert results.read_bytes() == before
    finetune(quick_overrides, "method.name=full", "training.epochs=2", "output.overwrite=true")
    assert json.loads(results.read_text())["train"]["steps"] == 12


def test_early_stopping(quick_overrides):
    # Loss keeps falling; asking for the *largest* loss makes every later evaluation "worse" than the first.
    results = finetune(quick_overrides, "method.name=full", "training.epochs=10", "training.metric_for_best=loss",
                       "training.greater_is_better=true", "training.early_stopping_patience=2")  # fmt: skip
    assert results["train"]["stopped_early"]
    assert len(results["history"]) == 3 and results["train"]["best_step"] == 6
    assert results["train"]["steps"] == 18 < results["train"]["total_steps"]


def test_early_stopping_waits_for_min_steps(quick_overrides):
    # the same never-improving metric: patience 2 would stop at step 18; min_steps=30 keeps the run going to step 30
    results = finetune(quick_overrides, "method.name=full", "training.epochs=10", "training.metric_for_best=loss",
                       "training.greater_is_better=true", "training.early_stopping_patience=2",
                       "training.min_steps=30")  # fmt: skip
    assert results["train"]["stopped_early"] and results["train"]["steps"] == 30
    assert [h["step"] for h in results["history"]] == [6, 12, 18, 24, 30] and results["train"]["best_step"] == 6
    with pytest.raises(ConfigError, match=r"training.min_steps \(40\) is above training.max_steps \(20\)"):
        load_config(None, ["training.min_steps=40", "training.max_steps=20"])


def test_tensorboard_scalars_read_back(quick_overrides):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = finetune(quick_overrides, "method.name=full", "name=tb")
    events = EventAccumulator(str(run_dir(quick_overrides) / "logs" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "eval/accuracy", "eval/loss", "test/accuracy"} <= tags
    evals = events.Scalars("eval/accuracy")
    assert [e.step for e in evals] == [h["step"] for h in results["history"]]
    assert [e.value for e in evals] == pytest.approx([h["eval/accuracy"] for h in results["history"]])
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(results["test"]["accuracy"])


def test_unavailable_tracker_is_a_config_error(quick_overrides):
    from accelerate.utils import imports

    if imports.is_wandb_available():
        pytest.skip("wandb is installed here")
    with pytest.raises(ConfigError, match="training.tracking=wandb"):
        finetune(quick_overrides, "training.tracking=wandb")
    assert not run_dir(quick_overrides).exists()  # refused before anything was written
