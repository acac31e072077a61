"""The candidate backbones the zoo offers, for ``hftl zoo list`` and study specs: each zoo model and its variants.

A row says what a spec names (``zoo:minilm-l6@L3``), the modality, the backbone's parameter count (without any
classification head, counted on the meta device: no weights are read) once the entry is prepared, the package its
weights come from, and what it is in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hftl import zoo
from hftl.config import load_config
from hftl.modalities import get_modality
from hftl.run.backbone import backbone_config, layer_key
from hftl.zoo.candidates import parse_candidate

# Top-level modules of transformers classifiers that are the task head, not the backbone.
_HEADS = ("classifier", "pre_classifier", "score", "projector", "dropout")


@dataclass(frozen=True)
class CandidateRow:
    name: str  # what a spec or model.source names, without "zoo:"
    modality: str
    parameters: int | None  # backbone parameters; None until the entry is prepared
    source: str  # where the weights come from (the package)
    what: str  # one line


def backbone_parameters(source: str, modality: str, keep_layers: int | None) -> int:
    """Parameters of the backbone (the classifier minus its head) that ``source`` cut to ``keep_layers`` builds."""
    cfg = load_config(None, [f"modality={modality}", f"model.source={source}", f"model.keep_layers={keep_layers or 'null'}"])
    config = backbone_config(source, cfg, num_labels=2)
    with torch.device("meta"):
        model = get_modality(modality).auto_model().from_config(config)
    return sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] not in _HEADS)


def _what(entry: zoo.ZooEntry, suffix: str, total_layers: int | None) -> str:
    candidate = parse_candidate(f"zoo:{entry.name}{suffix}")
    parts = []
    if candidate.keep_layers is not None:
        of = f" of {total_layers}" if total_layers else ""
        parts.append(f"first {candidate.keep_layers}{of} layers")
    if candidate.init == "random":
        parts.append("same architecture, random weights (no pretraining)")
    return f"{entry.name}: {', '.join(parts)}" if parts else entry.description


def candidate_rows() -> list[CandidateRow]:
    """Every zoo model and its listed variants, in zoo order."""
    rows = []
    for entry in zoo.entries():
        if entry.kind != "model":
            continue
        prepared = zoo.is_prepared(entry.name)
        total = None
        if prepared:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(zoo.entry_path(entry.name))
            key = layer_key(config)
            total = getattr(config, key) if key else None
        for suffix in ("", *entry.variants):
            candidate = parse_candidate(f"zoo:{entry.name}{suffix}")
            params = None
            if prepared:
                params = backbone_parameters(str(zoo.entry_path(entry.name)), entry.modality, candidate.keep_layers)
            rows.append(CandidateRow(candidate.name, entry.modality, params, entry.source.split(" (")[0], _what(entry, suffix, total)))
    return rows
