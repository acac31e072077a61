"""PyTorch inference for a saved classifier (RUN_DIR/model), in fp32 or bf16 autocast, with OnnxClassifier's interface."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hftl.deploy.runtime import softmax


class TorchClassifier:
    """A transformers classifier folder run with PyTorch eager on the CPU.

    ``precision`` "bf16" runs the forward under bf16 autocast, refused (ConfigError) where the CPU has no bf16
    instructions; "auto" resolves as ``training.mixed_precision`` does (hftl.run.precision).
    """

    def __init__(self, model_dir: Path, *, precision: str = "no", num_threads: int | None = None):
        import torch

        from hftl.deploy.parity import load_torch_model
        from hftl.run import precision as precisions

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"model config not found: {self.model_dir / 'config.json'}")
        self.precision = precisions.resolve(precision, "cpu")
        self.model = load_torch_model(self.model_dir)
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.input_names = list(self.model.forward.__code__.co_varnames)
        if num_threads:
            torch.set_num_threads(num_threads)

    def logits(self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        import torch

        from hftl.run.precision import autocast

        names = [k for k in features if k in self.input_names]
        n = len(features[names[0]])
        step = batch_size or max(n, 1)
        chunks = []
        with torch.inference_mode(), autocast(self.precision):
            for i in range(0, n, step):
                batch = {k: torch.as_tensor(np.asarray(features[k])[i : i + step]) for k in names}
                chunks.append(self.model(**batch).logits.float().numpy())
        return np.concatenate(chunks)

    def classify(self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> list[tuple[str, float]]:
        probs = softmax(self.logits(features, batch_size=batch_size))
        return [(self.id2label.get(int(i), f"LABEL_{int(i)}"), float(p[i])) for i, p in zip(probs.argmax(-1), probs, strict=True)]
