"""Audio classification: decode with soundfile, resample with soxr, fixed-length clips, log-mel or raw features.

Audio inputs are file paths (or ``{"bytes"|"path"|"array", "sampling_rate"}`` dicts as datasets stores them), decoded
lazily in ``with_transform``: datasets' own ``Audio()`` feature needs torchcodec, which this stack does not ship.
A relative path is looked up under the data source's folder first (the zoo entry, the save_to_disk folder, or the
CSV/JSON file's folder), then under the working directory, so prepared data sets can be moved.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hftl import zoo
from hftl.augment import ROW_COLUMN, AugmentRng, with_row_ids
from hftl.augment import audio as aug
from hftl.errors import ConfigError, DataError, InputTooLarge
from hftl.modalities import Modality, register_modality, shifts
from hftl.modalities.wav_header import declared_wav_frames
from hftl.modalities.whisper import POSITIONS_PER_SECOND, shorten_whisper_encoder

if TYPE_CHECKING:
    from datasets import Dataset

    from hftl.config import Config


AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"})

def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class AudioConfig:
    clip_seconds: int = _help("clip length in whole seconds: audio is cut/padded to it; Whisper's encoder is cut to match", 2)
    sample_rate: int | None = _help("rate audio is resampled to; default (null): the feature extractor's", None)
    shift_seconds: float = _help("train augmentation: random time shift of up to this many seconds (0: off)", 0.0)
    gain_db: list[float] | None = _help("train augmentation: random gain in [low, high] dB (null: off)", None)
    noise_snr_db: float | None = _help("train augmentation: add white noise at this signal-to-noise ratio in dB (null: off)", None)
    speed_range: list[float] | None = _help("train augmentation: speed factor in [low, high], via resampling (null: off)", None)
    freq_masks: int = _help("train augmentation: SpecAugment frequency masks per clip (log-mel features only)", 0)
    freq_mask_width: int = _help("widest frequency mask, in mel bins", 8)
    time_masks: int = _help("train augmentation: SpecAugment time masks per clip (log-mel features only)", 0)
    time_mask_width: int = _help("widest time mask, in feature frames (Whisper: 100 per second)", 10)

    def __post_init__(self) -> None:
        if not 1 <= self.clip_seconds <= 30:
            raise ConfigError(f"audio.clip_seconds must be in 1..30, got {self.clip_seconds}")
        if self.sample_rate is not None and self.sample_rate < 1000:
            raise ConfigError(f"audio.sample_rate must be >= 1000 Hz or null, got {self.sample_rate}")
        if self.shift_seconds < 0:
            raise ConfigError(f"audio.shift_seconds must be >= 0, got {self.shift_seconds}")
        for key in ("gain_db", "speed_range"):
            value = getattr(self, key)
            if value is not None and (len(value) != 2 or value[0] > value[1]):
                raise ConfigError(f"audio.{key} must be [low, high] with low <= high, got {value}")
        if self.speed_range is not None and self.speed_range[0] <= 0:
            raise ConfigError(f"audio.speed_range must be positive, got {self.speed_range}")
        for key in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, key) < 0:
                raise ConfigError(f"audio.{key} must be >= 0, got {getattr(self, key)}")


def data_root(cfg: Config) -> Path | None:
    """The folder relative audio paths of ``cfg.data.source`` are relative to (None for a Hub data set)."""
    source = cfg.data.source
    if source.startswith("zoo:"):
        try:
            return zoo.entry_path(source[len("zoo:") :])
        except zoo.ZooError:
            return None
    path = Path(source).expanduser()
    if path.is_file():
        return path.parent
    return path if path.is_dir() else None


def _resolve(value: str, root: Path | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and root is not None and (root / path).exists():
        return root / path
    return path


def read_audio(value: Any, root: Path | None = None) -> tuple[np.ndarray, int]:
    """Decode one input to a mono float32 waveform at its own sampling rate: (samples, rate).

    Raises:
        DataError: the file is missing, unreadable, corrupt or empty, or holds NaN / infinite samples (the message
            names it).
    """
    import soundfile as sf

    name = value
    if isinstance(value, dict) and value.get("array") is not None:
        name = value.get("path") or "<audio array>"
        audio, rate = np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    else:
        if isinstance(value, dict):
            name = value.get("path") or "<audio bytes>"
            target = io.BytesIO(value["bytes"]) if value.get("bytes") else _resolve(str(value.get("path")), root)
        elif isinstance(value, (str, Path)):
            target = _resolve(str(value), root)
            name = str(target)
        else:
            raise DataError(f"audio input {value!r}: expected a file path, got {type(value).__name__}")
        try:
            audio, rate = sf.read(target, dtype="float32", always_2d=True)
            declared = declared_wav_frames(target)
        except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError... for bad files
            raise DataError(f"audio file {name}: cannot be decoded ({err}); re-encode it (WAV, FLAC, OGG) or remove it") from err
        if declared is not None and len(audio) < declared:
            raise DataError(
                f"audio file {name}: truncated: its header declares {declared} frames ({declared / rate:.2f} s) but "
                f"it holds {len(audio)} ({len(audio) / rate:.2f} s); re-export it or remove it"
            )
    if audio.ndim == 2:  # (frames, channels) -> mono
        audio = audio.mean(axis=1)
    if audio.size == 0:
        raise DataError(f"audio file {name}: contains no samples; remove it")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:  # NaN would poison every loss and gradient of its batch
        raise DataError(f"audio file {name}: {bad} of {audio.size} samples are NaN or infinite; repair or remove it")
    return audio, rate


def load_audio(value: Any, sample_rate: int, root: Path | None = None) -> np.ndarray:
    """Decode one input to a mono float32 waveform at ``sample_rate`` (resampled with soxr when needed).

    Raises:
        DataError: as ``read_audio``.
    """
    import soxr

    audio, rate = read_audio(value, root)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Cut to the first ``length`` samples or pad the end with silence."""
    if wave.size >= length:
        return wave[:length]
    return np.pad(wave, (0, length - wave.size))


def audio_variants(split: Dataset, cfg: Config, sample_rate: int, seed: int) -> dict[str, Dataset]:
    """One copy of ``split`` per SNR, each clip cut/padded to ``audio.clip_seconds`` and mixed with white noise."""
    column, root = cfg.data.input_column, data_root(cfg)
    length = cfg.audio.clip_seconds * sample_rate
    waves = [fit_length(load_audio(x, sample_rate, root), length) for x in split[column]]
    out = {}
    for snr in shifts.AUDIO_SNR_DB:
        variant = f"noise_snr{snr:g}db"
        noisy = [aug.add_noise(w, snr, shifts.row_rng(seed, variant, i)) for i, w in enumerate(waves)]
        out[variant] = shifts.replace_column(split, column, [{"array": w, "sampling_rate": sample_rate} for w in noisy])
    return out


class AudioModality(Modality):
    name = "audio"
    config_section = AudioConfig
    onnx_task = "audio-classification"
    auto_model_name = "AutoModelForAudioClassification"
    pooling = "mean"
    default_input_column = "audio"
    speech = True
    file_suffixes = AUDIO_SUFFIXES
    sample_file = "clip.wav"
    upload_types = "audio/*"
    processor_class_name = "AutoFeatureExtractor"  # what hftl saves beside the model (AutoProcessor wants a tokenizer too)
    lora_targets = {
        "whisper": ["q_proj", "v_proj"],
        "wav2vec2": ["q_proj", "v_proj"],
        "hubert": ["q_proj", "v_proj"],
        "wavlm": ["q_proj", "v_proj"],
        "audio-spectrogram-transformer": ["query", "value"],
    }

    def check_served_input(self, value: Any, limits: Any) -> dict[str, bytes]:
        import soundfile as sf

        try:
            info = sf.info(io.BytesIO(value))  # the header only
        except Exception as err:  # libsndfile raises LibsndfileError / RuntimeError / TypeError for bad bytes
            raise DataError(f"not a readable audio file ({len(value)} bytes; WAV, FLAC, OGG, MP3): {err}") from err
        if info.frames <= 0 or info.samplerate <= 0:
            raise DataError("audio file contains no samples")
        seconds = info.frames / info.samplerate
        if seconds > limits.max_audio_seconds:
            raise InputTooLarge(
                f"audio of {seconds:.1f} s; the limit is {limits.max_audio_seconds:g} s (--max-audio-seconds)"
            )
        return {"bytes": value}

    def card_base_kwargs(self, config: dict[str, Any]) -> list[str]:
        seconds = (config.get("audio") or {}).get("clip_seconds", 30)
        return [f"    max_source_positions={POSITIONS_PER_SECOND * seconds},  # the encoder cut to {seconds} s clips, as trained"]

    def card_onnx_inputs(self, config: dict[str, Any]) -> tuple[str, str]:
        seconds = (config.get("audio") or {}).get("clip_seconds", 2)
        return f'["{self.sample_file}"]', f"the feature extractor's output for {seconds} s clips (cut or padded)"

    def card_example(self, config: dict[str, Any]) -> list[str]:
        seconds = (config.get("audio") or {}).get("clip_seconds", 1)
        return [
            "import numpy as np",
            f"wave = np.zeros({seconds} * processor.sampling_rate, dtype=np.float32)  # your mono clip at that rate",
            'inputs = processor([wave], sampling_rate=processor.sampling_rate, return_tensors="pt")',
        ]

    def adapt_model(self, model: Any, cfg: Config) -> None:
        # Whisper's encoder only takes exactly 2 * max_source_positions frames: cut it to the clip length.
        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) != "whisper":
            return
        if config.max_source_positions != cfg.audio.clip_seconds * POSITIONS_PER_SECOND:
            shorten_whisper_encoder(model, cfg.audio.clip_seconds)

    def load_processor(self, source: str, cfg: Config) -> Any:
        from transformers import AutoFeatureExtractor, WhisperFeatureExtractor

        extractor = AutoFeatureExtractor.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
        rate = cfg.audio.sample_rate
        if rate is not None and rate != extractor.sampling_rate:
            raise ConfigError(
                f"audio.sample_rate={rate}, but the feature extractor of {source} expects {extractor.sampling_rate} Hz"
            )
        if isinstance(extractor, WhisperFeatureExtractor) and extractor.chunk_length != cfg.audio.clip_seconds:
            extractor = WhisperFeatureExtractor(
                feature_size=extractor.feature_size,
                sampling_rate=extractor.sampling_rate,
                hop_length=extractor.hop_length,
                chunk_length=cfg.audio.clip_seconds,
                n_fft=extractor.n_fft,
                padding_value=extractor.padding_value,
                dither=extractor.dither,
                return_attention_mask=extractor.return_attention_mask,
            )
        return extractor

    def shift_variants(self, split: Dataset, cfg: Config, processor: Any, seed: int) -> dict[str, Dataset]:
        return audio_variants(split, cfg, processor.sampling_rate, seed)

    def check_input(self, value: Any, cfg: Config) -> None:
        read_audio(value, data_root(cfg))

    def _features(self, processor: Any, waves: list[np.ndarray]) -> np.ndarray:
        key = processor.model_input_names[0]
        out = processor(waves, sampling_rate=processor.sampling_rate, return_tensors="np")
        return np.asarray(out[key], dtype=np.float32)

    def _waves(self, processor: Any, cfg: Config, inputs: list[Any]) -> list[np.ndarray]:
        root, rate = data_root(cfg), processor.sampling_rate
        return [load_audio(x, rate, root) for x in inputs]

    def prepare(
        self, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None = None
    ) -> Dataset:
        column, label, a = cfg.data.input_column, cfg.data.label_column, cfg.audio
        rate = processor.sampling_rate
        length = a.clip_seconds * rate
        rngs = augment_rng or AugmentRng(cfg.training.seed)

        def augment_wave(wave: np.ndarray, row: int) -> np.ndarray:
            rng = rngs.for_row(row, stream=0)
            wave = aug.speed_perturb(wave, a.speed_range, rng)
            wave = fit_length(wave, length)
            wave = aug.time_shift(wave, a.shift_seconds, rate, rng)
            wave = aug.gain(wave, a.gain_db, rng)
            return aug.add_noise(wave, a.noise_snr_db, rng)

        def augment_features(features: np.ndarray, row: int) -> np.ndarray:
            if features.ndim != 2:  # raw-waveform models (wav2vec2) have no spectrogram to mask
                return features
            rng = rngs.for_row(row, stream=1)
            features = aug.spec_mask(features, a.freq_masks, a.freq_mask_width, 0, rng)
            return aug.spec_mask(features, a.time_masks, a.time_mask_width, 1, rng)

        def transform(batch: dict[str, list]) -> dict[str, Any]:
            waves = self._waves(processor, cfg, batch[column])
            if not train:
                features = self._features(processor, [fit_length(w, length) for w in waves])
                return {processor.model_input_names[0]: list(features), "labels": batch[label]}
            rows = batch[ROW_COLUMN]
            features = self._features(processor, [augment_wave(w, r) for w, r in zip(waves, rows, strict=True)])
            features = [augment_features(f, r) for f, r in zip(features, rows, strict=True)]
            return {processor.model_input_names[0]: features, "labels": batch[label]}

        return (with_row_ids(ds) if train else ds).with_transform(transform)

    def collator(self, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None):
        import torch

        key = processor.model_input_names[0]

        def collate(rows: list[dict]) -> dict[str, Any]:
            return {
                key: torch.from_numpy(np.stack([np.asarray(r[key], dtype=np.float32) for r in rows])),
                "labels": torch.tensor([int(r["labels"]) for r in rows], dtype=torch.long),
            }

        return collate

    def encode(self, processor: Any, cfg: Config, inputs: list[Any]) -> dict[str, np.ndarray]:
        length = cfg.audio.clip_seconds * processor.sampling_rate
        waves = [fit_length(w, length) for w in self._waves(processor, cfg, inputs)]
        return {processor.model_input_names[0]: self._features(processor, waves)}


register_modality(AudioModality())
