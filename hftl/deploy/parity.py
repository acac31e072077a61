"""The same inputs through PyTorch, ORT fp32 and ORT int8: logits, accuracy, parity, NaN flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hftl.deploy.runtime import FP32_FILE, INT8_FILE, make_session, run_logits, session_feed
from hftl.modalities import get_modality, registered_modalities


def task_auto_classes() -> dict[str, str]:
    """ONNX task -> transformers Auto class, from the registered modalities."""
    return {get_modality(name).onnx_task: get_modality(name).auto_model_name for name in registered_modalities()}


def load_torch_model(model_dir: Path, *, task: str | None = None, auto_class: str | None = None):
    """Load the PyTorch model in eval mode: ``auto_class`` name, else from ``task``, else config.architectures."""
    import transformers

    tasks = task_auto_classes()
    name = auto_class or tasks.get(task or "")
    if name is None and task is not None:
        raise ValueError(f"unknown task {task!r}; pass auto_class or one of {sorted(tasks)}")
    if name is None:
        architectures = transformers.AutoConfig.from_pretrained(model_dir).architectures or []
        if not architectures:
            raise ValueError(f"{model_dir}/config.json names no architecture; pass task or auto_class")
        name = architectures[0]
    import hftl.models  # hftl's own architectures (EfficientNet-Lite, ...) are named by their own classes

    model_class = getattr(transformers, name, None) or getattr(hftl.models, name)
    return model_class.from_pretrained(model_dir).eval()


def _accuracy(logits: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    return float((logits.argmax(-1) == np.asarray(labels)).mean())


def evaluate_backends(
    model_dir: Path,
    onnx_dir: Path,
    features: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    *,
    batch_size: int = 32,
    task: str | None = None,
    auto_class: str | None = None,
) -> dict:
    """Run PyTorch, ORT fp32 and (if ``model_quantized.onnx`` exists) ORT int8 over the same inputs.

    Returns:
        ``logits``/``accuracy``/``nonfinite`` per backend (``torch``, ``onnx_fp32``, ``onnx_int8``), ``parity``
        (fp32/int8 max abs logit diff and prediction agreement vs torch) and ``num_samples``.
    """
    import torch

    onnx_dir = Path(onnx_dir)
    fp32 = make_session(onnx_dir / FP32_FILE)
    sessions = {"onnx_fp32": fp32}
    if (onnx_dir / INT8_FILE).is_file():
        sessions["onnx_int8"] = make_session(onnx_dir / INT8_FILE)
    n = len(features[fp32.get_inputs()[0].name])

    model = load_torch_model(model_dir, task=task, auto_class=auto_class)
    chunks = []
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            # Torch gets exactly the graph's inputs, cast to the graph's dtypes.
            feed = session_feed(fp32, features, slice(i, i + batch_size))
            chunks.append(model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.float().numpy())
    logits = {"torch": np.concatenate(chunks)}
    for name, sess in sessions.items():
        logits[name] = run_logits(sess, features, batch_size=batch_size)

    def diff(name: str) -> float | None:
        return float(np.abs(logits[name] - logits["torch"]).max()) if name in logits else None

    def agreement(name: str) -> float | None:
        if name not in logits:
            return None
        return float((logits[name].argmax(-1) == logits["torch"].argmax(-1)).mean())

    return {
        "num_samples": n,
        "logits": logits,
        "accuracy": {name: _accuracy(lg, labels) for name, lg in logits.items()},
        "nonfinite": {name: bool(not np.isfinite(lg).all()) for name, lg in logits.items()},
        "parity": {
            "fp32_max_abs_diff": diff("onnx_fp32"),
            "int8_max_abs_diff": diff("onnx_int8"),
            "fp32_agreement": agreement("onnx_fp32"),
            "int8_agreement": agreement("onnx_int8"),
        },
    }
