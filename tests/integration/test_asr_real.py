"""The real Whisper tiny.en through `accelerate launch` on a small subset of zoo:espeak-sentences (the recipe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hftl import zoo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # the real model: about 2 minutes on 2 cores
def test_accelerate_launch_of_the_lora_recipe_on_the_real_model(real_home, tmp_path):
    zoo.prepare("whisper-tiny")
    zoo.prepare("espeak-sentences")
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", str(ROOT / "recipes" / "finetune.py"),
           str(ROOT / "recipes" / "configs" / "audio" / "whisper_asr_lora.yaml"),
           "data.max_train_samples=16", "data.max_eval_samples=6", "training.max_steps=2", "training.eval_steps=2",
           "asr.extra_splits=[source_probe]", "training.tracking=none", f"output.dir={out}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["task"] == "speech_recognition"
    # tiny.en reads espeak-ng speech, badly but not randomly: its WER before training is far below 1
    assert 0.05 < results["source_model"]["test"]["wer"] < 0.9
    assert 0.05 < results["source_model"]["source_probe"]["wer"] < 0.9
    assert set(results["extra_splits"]) == {"source_probe"}
    assert results["test"]["wer"] < 1.0
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "tokenizer_config.json").is_file()
