"""The run directory: what it holds, safe writes into it, and the check that nothing finished gets overwritten.

    RUN/config.yaml        the fully resolved config
    RUN/results.json       run info, params, data sizes, train info, eval and test metrics
    RUN/adapter/           PEFT adapter (method=lora)
    RUN/model/             merged model + tokenizer/processor, ready for from_pretrained
    RUN/checkpoints/       accelerate save_state folders for resume
    RUN/logs/              tracker output (TensorBoard event files)
    RUN/onnx/              after `hftl export`
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hftl.errors import RunDirError

RESULTS = "results.json"
CONFIG = "config.yaml"
_ARTEFACTS = ("results.json", "adapter", "model", "checkpoints", "logs", "onnx", "config.yaml")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place (the old one goes only after the new one is complete)."""
    old = final.with_name(f".old-{final.name}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def prepare_run_dir(run_dir: Path, *, overwrite: bool, resuming: bool) -> None:
    """Create run_dir, refusing to clobber a finished run unless asked to.

    Raises:
        RunDirError: run_dir holds a finished run (and neither overwrite nor resume was asked), or is not writable.
    """
    run_dir = Path(run_dir)
    if (run_dir / RESULTS).exists() and not (overwrite or resuming):
        raise RunDirError(
            f"{run_dir} holds a finished run ({RESULTS} exists). Choose another output.dir, "
            "or pass output.overwrite=true to replace it."
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"output.dir {run_dir} exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(run_dir, os.W_OK):
        raise RunDirError(f"output.dir {run_dir} is not writable")
    if overwrite and not resuming:
        for name in _ARTEFACTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
