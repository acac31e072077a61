"""onnxruntime inference for exported classifiers (used by ``predict``, the export gate and benchmarks).

Modality-agnostic: a classifier is fed whatever the graph declares (``input_ids``/``attention_mask`` for text,
``pixel_values`` for vision, ``input_features``/``input_values`` for audio), already preprocessed as numpy arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"

# ONNX tensor type strings -> numpy dtypes; features are cast to what the graph declares
# (tokenizers may hand out int32 where BERT graphs want int64).
_ORT_DTYPES = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(bool)": np.bool_,
}


def default_num_threads() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_session(model_path: Path, *, num_threads: int | None = None, allow_spinning: bool = True):
    """Open a CPU onnxruntime session with a fixed thread count.

    Args:
        model_path: The ``.onnx`` file.
        num_threads: intra-op threads (inter-op is 1: these graphs are sequential); None = all usable cores.
        allow_spinning: Let idle ORT worker threads busy-wait (ORT's default): faster calls, but the spinning threads
            steal CPU from whatever runs right after, so benchmarks time each backend in blocks (hftl.deploy.latency).
    """
    import onnxruntime as ort

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {model_path}")
    opts = session_options(num_threads=num_threads, allow_spinning=allow_spinning)
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])


def session_options(*, num_threads: int | None = None, allow_spinning: bool = True):
    """onnxruntime SessionOptions as :func:`make_session` sets them (also handed to optimum's ORTModel classes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads or default_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


def session_feed(
    session, features: Mapping[str, np.ndarray], rows: slice | None = None
) -> dict[str, np.ndarray]:
    """Select (and cast) the features the graph declares; extra features are ignored.

    Raises:
        KeyError: A graph input is missing from ``features``.
    """
    feed = {}
    for node in session.get_inputs():
        if node.name not in features:
            raise KeyError(f"ONNX graph needs input {node.name!r}; features have {sorted(features)}")
        array = np.asarray(features[node.name])
        if rows is not None:
            array = array[rows]
        dtype = _ORT_DTYPES.get(node.type)
        feed[node.name] = np.ascontiguousarray(array, dtype=dtype) if dtype is not None else array
    return feed


def run_logits(session, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
    """Run ``session`` over all rows of ``features`` (in batches) and return the ``logits`` output as float32."""
    outputs = [o.name for o in session.get_outputs()]
    out_name = "logits" if "logits" in outputs else outputs[0]
    first = session.get_inputs()[0].name
    if first not in features:
        raise KeyError(f"ONNX graph needs input {first!r}; features have {sorted(features)}")
    n = len(features[first])
    step = batch_size or max(n, 1)
    chunks = [
        session.run([out_name], session_feed(session, features, slice(i, i + step)))[0]
        for i in range(0, n, step)
    ]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row max so large logits do not overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class OnnxClassifier:
    """A classifier exported by :func:`hftl.deploy.onnx.export_and_check`, run with onnxruntime on CPU.

    Attributes:
        input_names: Graph inputs, in graph order.
        id2label: Class index -> label name, from the ``config.json`` optimum wrote next to the model.
    """

    def __init__(
        self, onnx_dir: Path, *, quantized: bool = False, num_threads: int | None = None, allow_spinning: bool = True
    ):
        """Load ``model.onnx`` (or ``model_quantized.onnx``) and ``config.json`` from ``onnx_dir``
        (``allow_spinning``: see :func:`make_session`).

        Raises:
            FileNotFoundError: The model or ``config.json`` is missing (the message names the path).
        """
        self.onnx_dir = Path(onnx_dir)
        self.model_path = self.onnx_dir / (INT8_FILE if quantized else FP32_FILE)
        config_path = self.onnx_dir / "config.json"
        if not self.model_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.model_path}")
        if not config_path.is_file():
            raise FileNotFoundError(f"model config not found: {config_path}")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        # JSON object keys are strings; transformers writes {"0": "neg", ...}.
        self.id2label: dict[int, str] = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.session = make_session(self.model_path, num_threads=num_threads, allow_spinning=allow_spinning)
        self.input_names: list[str] = [i.name for i in self.session.get_inputs()]

    def logits(self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        """Logits ``(rows, num_labels)`` for preprocessed features keyed by graph input name."""
        return run_logits(self.session, features, batch_size=batch_size)

    def classify(
        self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None
    ) -> list[tuple[str, float]]:
        """Top label and its softmax score for each row."""
        probs = softmax(self.logits(features, batch_size=batch_size))
        top = probs.argmax(axis=-1)
        return [
            (self.id2label.get(int(i), f"LABEL_{int(i)}"), float(p[i]))
            for i, p in zip(top, probs, strict=True)
        ]
