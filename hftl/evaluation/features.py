"""Pooled frozen features of a classifier's backbone, for any modality: batched, no gradients, no RNG drawn.

The backbone is the module under the classification head (``bert``, ``dinov2``, Whisper's ``encoder``), found
through a PEFT wrapper when there is one, so LoRA adapters are applied as they are in the classifier's forward.
Pooling follows what each modality's backbone was trained to expose:
    text    mean over real tokens (attention mask), the sentence-transformers pooling of MiniLM;
    vision  the CLS token, DINOv2's k-NN protocol;
    audio   mean over encoder frames, what Whisper's audio classifier pools.
Layer L (the last) is the backbone's output (``last_hidden_state``, with its final norm where the architecture has
one); layer i < L is ``hidden_states[i]`` (0: the embeddings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hftl.errors import ModelError

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config
    from hftl.modalities import Modality

def backbone_of(model: torch.nn.Module) -> torch.nn.Module:
    """The feature extractor under a classifier's head (a PeftModel is looked through, its adapters kept active)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    if isinstance(inner, torch.nn.Module):
        return inner
    encoder = getattr(model, "encoder", None)  # e.g. WhisperForAudioClassification (its prefix "model" is the seq2seq one)
    if isinstance(encoder, torch.nn.Module):
        return encoder
    raise ModelError(f"cannot find the backbone of {type(model).__name__}: no '{prefix}' or 'encoder' module")


def num_layers(model: torch.nn.Module) -> int:
    """Hidden layers of the backbone (from its config)."""
    config = backbone_of(model).config
    for key in ("num_hidden_layers", "encoder_layers"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise ModelError(f"{type(config).__name__} names no layer count (num_hidden_layers / encoder_layers)")


def spread_layers(total: int, count: int = 4) -> list[int]:
    """``count`` layers spread evenly up to the last, e.g. 12 -> [3, 6, 9, 12]."""
    return sorted({max(1, round(total * (i + 1) / count)) for i in range(count)})


def _pool(hidden: torch.Tensor, pooling: str, mask: torch.Tensor | None) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if mask is None:
        return hidden.mean(dim=1)
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _batches(dataset: Dataset, batch_size: int):
    """Rows of a (prepared) dataset in slices: one transform call per slice, and no DataLoader (it would draw a seed
    from torch's global RNG, changing the dropout masks of a training run that follows)."""
    for start in range(0, len(dataset), batch_size):
        columns = dataset[start : start + batch_size]
        size = len(next(iter(columns.values())))
        yield [{key: values[i] for key, values in columns.items()} for i in range(size)]


@torch.no_grad()
def extract(
    model: torch.nn.Module,
    prepared: Dataset,
    collate: Callable[[list[dict]], dict],
    pooling: str,
    layers: list[int] | None = None,
    batch_size: int = 32,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Pooled features of the backbone of ``model`` on a prepared split, and the split's labels.

    Args:
        model: A classifier (or a PeftModel on one).
        prepared: Rows as ``Modality.prepare`` makes them (model inputs + ``labels``).
        collate: The modality's collator.
        pooling: ``"mean"`` or ``"cls"`` (each modality's ``pooling``).
        layers: Backbone layers to pool (see the module docstring); default: the last only.

    Returns:
        ({layer: (n, hidden) float32 array}, (n,) int labels).
    """
    backbone = backbone_of(model)
    last = num_layers(model)
    layers = [last] if layers is None else [last if layer in (-1, last) else layer for layer in layers]
    if any(not 0 <= layer <= last for layer in layers):
        raise ModelError(f"layers {layers}: the backbone has layers 0..{last}")
    want_hidden = any(layer != last for layer in layers)
    device = next(backbone.parameters()).device
    was_training = model.training
    model.eval()
    pooled: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    labels = []
    try:
        for rows in _batches(prepared, batch_size):
            batch = collate(rows)
            labels.append(batch.pop("labels").numpy())
            inputs = {k: v.to(device) for k, v in batch.items()}
            out = backbone(**inputs, output_hidden_states=want_hidden, return_dict=True)
            mask = inputs.get("attention_mask")
            for layer in layers:
                hidden = out.last_hidden_state if layer == last else out.hidden_states[layer]
                pooled[layer].append(_pool(hidden.float(), pooling, mask).cpu().numpy())
    finally:
        model.train(was_training)
    features = {layer: np.concatenate(chunks) for layer, chunks in pooled.items()}
    return features, np.concatenate(labels).astype(np.int64)


def split_features(
    model: torch.nn.Module,
    modality: Modality,
    processor: Any,
    cfg: Config,
    split: Dataset,
    max_samples: int | None = None,
    layers: list[int] | None = None,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Features of a raw split (``cfg.data`` columns), capped to ``max_samples`` rows (stratified, ``data.split_seed``)."""
    from hftl.run.data import stratified_sample

    if max_samples is not None and len(split) > max_samples:
        labels = np.asarray(split[cfg.data.label_column])
        split = split.select(stratified_sample(labels, max_samples, cfg.data.split_seed))
    prepared = modality.prepare(split, processor, cfg, train=False)
    return extract(
        model, prepared, modality.collator(processor, cfg), modality.pooling, layers, cfg.evaluation.batch_size
    )


def load_backbone(cfg: Config, modality: Modality, label_names: list[str]) -> tuple[torch.nn.Module, Any]:
    """The pretrained classifier of ``cfg.model.source`` (fresh head, whatever ``method`` says) and its processor."""
    from hftl.config import MethodConfig, PushConfig
    from hftl.run.models import build_model, load_processor

    # A default push section: the run's may be tied to its method (push.what=adapter needs lora).
    cfg = dataclasses.replace(cfg, method=MethodConfig(name="full"), push=PushConfig())
    built = build_model(cfg, modality, label_names)
    return built.model.eval(), load_processor(cfg, modality, built)
