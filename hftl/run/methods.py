"""The method registry: what each transfer method is, in one place.

A ``Method`` says how it builds and prepares the model, how it trains (one loop, or its own sequence of loops),
what it saves, and what compare, its plots and findings, and the model card call it. Everything that lists methods
(compare's spec, colours, the transfer-gain finding, the card) reads this table.

The names are also the choices of the config key ``method.name`` (``hftl.config.METHODS``): the config layer sits
below this one, so it keeps the bare names and this module checks at import that the two agree -- as peft keeps
its ``PeftType`` names below the ``register_peft_method`` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults

from hftl.config import METHODS as CONFIG_METHOD_NAMES
from hftl.config import Config
from hftl.errors import ModelError
from hftl.modalities import Modality
from hftl.run.freezing import freeze_backbone
from hftl.run.lp_ft import fit_lp_ft
from hftl.run.training import LoopInputs, Trainer, TrainResult

if TYPE_CHECKING:  # models.py asks this registry whether a method starts pretrained; it is only a type here
    from hftl.run.models import BuiltModel


# -> (the run's model, its best weights loaded; its result; the probe phase's result or None)
FitLoops = Callable[[LoopInputs], tuple[torch.nn.Module, TrainResult, TrainResult | None]]


def fit_one_loop(loop: LoopInputs) -> tuple[torch.nn.Module, TrainResult, None]:
    """What most methods do: one Trainer over the prepared model."""
    trainer = Trainer(
        loop.cfg, loop.accelerator, loop.model, *loop.make_loaders(), loop.run_dir, loop.on_epoch_start, hooks=loop.hooks
    )
    result = trainer.fit()
    return trainer.model, result, None


def fit_linear_probe(loop: LoopInputs) -> tuple[torch.nn.Module, TrainResult, None]:
    """The head trained on cached frozen features (``loop.fit_probe``) when the cache is on, else step by step
    through the one loop. The cached fit takes no loop steps, so step hooks do not run there."""
    result = loop.fit_probe(loop.cfg, Path(loop.run_dir), "") if loop.fit_probe is not None else None
    if result is None:
        return fit_one_loop(loop)
    return loop.accelerator.prepare(loop.model), result, None  # the head trained on cached features is the model's


@dataclass(frozen=True)
class Method:
    name: str  # the value of method.name
    display: str  # what the model card and reports call it
    help: str  # one line for `hftl config` and the docs
    color: str  # its colour in compare's plots
    pretrained: bool  # starts from the pretrained weights (False: the same architecture, random init)
    changes_backbone: bool  # training moves backbone weights (forgetting and shift measure what it cost)
    saves_adapter: bool  # writes RUN/adapter/ (a PEFT adapter; push.what=adapter needs it)
    prepare: Callable[[Config, Modality, BuiltModel], torch.nn.Module]  # freeze / wrap the built model for training
    learning_rate_note: str = ""  # what training.learning_rate means for it, when not the obvious
    probes_frozen_features: bool = False  # trains a head on a frozen backbone (its features can be cached)
    fit: FitLoops = None  # type: ignore[assignment]  # its loops; set to fit_one_loop below unless the method has its own

    def __post_init__(self) -> None:
        if self.fit is None:
            object.__setattr__(self, "fit", fit_one_loop)

    @property
    def transfer(self) -> bool:
        """A transfer method (compared against the from-scratch baseline)."""
        return self.pretrained


def _as_built(cfg: Config, modality: Modality, built: BuiltModel) -> torch.nn.Module:
    return built.model


def _probe(cfg: Config, modality: Modality, built: BuiltModel) -> torch.nn.Module:
    freeze_backbone(built.model, built.head_modules)
    return built.model


def lora_targets(cfg: Config, modality: Modality, model: torch.nn.Module) -> list[str]:
    """method.lora.target_modules, else the modality's default for the model type, else peft's."""
    if cfg.method.lora.target_modules:
        return list(cfg.method.lora.target_modules)
    model_type = getattr(model.config, "model_type", None)
    if model_type in modality.lora_targets:
        return modality.lora_targets[model_type]
    if model_type in peft_defaults:
        return list(peft_defaults[model_type])
    raise ModelError(f"no default LoRA targets for model_type {model_type!r}: set method.lora.target_modules")


def _lora(cfg: Config, modality: Modality, built: BuiltModel) -> torch.nn.Module:
    model = built.model
    if isinstance(model, PeftModel):  # an adapter source: keep training that adapter
        return model
    lora = cfg.method.lora
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_targets(cfg, modality, model),
        modules_to_save=built.head_modules,  # the new head trains fully and is saved with the adapter
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        raise ModelError(f"method.lora.target_modules: {err}") from err


# Registry order is the report order: baseline first, then from the least to the most adapted.
_REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method("scratch", "from scratch", "same architecture, random init (the no-transfer baseline)", "#7f7f7f",
               pretrained=False, changes_backbone=True, saves_adapter=False, prepare=_as_built),
        Method("linear_probe", "linear probe", "frozen backbone, head only", "#1f77b4",
               pretrained=True, changes_backbone=False, saves_adapter=False, prepare=_probe, fit=fit_linear_probe,
               probes_frozen_features=True),
        Method("lora", "LoRA", "low-rank adapters + new head", "#2ca02c",
               pretrained=True, changes_backbone=True, saves_adapter=True, prepare=_lora),
        Method("full", "full fine-tuning", "all weights", "#d62728",
               pretrained=True, changes_backbone=True, saves_adapter=False, prepare=_as_built),
        # Every weight stays trainable here (the second phase, and what the parameter count reports); fit_lp_ft
        # freezes the backbone for its probe phase itself.
        Method("lp_ft", "linear probe, then full fine-tuning (LP-FT)", "linear probe, then full fine-tune", "#9467bd",
               pretrained=True, changes_backbone=True, saves_adapter=False, prepare=_as_built, fit=fit_lp_ft,
               learning_rate_note="'s fine-tune phase (its probe: method.lp_ft.probe_learning_rate)",
               probes_frozen_features=True),
    )  # fmt: skip
}
if set(_REGISTRY) != set(CONFIG_METHOD_NAMES):
    raise ImportError(f"hftl.config.METHODS {sorted(CONFIG_METHOD_NAMES)} != registered methods {sorted(_REGISTRY)}")


def get_method(name: str) -> Method:
    if name not in _REGISTRY:
        raise ModelError(f"method.name: unknown method {name!r}; choose from {list(_REGISTRY)}")
    return _REGISTRY[name]


def all_methods() -> list[Method]:
    return list(_REGISTRY.values())


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def display_name(name: str) -> str:
    """What the card and reports call a method (its raw name for one this version does not know)."""
    return _REGISTRY[name].display if name in _REGISTRY else name


def apply_method(cfg: Config, modality: Modality, built: BuiltModel) -> torch.nn.Module:
    """Freeze / wrap the model as cfg.method asks; returns the module to train."""
    return get_method(cfg.method.name).prepare(cfg, modality, built)

