"""What a finished run's PyTorch model predicts, with the run's own preprocessing (a reference for other backends)."""

from __future__ import annotations

from pathlib import Path


def torch_labels(run_dir: Path, inputs: list) -> list[str]:
    """What the run's PyTorch model (RUN/model) predicts for raw inputs, with the run's own preprocessing."""
    import torch

    from hftl.config import load_config
    from hftl.modalities import get_modality

    cfg = load_config(run_dir / "config.yaml")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    model = modality.auto_model().from_pretrained(run_dir / "model").eval()
    features = modality.encode(processor, cfg, inputs)
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in features.items()}).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)]
