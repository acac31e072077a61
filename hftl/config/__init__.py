"""The run configuration: schema.py (typed dataclasses; the modalities' sections come from the modality table) and
loader.py (YAML + key=value overrides, type checks that name the key and its origin, ``hftl config`` help)."""

from hftl.config.loader import describe, from_mapping, load_config, parse_override, read_yaml, save_config
from hftl.config.schema import (
    METHODS,
    Config,
    DataConfig,
    EvaluationConfig,
    ExportConfig,
    LoraSettings,
    LpFtSettings,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    PushConfig,
    TrainingConfig,
    _help,
    modality_sections,
)

__all__ = [
    "METHODS", "Config", "DataConfig", "EvaluationConfig", "ExportConfig", "LoraSettings", "LpFtSettings",
    "MethodConfig", "ModelConfig", "OutputConfig", "PushConfig", "TrainingConfig", "_help",
    "describe", "from_mapping", "load_config", "modality_sections", "parse_override", "read_yaml", "save_config",
]  # fmt: skip
