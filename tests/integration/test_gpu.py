"""The CUDA paths: mixed precision (bf16, fp16 with its loss scaler), exact resume, gradient checkpointing, FSDP through
`accelerate launch`, and exporting a model trained in bf16. Skipped without a GPU (CI has none); run them on one with
`pytest -m gpu tests/integration/test_gpu.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hftl.config import load_config
from hftl.recipe import run
from tests.helpers.paths import REPO

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]



def finetune(overrides, *extra):
    return run(load_config(None, [*overrides, *extra]))


def out_dir(overrides) -> Path:
    return Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


# (method, precision, learning rate). LoRA needs a higher rate than full fine-tuning on the tiny random BERT; a linear
# probe on its random features does not learn the task at any rate (on the CPU too), so it is checked for running only.
CASES = [
    ("full", "bf16", "3e-3"), ("lp_ft", "bf16", "3e-3"), ("lora", "bf16", "3e-2"), ("linear_probe", "bf16", "3e-2"),
    ("full", "fp16", "3e-3"), ("lora", "fp16", "3e-2"),
]


@pytest.mark.parametrize(("method", "precision", "lr"), CASES)
def test_mixed_precision_training_on_the_gpu(quick_overrides, method, precision, lr):
    results = finetune(quick_overrides, f"method.name={method}", f"training.mixed_precision={precision}",
                       f"training.learning_rate={lr}", "training.epochs=4")  # fmt: skip
    assert results["run"]["device"].startswith("cuda")
    assert results["run"]["mixed_precision"] == precision
    assert all(torch.isfinite(torch.tensor(h["eval/loss"])) for h in results["history"] if "eval/loss" in h)
    if method != "linear_probe":
        assert results["test"]["accuracy"] > 0.6, results["test"]  # chance is 0.33
    # autocast keeps fp32 master weights: what is saved is fp32, not the compute precision
    saved = load_file(out_dir(quick_overrides) / "model" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}


def test_bf16_reaches_the_fp32_result(quick_overrides, tmp_path):
    """Same seed and batches in fp32 and bf16 autocast: both learn, and end at nearly the same test loss."""
    common = [*quick_overrides, "method.name=full", "training.epochs=8"]
    fp32 = finetune(common, "training.mixed_precision=no")
    bf16 = finetune(common, "training.mixed_precision=bf16", f"output.dir={tmp_path / 'bf16'}")
    print("fp32", fp32["test"], "bf16", bf16["test"])
    assert fp32["test"]["accuracy"] > 0.6 and bf16["test"]["accuracy"] > 0.6
    assert bf16["test"]["loss"] == pytest.approx(fp32["test"]["loss"], abs=0.1)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_resume_on_the_gpu_continues_exactly(quick_overrides, tmp_path, precision):
    """A mid-epoch checkpoint restores model, optimizer, schedule, RNG and (fp16) the loss scaler."""
    common = [*quick_overrides, "method.name=full", f"training.mixed_precision={precision}",
              "training.eval_steps=3", "training.save_total_limit=10"]  # fmt: skip
    straight = finetune(common)
    first = out_dir(quick_overrides)
    resume_point = sorted((first / "checkpoints").iterdir())[1]
    resumed = finetune(common, f"output.dir={tmp_path / 'resumed'}", f"training.resume_from={resume_point}")
    for a, b in zip(straight["history"], resumed["history"], strict=True):
        assert a["step"] == b["step"]
        assert a["eval/loss"] == pytest.approx(b["eval/loss"], abs=1e-4)
    diff = max_weight_diff(first / "model" / "model.safetensors", tmp_path / "resumed" / "model" / "model.safetensors")
    assert diff < 1e-4, diff


def test_gradient_checkpointing_on_the_gpu_trains_the_same_model(quick_overrides, tmp_path):
    common = [*quick_overrides, "method.name=lora", "training.mixed_precision=bf16"]
    plain = finetune(common)
    checkpointed = finetune(common, "training.gradient_checkpointing=true", f"output.dir={tmp_path / 'gc'}")
    for a, b in zip(plain["history"], checkpointed["history"], strict=True):
        assert a["eval/loss"] == pytest.approx(b["eval/loss"], abs=1e-3)


def test_fsdp_launch_on_one_gpu_in_bf16(quick_overrides):
    """recipes/accelerate/fsdp.yaml as a user launches it (one process here: the machine has one GPU)."""
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / "fsdp.yaml"),
        "--num_processes", "1", str(REPO / "recipes" / "finetune.py"),
        *quick_overrides, "method.name=full", "training.mixed_precision=bf16",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out_dir(quick_overrides) / "results.json").read_text())
    assert results["run"]["device"].startswith("cuda") and results["run"]["mixed_precision"] == "bf16"
    assert results["test"]["accuracy"] > 0.6, results["test"]


def test_export_of_a_bf16_trained_model_passes_the_parity_gate(quick_overrides):
    from hftl.cli import main

    finetune(quick_overrides, "method.name=lora", "training.mixed_precision=bf16")
    run_dir = out_dir(quick_overrides)
    assert main(["export", str(run_dir), "export.latency_repeats=3"]) == 0
    report = json.loads((run_dir / "onnx" / "export_report.json").read_text())
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
