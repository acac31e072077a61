"""The output directory is checked before training: a folder, writable, with room for what the run writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

import pytest

from hftl.errors import RunDirError
from hftl.run import rundir


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(RunDirError, match="exists and is not a folder"):
        rundir.prepare_run_dir(target, overwrite=False, resuming=False)


@contextlib.contextmanager
def _unwritable(folder):
    """Make ``folder`` unwritable for whoever runs the tests: chmod for a user; for root (CI), the immutable flag,
    which root cannot write through either."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"running as root and `chattr +i` is refused here ({made.stderr.strip()}): cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_unwritable_output_dir_is_refused(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    with _unwritable(target), pytest.raises(RunDirError, match="is not writable"):
        rundir.prepare_run_dir(target, overwrite=False, resuming=False)
    assert list(target.iterdir()) == []  # the probe write left nothing behind


def test_too_little_free_space_is_refused_naming_the_way_out(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    rundir.check_free_space(tmp_path, free // 2)
    with pytest.raises(RunDirError, match=r"GiB free, but this run writes about .*training\.save_total_limit"):
        rundir.check_free_space(tmp_path, free + 2**30)


def _tensor_bytes(folder) -> int:
    """Bytes of the weight and optimizer files under ``folder`` (what the estimate is about; configs are noise)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_space_estimate_covers_what_a_real_run_writes(method, quick_overrides, tmp_path):
    """The estimate against the files a real run leaves, plus the one checkpoint in flight at the peak."""
    from hftl.config import load_config
    from hftl.recipe import run

    results = run(load_config(None, [*quick_overrides, f"method.name={method}", "training.eval_steps=2",
                                     "training.save_total_limit=2", "training.tracking=none"]))  # fmt: skip
    run_dir = tmp_path / "run"
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2  # several were written, two kept
    peak = _tensor_bytes(run_dir) + max(_tensor_bytes(c) for c in checkpoints)
    estimate = rundir.estimate_run_bytes(results["params"]["total"], results["params"]["trainable"], 2)
    assert peak <= estimate <= 2 * peak, (peak, estimate)