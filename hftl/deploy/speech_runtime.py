"""Speech recognisers behind one interface: a saved ``WhisperForConditionalGeneration`` (PyTorch) or its optimum
ONNX export (``ORTModelForSpeechSeq2Seq``, fp32 or int8), each giving greedy transcripts and decoder logits.

Both run the same ``generate`` code of transformers (optimum's class is a GenerationMixin whose forward calls the
ONNX encoder and merged decoder), so differing transcripts can only come from differing numbers.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftl.errors import DataError, ExportError
from hftl.run import rundir

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model_merged.onnx"  # optimum's merged decoder: first step and cached steps in one graph
INT8_SUBFOLDER = "int8"  # a complete ORTModelForSpeechSeq2Seq folder with the same file names, quantized
# Greedy decoding stops at end-of-text or at a cap: a run's asr.max_new_tokens, recorded in its export's
# export_report.json as "max_new_tokens" so that predict and serving decode as the gates checked. This default is for
# a bare model (no run) and for exports written before the cap was recorded; whisper-tiny writes ~3 tokens a second.
MAX_NEW_TOKENS = 128


def is_speech_export(folder: str | Path) -> bool:
    """An encoder-decoder ONNX export (as opposed to a classifier's ``model.onnx``)."""
    return (Path(folder) / ENCODER_FILE).is_file()


@dataclass
class Clip:
    """One decoded audio input at the model's sampling rate."""

    name: str
    wave: np.ndarray
    sample_rate: int
    note: str = ""  # e.g. "resampled from 44100 Hz"

    @property
    def seconds(self) -> float:
        return self.wave.size / self.sample_rate


def recorded_max_new_tokens(folder: str | Path) -> int:
    """The greedy cap an export was checked with (its report's ``max_new_tokens``); MAX_NEW_TOKENS when unrecorded.

    Raises:
        ExportError: the report is unreadable or records a cap that is not a positive integer.
    """
    path = Path(folder) / rundir.EXPORT_REPORT
    if not path.is_file():
        return MAX_NEW_TOKENS
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("max_new_tokens", MAX_NEW_TOKENS)
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise ExportError(f"{path}: not a readable export report ({err})") from err
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ExportError(f"{path}: max_new_tokens must be a positive integer, got {value!r}")
    return value


def window_seconds(processor: Any) -> float:
    """Seconds of audio the encoder takes (Whisper pads or cuts every input to this window)."""
    extractor = processor.feature_extractor
    return extractor.n_samples / extractor.sampling_rate


def load_clip(value: Any, processor: Any, root: Path | None = None) -> Clip:
    """Decode one audio input (path, bytes or array dict) for ``processor``: mono, resampled to its rate.

    A clip at another sampling rate is resampled (soxr) and says so in ``note``; a clip longer than the encoder's
    window is refused, since Whisper would silently drop what does not fit.

    Raises:
        DataError: unreadable, corrupt, empty or NaN audio, or a clip longer than the window (the message names it).
    """
    import soxr

    from hftl.modalities.audio import read_audio

    audio, rate = read_audio(value, root)
    name = str(value.get("path") or "<audio>") if isinstance(value, dict) else str(value)
    target, note = processor.feature_extractor.sampling_rate, ""
    if rate != target:
        audio, note = soxr.resample(audio, rate, target), f"resampled from {rate} Hz to {target} Hz"
    clip = Clip(name, np.ascontiguousarray(audio, dtype=np.float32), target, note)
    window = window_seconds(processor)
    if clip.seconds > window + 1e-6:
        raise DataError(
            f"audio file {name}: {clip.seconds:.2f} s is longer than the model's {window:g} s window "
            "(the rest would be dropped unheard); cut it into clips of at most that length"
        )
    return clip


@contextlib.contextmanager
def quiet_generation() -> Iterator[None]:
    """Silence transformers/optimum notices about generation defaults and file choices the export sets on purpose."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    optimum_logger = logging.getLogger("optimum")
    optimum_level = optimum_logger.level
    hf_logging.set_verbosity_error()
    optimum_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        optimum_logger.setLevel(optimum_level)


class SpeechRecognizer:
    """A loaded recogniser: ``name`` is ``torch``, ``onnx_fp32`` or ``onnx_int8``."""

    def __init__(self, name: str, model: Any, processor: Any, max_new_tokens: int = MAX_NEW_TOKENS):
        self.name, self.model, self.processor = name, model, processor
        config = model.config
        # Whisper refuses prompts + new tokens beyond its position table; the prompt is a few special tokens.
        self.max_new_tokens = max(1, min(max_new_tokens, config.max_target_positions - 4))

    def features(self, waves: Sequence[np.ndarray]):
        """Log-mel input features (a torch tensor), each wave padded to the encoder's window."""
        extractor = self.processor.feature_extractor
        return extractor(list(waves), sampling_rate=extractor.sampling_rate, return_tensors="pt").input_features

    def generate_ids(self, features) -> Any:
        """Greedy token ids (prompt included) for a batch of input features."""
        import torch

        with torch.inference_mode(), quiet_generation():
            return self.model.generate(
                input_features=features, do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens
            )

    def decode(self, ids) -> list[str]:
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]

    def transcribe(self, waves: Sequence[np.ndarray], *, batch_size: int = 8) -> list[str]:
        """Greedy transcripts of mono waves at the processor's sampling rate."""
        out: list[str] = []
        for start in range(0, len(waves), batch_size):
            out += self.decode(self.generate_ids(self.features(waves[start : start + batch_size])))
        return out

    def prefix_logits(self, features, prefix) -> np.ndarray:
        """Decoder logits ``(batch, prefix_len, vocab)`` after one forward pass over the token ids ``prefix``."""
        import torch

        with torch.inference_mode():
            out = self.model(input_features=features, decoder_input_ids=prefix, use_cache=False)
        return out.logits.float().numpy()


def load_torch_recognizer(
    model_dir: str | Path, *, num_threads: int | None = None, max_new_tokens: int = MAX_NEW_TOKENS
) -> SpeechRecognizer:
    """PyTorch eager fp32 on a saved WhisperForConditionalGeneration + WhisperProcessor folder (a run's model/:
    pass its ``asr.max_new_tokens``)."""
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    if num_threads:
        torch.set_num_threads(num_threads)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} holds no transformers model (no config.json)")
    model = AutoModelForSpeechSeq2Seq.from_pretrained(model_dir).eval()
    return SpeechRecognizer("torch", model, AutoProcessor.from_pretrained(model_dir), max_new_tokens)


def load_onnx_recognizer(
    folder: str | Path, *, quantized: bool = False, num_threads: int | None = None, allow_spinning: bool = True,
    max_new_tokens: int | None = None,
) -> SpeechRecognizer:
    """onnxruntime (CPU) on an export folder: ``folder`` itself (fp32) or its ``int8/`` subfolder.

    max_new_tokens: the greedy cap; None: the one the export was checked with (:func:`recorded_max_new_tokens`).

    Raises:
        ExportError: the folder is not a speech export, or has no int8 copy when ``quantized``.
    """
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import AutoProcessor

    from hftl.deploy.runtime import session_options

    folder = Path(folder)
    model_dir = folder / INT8_SUBFOLDER if quantized else folder
    if not is_speech_export(model_dir):
        what = "an int8 copy (int8/; export with export.quantize=true)" if quantized else f"an ONNX encoder ({ENCODER_FILE})"
        raise ExportError(f"{folder} is not a speech recognition export with {what}; run `hftl export RUN_DIR` first")
    with quiet_generation():
        model = ORTModelForSpeechSeq2Seq.from_pretrained(
            model_dir,
            session_options=session_options(num_threads=num_threads, allow_spinning=allow_spinning),
            provider="CPUExecutionProvider",
            local_files_only=True,
        )
    cap = recorded_max_new_tokens(folder) if max_new_tokens is None else max_new_tokens
    return SpeechRecognizer("onnx_int8" if quantized else "onnx_fp32", model, AutoProcessor.from_pretrained(folder), cap)
