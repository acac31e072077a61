"""The runtimes that serve an export: one table, one small interface, read by the serving default
(hftl.deploy.default_variant), `hftl predict` (hftl.deploy.export.load_classifier) and `hftl serve`.

A backend is anything with ``id2label`` and ``logits(features) -> (rows, labels) float32``, where ``features`` are
the modality's numpy inputs keyed by graph input name. A runtime plugs in with one ``BACKENDS`` row: the folder its
model lives in under a run, a file only that folder has, the variants it runs (with the names their timings and
scores carry in the export's report), and a loader. The batcher, limits and HTTP layer never look past this interface.
``torch`` is the run's own PyTorch model (RUN_DIR/model): no export, so nothing measured picks its variant.
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
    folder: str  # RUN_DIR/<folder> holds this runtime's model (`hftl export RUN_DIR [--backend openvino]`; model/: training)
    marker: str  # the fp32 model file only this runtime's folder has
    # the variants it runs (fp32, int8, bf16) -> the name their latency and accuracy carry in the export's
    # export_report.json (None: no export report times it)
    variants: Mapping[str, str | None]
    load: Callable[[Path, bool, int | None, bool, str], Backend]  # (export_dir, quantized, num_threads, spin, precision)
    where: str  # where its model comes from, for messages that point to it
    install: str = ""  # the extra to install when the runtime is missing
    exported: bool = True  # its folder is written by `hftl export` (False: the run's own model, from training)


def _onnxruntime(export_dir: Path, quantized: bool, num_threads: int | None, spin: bool, precision: str) -> Backend:
    from hftl.deploy.runtime import OnnxClassifier

    if precision != "fp32":  # ServeSettings refuses it first; a direct caller gets the same answer
        raise ConfigError(f"onnxruntime has no {precision} path on CPU: serve its fp32 or int8 (--quantized) model")
    return OnnxClassifier(export_dir, quantized=quantized, num_threads=num_threads, allow_spinning=spin)


def _openvino(export_dir: Path, quantized: bool, num_threads: int | None, spin: bool, precision: str) -> Backend:
    from hftl.deploy.openvino import OpenVinoClassifier

    return OpenVinoClassifier(export_dir, quantized=quantized, precision=precision, num_threads=num_threads)


def _torch(model_dir: Path, quantized: bool, num_threads: int | None, spin: bool, precision: str) -> Backend:
    from hftl.deploy.torch_backend import TorchClassifier

    if quantized:
        raise ConfigError("the run's PyTorch model has no int8 copy: --quantized is for exports (RUN/onnx, RUN/openvino)")
    return TorchClassifier(model_dir, precision="no" if precision == "fp32" else precision, num_threads=num_threads)


BACKENDS: dict[str, BackendSpec] = {
    "onnxruntime": BackendSpec(folder="onnx", marker="model.onnx", load=_onnxruntime,
                               variants={"fp32": "onnx_fp32", "int8": "onnx_int8"},
                               where="RUN_DIR/onnx, written by `hftl export RUN_DIR`"),
    "openvino": BackendSpec(folder="openvino", marker="openvino_model.xml", load=_openvino,
                            variants={"fp32": "openvino_fp32", "bf16": "openvino_bf16", "int8": "openvino_int8"},
                            where="RUN_DIR/openvino, written by `hftl export RUN_DIR --backend openvino`",
                            install="pip install 'hftl[openvino]'"),
    # bf16: autocast, where the CPU has bf16 instructions (hftl.run.precision refuses it elsewhere)
    "torch": BackendSpec(folder="model", marker="model.safetensors", load=_torch, variants={"fp32": None, "bf16": None},
                         where="the run's PyTorch model, RUN_DIR/model", exported=False),
}  # fmt: skip


def backend_of(export_dir: Path) -> str:
    """The runtime an export folder was written for, from the model file in it."""
    exports = {name: spec for name, spec in BACKENDS.items() if spec.exported}
    for name, spec in exports.items():
        if (Path(export_dir) / spec.marker).is_file():
            return name
    markers = ", ".join(spec.marker for spec in exports.values())
    raise HftlError(f"{export_dir} holds no model file a serving runtime reads (looked for {markers})")


def load_backend(
    name: str, export_dir: Path, *, quantized: bool, num_threads: int | None, spin: bool = False, precision: str = "fp32"
) -> Backend:
    """Open ``export_dir``'s fp32 (or int8; or with ``precision`` bf16 on OpenVINO and PyTorch) model on the runtime
    ``name`` (``spin``: ServeSettings.spin).

    Raises:
        ConfigError: ``name`` is not a known backend.
        FileNotFoundError: the model file is missing (the message names it).
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name].load(Path(export_dir), quantized, num_threads, spin, precision)
