"""Two real processes on CPU (torchrun, gloo): the recipe runs, rank 0 writes, and evaluation counts every sample once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hftl.config import load_config
from hftl.data import load_splits

ROOT = Path(__file__).parent.parent


def test_two_rank_run_matches_single_process_evaluation(tiny_bert, topic_csv, tmp_path):
    out = tmp_path / "ddp"
    overrides = [
        f"model.source={tiny_bert}", f"data.source={topic_csv}", "text.max_length=16", "method.name=full",
        "training.epochs=2", "training.batch_size=8", "training.learning_rate=3e-3",
        "evaluation.batch_size=4",  # 10 validation rows, 3 batches over 2 ranks: uneven, must not duplicate
        f"output.dir={out}",
    ]  # fmt: skip
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", str(ROOT / "recipes" / "finetune.py"), *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["world_size"] == 2
    assert results["train"]["steps"] == 2 * 6  # 86 rows / (8 x 2 ranks) per step

    # The saved (best) model scored in one process must give the metrics the two ranks reported.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = load_config(None, overrides)
    validation = load_splits(cfg.data)[0]["validation"]
    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    batch = tokenizer(list(validation["text"]), truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    labels = torch.tensor(validation["label"])
    accuracy = float(np.mean(logits.argmax(-1).numpy() == labels.numpy()))
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert results["eval"]["accuracy"] == pytest.approx(accuracy)
    assert results["eval"]["loss"] == pytest.approx(loss, abs=1e-5)
