"""Checkpoint folders: ``RUN/checkpoints/step_000042``, written under a temporary name and renamed when complete.

A folder only counts as a checkpoint once its rename happened and it holds its completion marker (the trainer
state, written last), so a run killed while saving never leaves a half-written checkpoint that
``resume_from=latest`` would pick up: a leftover ``.tmp-step_*`` folder or a ``step_*`` folder without the marker
(copied by hand, or from a file system whose rename is not atomic) is ignored.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from hftl.errors import ConfigError
from hftl.files import replace_dir

logger = logging.getLogger("hftl")

_NAME = re.compile(r"^step_(\d+)$")
STATE_FILE = "trainer_state.json"  # written last into a checkpoint: its completion marker


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


def is_complete(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def _step_folders(run_dir: Path) -> list[Path]:
    """Every step_* folder, complete or not, oldest first."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    return [p for p in _step_folders(run_dir) if is_complete(p)]


def prune(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def resolve(run_dir: Path, resume_from: str) -> Path:
    """'latest' -> the newest complete checkpoint of run_dir; otherwise a checkpoint folder path."""
    if resume_from == "latest":
        folders = _step_folders(run_dir)
        found = [p for p in folders if is_complete(p)]
        for path in folders[folders.index(found[-1]) + 1 if found else 0 :]:
            logger.warning("%s is incomplete (no %s): not resuming from it", path, STATE_FILE)
        if not found:
            raise ConfigError(
                f"training.resume_from=latest: no complete checkpoint under {checkpoints_root(run_dir)}; "
                "run without training.resume_from to start afresh"
            )
        return found[-1]
    path = Path(resume_from).expanduser()
    if not is_complete(path):
        raise ConfigError(
            f"training.resume_from: {path} is not a complete hftl checkpoint (no {STATE_FILE}); "
            "name a checkpoints/step_* folder of a run, or use training.resume_from=latest"
        )
    return path
