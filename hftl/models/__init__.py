"""hftl's own model definitions, for backbones transformers does not ship (EfficientNet-Lite, resemblyzer's speaker
encoder, CREPE).

Importing this package registers them with transformers' Auto classes, so their folders load like any other
(``AutoConfig`` / ``AutoModel`` / ``AutoModelFor...Classification`` / ``AutoFeatureExtractor``). Whoever loads models
imports it first (the modalities' ``auto_model``, the run's backbone config, the zoo builders).
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
)

from hftl.errors import ExportError
from hftl.models.crepe import CrepeConfig, CrepeFeatureExtractor, CrepeForAudioClassification, CrepeModel
from hftl.models.efficientnet_lite import (
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
)
from hftl.models.speaker_lstm import (
    SpeakerLstmConfig,
    SpeakerLstmFeatureExtractor,
    SpeakerLstmForAudioClassification,
    SpeakerLstmModel,
)

# Architectures hftl defines itself: optimum has no ONNX export recipe for them.
OWN_MODEL_TYPES: frozenset[str] = frozenset(
    {EfficientNetLiteConfig.model_type, SpeakerLstmConfig.model_type, CrepeConfig.model_type}
)

AutoConfig.register(EfficientNetLiteConfig.model_type, EfficientNetLiteConfig)
AutoModel.register(EfficientNetLiteConfig, EfficientNetLiteModel)
AutoModelForImageClassification.register(EfficientNetLiteConfig, EfficientNetLiteForImageClassification)

AutoConfig.register(SpeakerLstmConfig.model_type, SpeakerLstmConfig)
AutoModel.register(SpeakerLstmConfig, SpeakerLstmModel)
AutoModelForAudioClassification.register(SpeakerLstmConfig, SpeakerLstmForAudioClassification)
AutoFeatureExtractor.register(SpeakerLstmConfig, SpeakerLstmFeatureExtractor)

AutoConfig.register(CrepeConfig.model_type, CrepeConfig)
AutoModel.register(CrepeConfig, CrepeModel)
AutoModelForAudioClassification.register(CrepeConfig, CrepeForAudioClassification)
AutoFeatureExtractor.register(CrepeConfig, CrepeFeatureExtractor)


def refuse_export(model_type: str | None, where: str) -> None:
    """Raise a clear error when ``model_type`` is one of hftl's own architectures, which optimum cannot export.

    Raises:
        ExportError: names ``where`` and what to do instead.
    """
    if model_type in OWN_MODEL_TYPES:
        raise ExportError(
            f"{where}: {model_type} is one of hftl's own architectures (hftl/models/), which optimum has no ONNX or "
            "OpenVINO export for; set export.enabled=false and use the PyTorch model (RUN/model): "
            "hftl predict RUN_DIR INPUTS, hftl evaluate RUN_DIR DATA"
        )
