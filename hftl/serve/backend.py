"""The runtimes the server can run an export on: one table, one small interface.

A backend is anything with ``id2label`` and ``logits(features) -> (rows, labels) float32``, where ``features`` are
the modality's numpy inputs keyed by graph input name. Another runtime (OpenVINO, ...) plugs in by adding a loader
to ``BACKENDS``; the batcher, limits and HTTP layer never look past this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hftl.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


class Backend(Protocol):
    id2label: dict[int, str]

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray: ...


def _onnxruntime(export_dir: Path, quantized: bool, num_threads: int | None) -> Backend:
    from hftl.deploy.runtime import OnnxClassifier

    return OnnxClassifier(export_dir, quantized=quantized, num_threads=num_threads)


# name -> loader(export_dir, quantized, num_threads)
BACKENDS: dict[str, Callable[[Path, bool, int | None], Backend]] = {"onnxruntime": _onnxruntime}


def load_backend(name: str, export_dir: Path, *, quantized: bool, num_threads: int | None) -> Backend:
    """Open ``export_dir``'s fp32 (or int8) model on the runtime ``name``.

    Raises:
        ConfigError: ``name`` is not a known backend.
        FileNotFoundError: the model file is missing (the message names it).
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](Path(export_dir), quantized, num_threads)
