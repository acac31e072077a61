"""Checkpoint folders: ``RUN/checkpoints/step_000042``, written under a temporary name and renamed when complete.

A folder only counts as a checkpoint once its rename happened, so a run killed while saving never leaves a
half-written checkpoint that ``resume_from=latest`` would pick up.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from hftl.errors import ConfigError
from hftl.rundir import replace_dir

_NAME = re.compile(r"^step_(\d+)$")


def checkpoints_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return checkpoints_root(run_dir) / f"step_{step:06d}"


def temporary_dir(final: Path, clear: bool = True) -> Path:
    """Where a checkpoint is written before it is committed; cleared of a killed run's leftovers if asked."""
    tmp = final.with_name(f".tmp-{final.name}")
    if clear:
        shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def commit(tmp: Path, final: Path) -> None:
    """Make a fully written temporary folder the checkpoint (replacing an older one of the same step)."""
    replace_dir(tmp, final)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def prune(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def resolve(run_dir: Path, resume_from: str) -> Path:
    """'latest' -> the newest complete checkpoint of run_dir; otherwise a checkpoint folder path."""
    if resume_from == "latest":
        found = list_checkpoints(run_dir)
        if not found:
            raise ConfigError(f"training.resume_from=latest: no complete checkpoint under {checkpoints_root(run_dir)}")
        return found[-1]
    path = Path(resume_from).expanduser()
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"training.resume_from: {path} is not a complete hftl checkpoint (no trainer_state.json)")
    return path
