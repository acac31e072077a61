"""The runtimes the server can run an export on: one table, one small interface.

A backend is anything with ``id2label`` and ``logits(features) -> (rows, labels) float32``, where ``features`` are
the modality's numpy inputs keyed by graph input name. A runtime plugs in with one ``BACKENDS`` row: the folder its
export lives in under a run, a file only its export has, and a loader. The batcher, limits and HTTP layer never look
past this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hftl.errors import ConfigError, HftlError

if TYPE_CHECKING:
    import numpy as np

AUTO = "auto"


class Backend(Protocol):
    id2label: dict[int, str]

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class BackendSpec:
    folder: str  # RUN_DIR/<folder> holds this runtime's export (`hftl export RUN_DIR [--backend openvino]`)
    marker: str  # the fp32 model file only this runtime's export has
    load: Callable[[Path, bool, int | None, bool, str], Backend]  # (export_dir, quantized, num_threads, spin, precision)
    install: str = ""  # the extra to install when the runtime is missing


def _onnxruntime(export_dir: Path, quantized: bool, num_threads: int | None, spin: bool, precision: str) -> Backend:
    from hftl.deploy.runtime import OnnxClassifier

    if precision != "fp32":  # ServeSettings refuses it first; a direct caller gets the same answer
        raise ConfigError(f"onnxruntime has no {precision} path on CPU: serve its fp32 or int8 (--quantized) model")
    return OnnxClassifier(export_dir, quantized=quantized, num_threads=num_threads, allow_spinning=spin)


def _openvino(export_dir: Path, quantized: bool, num_threads: int | None, spin: bool, precision: str) -> Backend:
    from hftl.deploy.openvino import OpenVinoClassifier

    # fp32: the f32 inference hint, so the fp32 IR answers like PyTorch (OpenVINO would run bf16 on AMX CPUs unasked);
    # bf16: the same IR under the bf16 hint; --quantized serves the NNCF int8 IR.
    hint = "bf16" if precision == "bf16" else "f32"
    return OpenVinoClassifier(export_dir, quantized=quantized, precision=hint, num_threads=num_threads)


BACKENDS: dict[str, BackendSpec] = {
    "onnxruntime": BackendSpec(folder="onnx", marker="model.onnx", load=_onnxruntime),
    "openvino": BackendSpec(folder="openvino", marker="openvino_model.xml", load=_openvino, install="pip install 'hftl[openvino]'"),
}  # fmt: skip


def backend_of(export_dir: Path) -> str:
    """The runtime an export folder was written for, from the model file in it."""
    for name, spec in BACKENDS.items():
        if (Path(export_dir) / spec.marker).is_file():
            return name
    markers = ", ".join(spec.marker for spec in BACKENDS.values())
    raise HftlError(f"{export_dir} holds no model file a serving runtime reads (looked for {markers})")


def load_backend(
    name: str, export_dir: Path, *, quantized: bool, num_threads: int | None, spin: bool = False, precision: str = "fp32"
) -> Backend:
    """Open ``export_dir``'s fp32 (or int8; or with ``precision`` bf16 on OpenVINO) model on the runtime ``name``
    (``spin``: ServeSettings.spin).

    Raises:
        ConfigError: ``name`` is not a known backend.
        FileNotFoundError: the model file is missing (the message names it).
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name].load(Path(export_dir), quantized, num_threads, spin, precision)
