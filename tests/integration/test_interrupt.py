"""Interrupted runs: a run killed with SIGKILL mid-epoch resumes from its latest complete checkpoint and ends where
an uninterrupted run ends; half-written checkpoints are never resumed from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.recipe import run
from hftl.run import checkpoints
from tests.helpers.paths import REPO

# Resume equality: what the uninterrupted and the killed-then-resumed run may differ by (eval metrics, weights).
RESUME_TOLERANCE = 1e-5


def _run_overrides(quick_overrides: list[str], out: Path) -> list[str]:
    # 86 train rows / batch 16 = 6 steps per epoch, 12 in all; a checkpoint every 4 steps: 4 and 8 are mid-epoch.
    return [*quick_overrides, "method.name=full", "training.epochs=2", "training.eval_steps=4", "training.save_total_limit=10",
            "training.tracking=none", f"output.dir={out}"]  # fmt: skip


def _start_recipe(overrides: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(REPO / "recipes" / "finetune.py"), *overrides]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _kill_after_first_checkpoint(proc: subprocess.Popen, run_dir: Path, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not checkpoints.list_checkpoints(run_dir):
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before its first checkpoint:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the timeout")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_latest_matches_an_uninterrupted_run(quick_overrides, tmp_path):
    straight = run(load_config(None, _run_overrides(quick_overrides, tmp_path / "straight")))

    killed_dir = tmp_path / "killed"
    overrides = _run_overrides(quick_overrides, killed_dir)
    proc = _start_recipe(overrides, tmp_path / "killed.log")
    _kill_after_first_checkpoint(proc, killed_dir, tmp_path / "killed.log")
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "results.json").exists()  # killed before it finished
    latest = checkpoints.resolve(killed_dir, "latest")
    state = json.loads((latest / checkpoints.STATE_FILE).read_text())
    assert 0 < state["batches_in_epoch"] < 6, "the kill should leave a mid-epoch checkpoint"

    resumed = run(load_config(None, [*overrides, "training.resume_from=latest"]))

    assert resumed["train"]["steps"] == straight["train"]["steps"] == 12
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in straight["history"]]
    metric_diff = max(
        abs(a[k] - b[k])
        for a, b in zip(straight["history"], resumed["history"], strict=True)
        for k in a
        if k.startswith("eval/")
    )
    test_diff = max(abs(straight["test"][k] - resumed["test"][k]) for k in straight["test"])
    w1 = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    w2 = load_file(killed_dir / "model" / "model.safetensors")
    weight_diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f"resume after SIGKILL at step {state['step']}: max |diff| eval metrics {metric_diff:.3g}, "
          f"test metrics {test_diff:.3g}, weights {weight_diff:.3g}")  # fmt: skip
    assert metric_diff <= RESUME_TOLERANCE and test_diff <= RESUME_TOLERANCE and weight_diff <= RESUME_TOLERANCE


def _fake_checkpoint(run_dir: Path, step: int, complete: bool) -> Path:
    path = checkpoints.checkpoint_dir(run_dir, step)
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"")  # what a killed save_state may leave behind
    if complete:
        (path / checkpoints.STATE_FILE).write_text("{}")
    return path


def test_latest_skips_leftover_temporary_and_unmarked_checkpoint_folders(tmp_path, caplog):
    good = _fake_checkpoint(tmp_path, 4, complete=True)
    unmarked = _fake_checkpoint(tmp_path, 8, complete=False)
    leftover = checkpoints.temporary_dir(checkpoints.checkpoint_dir(tmp_path, 12), clear=False)
    leftover.mkdir()
    (leftover / checkpoints.STATE_FILE).write_text("{}")  # even a marker inside a temporary folder does not count
    assert checkpoints.list_checkpoints(tmp_path) == [good]
    assert checkpoints.resolve(tmp_path, "latest") == good
    assert f"{unmarked} is incomplete" in caplog.text
    checkpoints.prune(tmp_path, keep=1)
    assert good.is_dir()  # an incomplete folder never pushes a complete one out


def test_resume_from_an_incomplete_checkpoint_is_an_error_that_says_what_to_do(tmp_path):
    unmarked = _fake_checkpoint(tmp_path, 8, complete=False)
    with pytest.raises(ConfigError, match="no complete checkpoint.*run without training.resume_from"):
        checkpoints.resolve(tmp_path, "latest")
    with pytest.raises(ConfigError, match=r"step_000008 is not a complete hftl checkpoint.*resume_from=latest"):
        checkpoints.resolve(tmp_path, str(unmarked))


def test_resume_latest_ignores_a_newer_half_written_checkpoint(quick_overrides):
    overrides = [*quick_overrides, "method.name=linear_probe", "training.epochs=2", "training.tracking=none"]
    first = run(load_config(None, overrides))
    out = Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])
    _fake_checkpoint(out, 999, complete=False)
    again = run(load_config(None, [*overrides, "training.resume_from=latest"]))
    assert again["train"]["steps"] == first["train"]["steps"] == 12  # resumed from step 12, not the broken 999
