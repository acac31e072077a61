"""Build the classifier from a model source and apply the transfer method to it.

Methods:
    full          every weight trains.
    lora          low-rank adapters on the attention projections; the new head trains fully (modules_to_save).
    linear_probe  the backbone is frozen (and its dropout off); only the new head trains.
    scratch       the same architecture with random weights: the no-transfer baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hftl import zoo
from hftl.config import Config
from hftl.errors import ModelError
from hftl.modalities import Modality

logger = logging.getLogger("hftl")

# Names transformers gives to classification heads; used when the loading info cannot tell the head apart.
_KNOWN_HEADS = ("classifier", "pre_classifier", "score", "projector")


@dataclass
class BuiltModel:
    model: torch.nn.Module
    source: str  # resolved local folder or Hub id
    head_modules: list[str]  # top-level modules newly initialised for this task


def resolve_model_source(source: str) -> str:
    """zoo:NAME -> its prepared folder; an existing path -> itself; anything else is taken as a Hub id."""
    zoo_path = zoo.resolve(source)
    if zoo_path is not None:
        return str(zoo_path)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"model.source: {path} has no config.json; expected a transformers model folder")
        return str(path)
    if source.startswith((".", "/", "~")):
        raise ModelError(f"model.source: local path {source} does not exist")
    return source


def _head_modules(model: torch.nn.Module, missing_keys: list[str]) -> list[str]:
    """Top-level submodules holding newly initialised weights: the task head."""
    top = {name for name, _ in model.named_children()}
    heads = sorted({key.split(".")[0] for key in missing_keys if key.split(".")[0] in top})
    if not heads:  # a checkpoint that already carries a head (e.g. a fine-tuned model)
        heads = [name for name in _KNOWN_HEADS if name in top]
    if not heads:
        raise ModelError(f"cannot tell the classification head of {type(model).__name__}; top modules: {sorted(top)}")
    return heads


def build_model(cfg: Config, modality: Modality, label_names: list[str]) -> BuiltModel:
    """The pretrained backbone with a fresh head for label_names (random weights for method=scratch)."""
    source = resolve_model_source(cfg.model.source)
    auto = modality.auto_model()
    label_kwargs = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    common = {"revision": cfg.model.revision, "trust_remote_code": cfg.model.trust_remote_code}
    try:
        if cfg.method.name == "scratch":
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(source, **common, **label_kwargs)
            model = auto.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
            return BuiltModel(model, source, _head_modules(model, []))
        model, info = auto.from_pretrained(
            source, ignore_mismatched_sizes=True, output_loading_info=True, use_safetensors=True, **common, **label_kwargs
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"model.source={cfg.model.source}: could not load a {auto.__name__}: {err}") from err
    missing = list(info["missing_keys"]) + [k for k, *_ in info.get("mismatched_keys", [])]
    return BuiltModel(model, source, _head_modules(model, missing))


def lora_targets(cfg: Config, modality: Modality, model: torch.nn.Module) -> list[str]:
    if cfg.method.lora.target_modules:
        return list(cfg.method.lora.target_modules)
    model_type = getattr(model.config, "model_type", None)
    if model_type in modality.lora_targets:
        return modality.lora_targets[model_type]
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults

    if model_type in peft_defaults:
        return list(peft_defaults[model_type])
    raise ModelError(f"no default LoRA targets for model_type {model_type!r}: set method.lora.target_modules")


def apply_method(cfg: Config, modality: Modality, built: BuiltModel) -> torch.nn.Module:
    """Freeze / wrap the model as the method asks; returns the module to train."""
    model, heads = built.model, built.head_modules
    method = cfg.method.name
    if method in ("full", "scratch"):
        return model
    if method == "linear_probe":
        for name, param in model.named_parameters():
            param.requires_grad = name.split(".")[0] in heads
        # A frozen backbone runs without dropout: it is a fixed feature extractor (and ~2x faster a step).
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Dropout) and name.split(".")[0] not in heads:
                module.p = 0.0
        return model
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = cfg.method.lora
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora_targets(cfg, modality, model),
            modules_to_save=heads,  # the new head trains fully and is saved with the adapter
        )
        try:
            return get_peft_model(model, peft_config)
        except ValueError as err:
            raise ModelError(f"method.lora.target_modules: {err}") from err
    raise ModelError(f"method.name: unknown method {method!r}")


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and total parameter counts (each tensor once, however it is shared)."""
    seen: dict[int, Any] = {}
    for param in model.parameters():
        seen[id(param)] = param
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return {"trainable": int(trainable), "total": int(total)}
