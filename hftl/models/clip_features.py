"""The shared front of hftl's own feature extractors: a batch of equal-length 16 kHz clips -> one array per clip."""

from __future__ import annotations

import numpy as np
from transformers import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature


class ClipFeatureExtractor(SequenceFeatureExtractor):
    """Subclasses set ``model_input_names`` and implement :meth:`features` (one waveform -> its features)."""

    def features(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors: str | None = None, **kwargs) -> BatchFeature:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"{type(self).__name__} takes {self.sampling_rate} Hz audio, got {sampling_rate} Hz")
        single = isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 1
        waves = [raw_speech] if single or (len(raw_speech) and np.isscalar(raw_speech[0])) else list(raw_speech)
        arrays = [self.features(w) for w in waves]
        if len({a.shape for a in arrays}) > 1:
            raise ValueError("clips of different lengths: cut or pad them to one length first")
        return BatchFeature({self.model_input_names[0]: np.stack(arrays)}, tensor_type=return_tensors)
