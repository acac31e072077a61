"""Two real processes on CPU (torchrun, gloo): the recipe runs, only rank 0 writes and pushes, and evaluation counts every
sample once."""

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
from hftl.run.data import load_splits
from tests.helpers.hub_server import HubServer
from tests.helpers.paths import REPO

TOKEN = "hf_testDistributedLoopbackHub0123456789abcdef"


@pytest.mark.slow  # two processes through torchrun: ~1 minute on 2 cores
def test_two_rank_run_matches_single_process_evaluation_and_only_rank_0_writes(tiny_bert, topic_csv, tmp_path):
    out = tmp_path / "ddp"
    overrides = [
        f"model.source={tiny_bert}", f"data.source={topic_csv}", "text.max_length=16", "method.name=full",
        "training.epochs=2", "training.batch_size=8", "training.learning_rate=3e-3",
        "evaluation.batch_size=4",  # 10 validation rows, 3 batches over 2 ranks: uneven, must not duplicate
        "training.eval_steps=4",  # checkpoints mid-epoch too: every rank writes its RNG state into them
        "push.enabled=true", "push.repo_id=alice/ddp", "push.what=merged",
        f"output.dir={out}",
    ]  # fmt: skip
    torchrun = Path(sys.executable).parent / "torchrun"
    audit = [str(REPO / "tests" / "helpers" / "audit_rank.py"), str(out), str(tmp_path / "audit")]
    cmd = [str(torchrun), "--nproc_per_node", "2", *audit, str(REPO / "recipes" / "finetune.py"), *overrides]
    with HubServer(tmp_path / "hub", TOKEN) as hub:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf_home"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        pushes = [m for m in hub.repos["alice/ddp"].messages.values() if m != "initial commit"]
        assert len(pushes) == 1, pushes  # one push, from rank 0
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["world_size"] == 2
    assert results["train"]["steps"] == 2 * 6  # 86 rows / (8 x 2 ranks) per step

    # Rank 0 wrote the run directory and pushed. Rank 1 only entered the checkpoint being written (accelerate's
    # save_state: each rank saves its RNG state there, natively, so the audit sees the folder, not the file).
    rank0, rank1 = (json.loads((tmp_path / f"audit-{r}.json").read_text()) for r in (0, 1))
    written_by_0 = {Path(p).relative_to(out).parts[0] for _, p in rank0["writes"] if Path(p) != out}
    assert {"results.json", "config.yaml", "model", "checkpoints"} <= written_by_0  # the audit does see writes
    assert any(hub.url.rsplit(":", 1)[1] in c for c in rank0["connects"])
    for event, path in rank1["writes"]:
        rel = Path(path).relative_to(out).parts
        in_checkpoint = rel == ("checkpoints",) or (len(rel) == 2 and rel[0] == "checkpoints" and rel[1].startswith(".tmp-"))
        assert event == "os.mkdir" and in_checkpoint, (event, path)
    assert not rank1["connects"]
    for checkpoint in (out / "checkpoints").iterdir():  # committed only once rank 1's RNG state was in
        assert (checkpoint / "random_states_1.pkl").is_file()

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


def _quick(tiny_bert, topic_csv, out: Path) -> list[str]:
    return [f"model.source={tiny_bert}", f"data.source={topic_csv}", "text.max_length=16", "method.name=full",
            "training.epochs=1", "training.batch_size=8", "training.tracking=none", f"output.dir={out}"]  # fmt: skip


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
def test_hftl_train_nproc_starts_that_many_processes(tiny_bert, topic_csv, tmp_path):
    out = tmp_path / "nproc"
    cmd = [sys.executable, "-m", "hftl.cli", "train", *_quick(tiny_bert, topic_csv, out), "--nproc", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["world_size"] == 2
    assert results["train"]["steps"] == 6  # 86 rows / (8 x 2 ranks): half the steps of one process


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flags", "config_file"])
def test_accelerate_cpu_launch_of_n_processes_that_starts_one_is_refused(how, tiny_bert, topic_csv, tmp_path):
    """accelerate's multi-CPU mode needs mpirun; without it, it silently runs one process. hftl says so and stops."""
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    if how == "flags":
        launch = ["--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    else:
        config = tmp_path / "multi_cpu.yaml"
        config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nmixed_precision: 'no'\n"
                          "num_machines: 1\nnum_processes: 2\nmachine_rank: 0\nuse_cpu: true\n")  # fmt: skip
        launch = ["--config_file", str(config)]
    cmd = [str(accelerate), "launch", *launch, str(REPO / "recipes" / "finetune.py"), *_quick(tiny_bert, topic_csv, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=_env())
    assert proc.returncode != 0
    # hftl's one-line error; accelerate's launcher then adds its own traceback for the child's exit status 2.
    assert "hftl train: error: accelerate launch was asked for 2 processes but started 1" in proc.stderr, proc.stderr[-3000:]
    assert "--nproc 2" in proc.stderr
    assert not (out / "results.json").exists() and not (out / "checkpoints").exists()  # refused before training


@pytest.mark.slow
def test_the_single_gpu_accelerate_config_launches(tiny_bert, topic_csv, tmp_path):
    """recipes/accelerate/single_gpu.yaml launched for real (on CPU here, with --cpu), bf16 as its header says.

    multi_gpu / fsdp / deepspeed_zero2 need GPUs: tests/integration/test_gpu.py launches fsdp.yaml where one is present.
    """
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / "single_gpu.yaml"), "--cpu",
           str(REPO / "recipes" / "finetune.py"), *_quick(tiny_bert, topic_csv, out), "training.mixed_precision=bf16"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["world_size"] == 1 and results["run"]["mixed_precision"] == "bf16"


@pytest.mark.slow
def test_a_hook_stopping_on_one_rank_stops_both(tiny_bert, topic_csv, tmp_path):
    """A hook that decides on rank 1 alone must not leave rank 0 training (it would wait forever at a collective)."""
    out = tmp_path / "ddp-hook"
    torchrun = Path(sys.executable).parent / "torchrun"
    script = str(REPO / "tests" / "helpers" / "hook_stop_run.py")
    cmd = [str(torchrun), "--nproc_per_node", "2", script, "3", *_quick(tiny_bert, topic_csv, out), "training.epochs=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = json.loads((out / "results.json").read_text())["train"]  # written by rank 0, which never set the stop
    assert train["steps"] == 3 and train["stopped_early"]
    assert train["stop_reason"] == "stopped by a hook on another process"
