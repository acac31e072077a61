"""The backbone's architecture config for a run: the source's config, cut to ``model.keep_layers`` when asked.

Truncation happens in the config, before any weight is read: ``from_pretrained`` with ``num_hidden_layers=k``
builds k layers and fills them from the checkpoint's first k (the later ones are left unread), so the saved
model is an ordinary, smaller model of the same type that reloads and exports as one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

import hftl.models  # noqa: F401  (hftl's own architectures load through AutoConfig too)
from hftl.config import Config
from hftl.errors import ModelError

# model_type -> the config key counting the layers that truncation cuts; the rest use num_hidden_layers.
# Whisper's classifier uses only the encoder, so its encoder layers are the backbone's depth.
LAYER_KEYS = {"whisper": "encoder_layers"}


def layer_key(config: Any) -> str | None:
    """The config attribute holding the backbone's depth, or None when the architecture has none hftl can cut."""
    key = LAYER_KEYS.get(getattr(config, "model_type", None), "num_hidden_layers")
    return key if isinstance(getattr(config, key, None), int) else None


def backbone_config(source: str, cfg: Config, **kwargs: Any) -> Any:
    """``AutoConfig`` of ``source`` with ``kwargs`` (labels), cut to ``cfg.model.keep_layers`` layers when set.

    Raises:
        ModelError: the config cannot be read, the architecture has no layer count to cut, or k exceeds it.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code, **kwargs
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"model.source={cfg.model.source}: cannot read its config: {err}") from err
    keep = cfg.model.keep_layers
    if keep is None:
        return config
    key = layer_key(config)
    if key is None:
        raise ModelError(
            f"model.keep_layers={keep}: {config.model_type} models have no layer count hftl can cut "
            "(it needs num_hidden_layers in the config, or Whisper's encoder_layers); set it to null"
        )
    total = getattr(config, key)
    if keep > total:
        raise ModelError(f"model.keep_layers={keep}: {cfg.model.source} has only {total} layers ({key})")
    setattr(config, key, keep)
    return config


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Random weights drawn from ``seed`` alone, leaving the global RNG as it was.

    A random-init backbone is then the same for every process and every call that builds it under that seed
    (the run, its cached-feature probe, its transferability scores).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def candidate_record(cfg: Config, config: Any) -> dict[str, Any]:
    """What the run record says about the backbone: the candidate's name, its depth and its initialisation."""
    key = layer_key(config)
    return {
        "name": cfg.model.candidate.name,
        "source": cfg.model.source,
        "init": cfg.model.init,
        "layers_kept": getattr(config, key) if key else None,
        "keep_layers": cfg.model.keep_layers,
    }


def variant_key(cfg: Config) -> dict[str, Any]:
    """What the backbone's features depend on besides its files: for feature caches' keys."""
    return {
        "keep_layers": cfg.model.keep_layers,
        "init": cfg.model.init,
        "init_seed": cfg.training.seed if cfg.model.init == "random" else None,
    }
