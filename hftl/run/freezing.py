"""Freezing the backbone and thawing it again: the linear probe, and LP-FT's probe phase."""

from __future__ import annotations

import torch


def freeze_backbone(model: torch.nn.Module, heads: list[str]) -> dict[str, float]:
    """Only the head modules train; the backbone's dropout goes off. Returns the dropout rates it replaced.

    A frozen backbone is a fixed feature extractor: without dropout its features are the ones the head will see
    at test time (and a step is ~2x faster).
    """
    for name, param in model.named_parameters():
        param.requires_grad = name.split(".")[0] in heads
    replaced = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and name.split(".")[0] not in heads:
            replaced[name], module.p = module.p, 0.0
    return replaced


def unfreeze(model: torch.nn.Module, dropout_rates: dict[str, float]) -> None:
    """Every weight trains again and the backbone's dropout is back (what freeze_backbone returned)."""
    for param in model.parameters():
        param.requires_grad = True
    modules = dict(model.named_modules())
    for name, rate in dropout_rates.items():
        modules[name].p = rate
