"""An export folder ready to serve: its own preprocessing (tokenizer / image processor / feature extractor and the
run's settings, as `hftl predict` uses them) in front of a backend, and top-k labels behind it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hftl.deploy.backends import BACKENDS, load_backend
from hftl.deploy.export import load_preprocessing
from hftl.deploy.runtime import softmax
from hftl.errors import DataError, HftlError
from hftl.serve.errors import invalid_input
from hftl.serve.limits import check_inputs, serves
from hftl.serve.settings import Limits, ServeSettings


class ServedModel:
    """Raw inputs -> model features -> logits -> ``[(label, score), ...]`` per input.

    Attributes:
        name: The run's (or export folder's) name, shown on the page and in responses.
        modality: The run's modality name (what ``/predict`` accepts).
        takes_files: Inputs are files (bytes: base64 in JSON, or multipart uploads), else JSON strings.
        upload_types: MIME types the page's file picker offers (files only).
        labels: Class names, by class index.
        task: What ``/predict`` answers (``hftl.serve.speech.ServedRecognizer`` is the other kind).
    """

    task = "classification"

    def __init__(self, settings: ServeSettings):
        self.export_dir = Path(settings.export_dir)
        self.cfg, self._modality, self._processor = load_preprocessing(self.export_dir)
        self.modality: str = self.cfg.modality
        if not serves(self._modality):
            raise HftlError(
                f"hftl serve cannot check {self.modality!r} inputs (that modality defines no check_served_input); "
                f"{self.export_dir} is a {self.modality!r} model"
            )
        self.takes_files = self._modality.reads_files
        self.upload_types = self._modality.upload_types
        # RUN_DIR/onnx (or RUN_DIR/openvino) is named after its run
        exports = {spec.folder for spec in BACKENDS.values()}
        self.name = self.export_dir.parent.name if self.export_dir.name in exports else self.export_dir.name
        self.backend_name = f"{settings.backend}-{'int8' if settings.quantized else settings.precision}"
        self._backend = load_backend(
            settings.backend, self.export_dir, quantized=settings.quantized, num_threads=settings.num_threads,
            spin=settings.spin, precision=settings.precision,
        )
        # An fp32 onnxruntime graph with a dynamic sequence axis runs each batch at its longest text (rounded up to 8)
        # instead of the export's fixed text.max_length: the attention mask hides the padding, so the logits are the
        # same as `hftl predict`'s (max |diff| 0.0 on the MiniLM serve_demo run) at a fraction of the cost for short
        # texts (24 instead of 128 tokens: 7x less per batch of 32 there). Not int8: onnxruntime's dynamic
        # quantisation takes one activation scale over the whole tensor, padding included, so trimming it moves the
        # logits (up to 0.06 there) away from `hftl predict`'s.
        self._trim_padding = (
            settings.backend == "onnxruntime" and not settings.quantized and dynamic_sequence(self._backend.session)
        )
        id2label = self._backend.id2label
        self.labels: list[str] = [id2label.get(i, f"LABEL_{i}") for i in range(len(id2label))]

    def check(self, values: list[Any], limits: Limits) -> list[Any]:
        """A request's raw inputs checked as the modality checks them, before any decoding (413 / 422 otherwise)."""
        return check_inputs(self._modality, values, limits)

    def encode(self, values: list[Any]) -> dict[str, np.ndarray]:
        """Preprocess a batch's raw inputs (texts, or ``{"bytes": ...}`` for images and audio) with one call.

        Raises:
            RequestRejected: 422 when an input cannot be decoded (the message names it by its index).
        """
        try:
            return self._modality.encode(self._processor, self.cfg, values)
        except DataError as err:
            raise invalid_input(str(err)) from err

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._backend.logits(features)

    def run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """The batcher's model call. Padding is trimmed here, not in :meth:`encode`: encoded requests keep the export's
        fixed shapes, so the batcher can stack requests preprocessed one by one into a batch."""
        return self.logits(trim_padding(dict(features)) if self._trim_padding else features)

    def answer(self, outputs: np.ndarray, top_k: int) -> dict[str, Any]:
        """The response body's model part: the ``top_k`` labels with scores per input."""
        k = min(top_k, len(self.labels))
        return {"predictions": [[{"label": label, "score": score} for label, score in row] for row in self.top_k(outputs, k)]}

    def top_k(self, logits: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely labels per row, best first, with softmax scores (as ``hftl predict`` scores)."""
        probs = softmax(logits)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return [[(self.labels[int(i)], float(row[i])) for i in idx] for idx, row in zip(order, probs, strict=True)]


def dynamic_sequence(session: Any) -> bool:
    """Whether every 2-d input of an onnxruntime session has a named (dynamic) sequence axis."""
    shapes = [i.shape for i in session.get_inputs() if len(i.shape) == 2]
    return bool(shapes) and all(isinstance(shape[1], str) for shape in shapes)


def trim_padding(features: dict[str, np.ndarray], multiple: int = 8) -> dict[str, np.ndarray]:
    """Cut the columns after the batch's last real token (rounded up to ``multiple``) from every (rows, tokens) input.

    Only trailing columns that no row attends to go, so left-padded batches and inputs without an attention mask
    come back whole.
    """
    mask = features.get("attention_mask")
    if mask is None or mask.ndim != 2:
        return features
    used = np.flatnonzero(mask.any(axis=0))
    width = mask.shape[1]
    keep = min(width, -(-(int(used[-1]) + 1) // multiple) * multiple) if used.size else width
    return {k: v[:, :keep] if v.ndim == 2 and v.shape[1] == width else v for k, v in features.items()}
