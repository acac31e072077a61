"""A disk cache for the source backbone's features on a fixed probe set.

Every run of a grid with the same backbone and probe computes the same "before" features for the forgetting probe;
the cache computes them once. The key covers everything the features depend on: the model folder's files (name, size,
modification time), the probe data set's folder, the rows, and the input settings; a source that is not a local
folder (a Hub id, an adapter) is never cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import hftl
from hftl.zoo import hftl_home

logger = logging.getLogger("hftl")


def folder_fingerprint(path: str | Path) -> list[tuple[str, int, int]] | None:
    """(name, size, mtime_ns) of each file directly in a folder; None when it is not a folder."""
    path = Path(path)
    if not path.is_dir():
        return None
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file())


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps({"hftl": hftl.__version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_arrays(
    key: str | None, compute: Callable[[], dict[str, np.ndarray]], folder: Path | None = None
) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, read from the cache when ``key`` was computed before (``key=None``: no caching)."""
    if key is None:
        return compute()

    folder = folder or hftl_home() / "cache" / "features"
    path = folder / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError) as err:  # a damaged file is recomputed, not trusted
            logger.warning("feature cache %s unreadable (%s): recomputing", path, err)
    arrays = compute()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # concurrent runs write the same bytes; the last rename wins
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return arrays
