"""Resemblyzer's speaker encoder (GE2E, Wan et al. 2018) as a transformers model: 40-band mel frames -> a 3-layer
LSTM -> its last layer's final state -> linear + ReLU -> an L2-normalised 256-d speaker embedding.

The classifier puts a linear head on that embedding. The feature extractor computes the encoder's input with numpy
and transformers.audio_utils (no librosa here): volume normalised to -30 dBFS (raised only), power mel spectrogram
(25 ms Hann window, 10 ms hop, 40 Slaney mel bands), as resemblyzer's ``wav_to_mel_spectrogram``; resemblyzer's
voice-activity trimming (webrtcvad) is left out: hftl feeds fixed-length clips. Features are laid out
(mel bands, frames) like Whisper's, so SpecAugment masks the same axes.

Depth: ``num_hidden_layers = k`` keeps the LSTM's first k layers (the embedding layer then reads layer k's state).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from hftl.models.clip_features import ClipFeatureExtractor
from hftl.models.embedding_classifier import EmbeddingClassifierMixin

SAMPLE_RATE = 16_000
WINDOW_MS, HOP_MS = 25, 10
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1


class SpeakerLstmConfig(PretrainedConfig):
    model_type = "speaker_lstm"

    def __init__(
        self,
        num_mel_bins: int = 40,
        lstm_hidden_size: int = 256,
        hidden_size: int = 256,
        num_hidden_layers: int = 3,
        classifier_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_mel_bins = num_mel_bins
        self.lstm_hidden_size = lstm_hidden_size
        self.hidden_size = hidden_size  # the embedding's size
        self.num_hidden_layers = num_hidden_layers
        self.classifier_dropout = classifier_dropout


class SpeakerLstmPreTrainedModel(PreTrainedModel):
    config_class = SpeakerLstmConfig
    base_model_prefix = "speaker_lstm"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's own defaults (uniform +-1/sqrt(fan)), what the encoder was trained from.
        if isinstance(module, (nn.LSTM, nn.Linear)):
            module.reset_parameters()


class SpeakerLstmModel(SpeakerLstmPreTrainedModel):
    """The encoder: (batch, mel bands, frames) -> L2-normalised embedding, returned as one token ``(batch, 1, 256)``."""

    def __init__(self, config: SpeakerLstmConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(config.num_mel_bins, config.lstm_hidden_size, config.num_hidden_layers, batch_first=True)
        self.linear = nn.Linear(config.lstm_hidden_size, config.hidden_size)
        self.post_init()

    def forward(
        self, input_features: torch.Tensor, output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        frames = input_features.transpose(1, 2)  # (batch, frames, mel bands), what the LSTM reads
        _, (hidden, _) = self.lstm(frames)  # hidden: each layer's final state, (layers, batch, lstm_hidden)
        embedding = nn.functional.relu(self.linear(hidden[-1]))
        embedding = embedding / embedding.norm(dim=1, keepdim=True).clamp(min=1e-8)
        hidden_states = None
        if output_hidden_states:  # 0: the mean input frame; i: layer i's final state
            hidden_states = (frames.mean(dim=1, keepdim=True), *(h.unsqueeze(1) for h in hidden))
        return BaseModelOutputWithPooling(
            last_hidden_state=embedding.unsqueeze(1), pooler_output=embedding, hidden_states=hidden_states
        )


class SpeakerLstmForAudioClassification(EmbeddingClassifierMixin, SpeakerLstmPreTrainedModel):
    def __init__(self, config: SpeakerLstmConfig):
        super().__init__(config)
        self.speaker_lstm = SpeakerLstmModel(config)
        self.init_head(config.hidden_size, config.num_labels, config.classifier_dropout)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        return self.classify(self.speaker_lstm(input_features, output_hidden_states=output_hidden_states), labels)


class SpeakerLstmFeatureExtractor(ClipFeatureExtractor):
    """16 kHz waveforms -> (40 mel bands, frames) power mel spectrograms, as resemblyzer computes them."""

    model_input_names = ["input_features"]

    def __init__(self, feature_size: int = 40, sampling_rate: int = SAMPLE_RATE, padding_value: float = 0.0, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        from transformers.audio_utils import mel_filter_bank, window_function

        self.n_fft = sampling_rate * WINDOW_MS // 1000
        self.hop_length = sampling_rate * HOP_MS // 1000
        self.window = window_function(self.n_fft, "hann")
        self.mel_filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=feature_size,
            min_frequency=0.0,
            max_frequency=sampling_rate / 2,
            sampling_rate=sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )

    def to_dict(self):  # the arrays are derived from the settings; keep them out of preprocessor_config.json
        out = super().to_dict()
        for key in ("window", "mel_filters"):
            out.pop(key, None)
        return out

    def features(self, wave: np.ndarray) -> np.ndarray:
        """One waveform -> (bands, frames) float32."""
        from transformers.audio_utils import spectrogram

        wave = np.asarray(wave, dtype=np.float64)
        rms = np.sqrt(np.mean((wave * INT16_MAX) ** 2))
        if rms > 0:
            change = TARGET_DBFS - 20 * np.log10(rms / INT16_MAX)
            if change > 0:  # resemblyzer raises quiet audio only
                wave = wave * 10 ** (change / 20)
        return spectrogram(
            wave, self.window, frame_length=self.n_fft, hop_length=self.hop_length, power=2.0,
            center=True, pad_mode="reflect", mel_filters=self.mel_filters,
        ).astype(np.float32)  # fmt: skip
