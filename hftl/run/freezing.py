"""Freezing the backbone and thawing it again: the linear probe, and LP-FT's probe phase."""

from __future__ import annotations

import torch

# Attention implementations that take their dropout from a float attribute, not an nn.Dropout module (BERT's SDPA
# attention: dropout_prob; Whisper's layers: dropout, activation_dropout, layerdrop): zeroing the modules alone leaves them on.
FLOAT_DROPOUT_ATTRIBUTES = ("dropout_prob", "attention_dropout", "dropout", "activation_dropout", "layerdrop")


def freeze_backbone(model: torch.nn.Module, heads: list[str]) -> dict[str, float]:
    """Only the head modules train; the backbone's dropout goes off. Returns the dropout rates it replaced.

    A frozen backbone is a fixed feature extractor: without dropout its features are the ones the head will see
    at test time (and a step is ~2x faster). Both kinds of dropout go: nn.Dropout modules (key: the module's name)
    and attention dropout kept as a float attribute (key: "module.attribute").
    """
    for name, param in model.named_parameters():
        param.requires_grad = name.split(".")[0] in heads
    replaced = {}
    for name, module in model.named_modules():
        if name.split(".")[0] in heads:
            continue
        if isinstance(module, torch.nn.Dropout):
            replaced[name], module.p = module.p, 0.0
            continue
        for attribute in FLOAT_DROPOUT_ATTRIBUTES:
            rate = getattr(module, attribute, None)
            if isinstance(rate, float) and rate > 0:
                replaced[f"{name}.{attribute}"] = rate
                setattr(module, attribute, 0.0)
    return replaced


def unfreeze(model: torch.nn.Module, dropout_rates: dict[str, float]) -> None:
    """Every weight trains again and the backbone's dropout is back (what freeze_backbone returned)."""
    for param in model.parameters():
        param.requires_grad = True
    modules = dict(model.named_modules())
    for key, rate in dropout_rates.items():
        if key in modules:
            modules[key].p = rate
        else:  # a float attribute: "module.attribute"
            name, attribute = key.rsplit(".", 1)
            setattr(modules[name], attribute, rate)
