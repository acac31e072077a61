"""Files that are never half-written: atomic text/JSON writes and folder swaps (config, zoo, run dir, compare)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


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
    """Strict JSON (a NaN is an error, not an invalid file), written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def replace_dir(new_dir: Path, final: Path) -> None:
    """Swap a fully written folder into place; the old one is moved aside first and restored on failure.

    rename(2) cannot replace a non-empty directory, so this is two renames, each atomic.
    """
    new_dir, final = Path(new_dir), Path(final)
    if not final.exists():
        os.replace(new_dir, final)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    backup.rmdir()  # only the unique name is wanted
    os.replace(final, backup)
    try:
        os.replace(new_dir, final)
    except BaseException:
        os.replace(backup, final)
        raise
    shutil.rmtree(backup, ignore_errors=True)
