"""A speech recognition export ready to serve: audio bytes -> log-mel features -> greedy transcripts.

The recogniser is `hftl predict`'s own (``hftl.deploy.speech_predict.load_recognizer``: ORTModelForSpeechSeq2Seq on
the export's encoder and merged decoder, fp32 or int8/), so the server's transcripts are the command's. Requests
batch: Whisper pads every clip to the encoder's window and every transcript starts from the same prompt, so clips
of a batch share one shape and one greedy ``generate`` decodes them together (a row that ends early is padded while
the others go on; its tokens do not change).

Inputs are checked before decoding as an audio classifier's are (readable header, ``--max-audio-seconds``), and
also against the encoder's window, since Whisper would drop what does not fit unheard (413 naming the limit).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hftl.deploy.speech_predict import load_recognizer
from hftl.deploy.speech_runtime import load_clip, window_seconds
from hftl.errors import DataError
from hftl.modalities import get_modality
from hftl.serve.errors import invalid_input, too_large
from hftl.serve.limits import check_inputs
from hftl.serve.settings import Limits, ServeSettings

TASK = "speech recognition"
FEATURES = "input_features"


class ServedRecognizer:
    """Raw audio bytes -> features -> transcripts; the same attributes and calls as ``ServedModel``.

    Attributes:
        name: The run's (or export folder's) name.
        modality: ``audio`` (what ``/predict`` accepts).
        task: ``speech recognition``: answers are transcripts, not labels.
        window_s: Seconds of audio the encoder hears (longer clips are refused).
    """

    takes_files = True
    labels: list[str] = []  # noqa: RUF012  (a recogniser has no classes; the page and /ready show none)
    task = TASK

    def __init__(self, settings: ServeSettings):
        self.export_dir = Path(settings.export_dir)
        self._recognizer, _ = load_recognizer(
            self.export_dir, quantized=settings.quantized, num_threads=settings.num_threads, allow_spinning=settings.spin
        )
        self._audio = get_modality("audio")
        self.modality, self.upload_types = self._audio.name, self._audio.upload_types
        self.name = self.export_dir.parent.name if self.export_dir.name == "onnx" else self.export_dir.name
        self.backend_name = f"{settings.backend}-{'int8' if settings.quantized else 'fp32'}"
        self.window_s = window_seconds(self._recognizer.processor)

    def check(self, values: list[Any], limits: Limits) -> list[Any]:
        """Header checks before decoding: readable audio, at most ``--max-audio-seconds`` and the encoder's window."""
        import soundfile as sf

        checked = check_inputs(self._audio, values, limits)
        for index, value in enumerate(checked):
            info = sf.info(io.BytesIO(value["bytes"]))  # the header only; check_inputs has read it once already
            seconds = info.frames / info.samplerate
            if seconds > self.window_s + 1e-6:
                raise too_large(
                    f"inputs[{index}]: audio of {seconds:.1f} s; the model hears at most {self.window_s:g} s (its encoder "
                    "window; Whisper would drop the rest unheard): cut longer audio into clips"
                )
        return checked

    def encode(self, values: list[Any]) -> dict[str, np.ndarray]:
        """Decode (resampling to the model's rate) and turn each clip into log-mel features padded to the window.

        Raises:
            RequestRejected: 422 naming the input that cannot be decoded.
        """
        waves = []
        for index, value in enumerate(values):
            try:
                waves.append(load_clip(value, self._recognizer.processor).wave)
            except DataError as err:
                raise invalid_input(f"inputs[{index}]: {err}") from err
        return {FEATURES: self._recognizer.features(waves).numpy()}

    def run(self, features: Mapping[str, np.ndarray]) -> list[str]:
        """Greedy transcripts of a batch (the batcher's model call)."""
        import torch

        ids = self._recognizer.generate_ids(torch.from_numpy(np.ascontiguousarray(features[FEATURES])))
        return self._recognizer.decode(ids)

    def answer(self, outputs: list[str], top_k: int) -> dict[str, Any]:
        """The response body's model part: one transcript per input (``top_k`` does not apply)."""
        return {"transcripts": [{"text": text} for text in outputs]}
