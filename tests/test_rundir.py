"""The output directory is checked before training: a folder, writable, with room for what the run writes."""

from __future__ import annotations

import os
import shutil

import pytest

from hftl.errors import RunDirError
from hftl.run import rundir


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(RunDirError, match="exists and is not a folder"):
        rundir.prepare_run_dir(target, overwrite=False, resuming=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_dir_is_refused(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    target.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="is not writable"):
            rundir.prepare_run_dir(target, overwrite=False, resuming=False)
    finally:
        target.chmod(0o700)


def test_too_little_free_space_is_refused_naming_the_way_out(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    rundir.check_free_space(tmp_path, free // 2)
    with pytest.raises(RunDirError, match=r"GiB free, but this run writes about .*training\.save_total_limit"):
        rundir.check_free_space(tmp_path, free + 2**30)


def test_space_estimate_counts_checkpoints_optimizer_state_and_outputs():
    # 100 weights, 10 trainable, 2 checkpoints kept (+1 while the next is written):
    # 3 x (100 weights + 2 x 10 moments + 10 best) + 100 merged + 10 adapter, 4 bytes each
    assert rundir.estimate_run_bytes(100, 10, 2) == 4 * (3 * 130 + 110)
    assert rundir.estimate_run_bytes(100, 100, 2) > rundir.estimate_run_bytes(100, 10, 2)  # full > LoRA
