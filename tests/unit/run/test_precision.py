"""bf16 on CPU: what the device supports is checked, ``auto`` resolves per device, and autocast really runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.run import cpu, precision

RECIPES = Path(__file__).resolve().parents[3] / "recipes" / "configs"
needs_bf16 = pytest.mark.skipif(not cpu.native_bf16(), reason="this CPU has no bf16 instructions (amx_bf16/avx512_bf16)")


def test_fp16_on_cpu_is_refused_with_what_to_set():
    with pytest.raises(ConfigError, match=r"fp16 needs a GPU.*bf16.*auto"):
        precision.resolve("fp16", "cpu")


def test_bf16_refused_on_a_cpu_without_bf16_instructions(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512bw"}))
    monkeypatch.setattr(cpu, "amx_usable", lambda: False)
    with pytest.raises(ConfigError, match=r"no bf16 instructions.*amx_bf16.*avx512_bf16"):
        precision.resolve("bf16", "cpu")
    assert precision.resolve("auto", "cpu") == "no"


def _without_bf16(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}))
    monkeypatch.setattr(cpu, "amx_usable", lambda: False)


def test_auto_trains_in_fp32_without_error_on_a_cpu_without_bf16(monkeypatch, quick_overrides):
    from hftl.recipe import run

    _without_bf16(monkeypatch)
    results = run(load_config(None, [*quick_overrides, "training.epochs=1", "training.mixed_precision=auto"]))
    assert results["run"]["mixed_precision"] == "no"


@pytest.mark.parametrize("recipe", sorted(str(p) for p in RECIPES.glob("*/*.yaml")))
def test_every_recipe_precision_resolves_on_a_cpu_without_bf16(monkeypatch, recipe):
    """The recipes say auto (or no): neither may fail on a CPU that lacks bf16; auto falls back to fp32 there."""
    _without_bf16(monkeypatch)
    setting = load_config(recipe).training.mixed_precision
    assert setting in ("auto", "no"), f"{recipe}: training.mixed_precision={setting} fails on CPUs without bf16"
    assert precision.resolve(setting, "cpu") == "no"


def test_auto_picks_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.resolve("auto", "cpu") == "bf16"
    assert precision.resolve("no", "cpu") == "no"


def test_cpu_description_names_model_flags_and_int8_isa():
    info = cpu.describe()
    assert info["model"] and info["int8_isa"]
    assert set(info["flags"]) <= set(cpu.FLAGS_OF_INTEREST)
    assert info["native_bf16"] == cpu.native_bf16()


class DtypeRecorder:
    """Records the dtype of a Linear layer's output inside the model's forward (what autocast changes)."""

    def __init__(self, module: torch.nn.Module):
        self.seen: list[torch.dtype] = []
        module.register_forward_hook(lambda _m, _a, out: self.seen.append(out.dtype))


def _rows(n: int = 16) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        {"input_ids": torch.randint(5, 40, (8,), generator=g), "attention_mask": torch.ones(8, dtype=torch.long),
         "labels": torch.tensor(i % 3)}
        for i in range(n)
    ]  # fmt: skip


@needs_bf16
@pytest.mark.parametrize(("setting", "expected"), [("bf16", torch.bfloat16), ("auto", torch.bfloat16), ("no", torch.float32)])
def test_training_and_evaluation_forward_run_in_the_resolved_precision(quick_overrides, tiny_bert, tmp_path, setting, expected):
    from transformers import AutoModelForSequenceClassification

    from hftl.recipe import make_accelerator
    from hftl.run.training import Trainer, evaluate

    cfg = load_config(None, [*quick_overrides, f"training.mixed_precision={setting}", "training.max_steps=2",
                             "training.tracking=none"])  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    recorder = DtypeRecorder(model.bert.encoder.layer[0].attention.self.query)
    accelerator = make_accelerator(cfg, tmp_path)
    loader = DataLoader(_rows(), batch_size=8)
    trainer = Trainer(cfg, accelerator, model, loader, DataLoader(_rows(8), batch_size=8), tmp_path)
    trainer.fit()
    assert recorder.seen and set(recorder.seen) == {expected}  # training steps and the loop's evaluations
    recorder.seen.clear()
    evaluate(trainer.model, accelerator.prepare(DataLoader(_rows(8), batch_size=8)), accelerator, ["accuracy"])
    assert recorder.seen == [expected]


@needs_bf16
def test_run_records_the_precision_that_ran(quick_overrides):
    from hftl.recipe import run

    results = run(load_config(None, [*quick_overrides, "training.epochs=1", "training.mixed_precision=auto"]))
    assert results["run"]["mixed_precision"] == "bf16"
    assert results["test"]["accuracy"] >= 0.0


@needs_bf16
def test_torch_predictor_runs_in_bf16(tiny_bert):
    from hftl.deploy.torch_backend import TorchClassifier

    classifier = TorchClassifier(tiny_bert, precision="bf16")
    recorder = DtypeRecorder(classifier.model.bert.encoder.layer[0].attention.self.query)
    features = {"input_ids": torch.randint(5, 40, (2, 8)).numpy(), "attention_mask": torch.ones(2, 8, dtype=torch.long).numpy()}
    assert len(classifier.classify(features)) == 2
    assert recorder.seen == [torch.bfloat16]
    fp32 = TorchClassifier(tiny_bert, precision="no")
    assert abs(fp32.logits(features) - classifier.logits(features)).max() < 0.1  # same model, bf16 rounding only
