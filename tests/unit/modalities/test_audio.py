"""Audio modality end to end on a tiny Whisper and sine tones, plus the decoding rules and each augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hftl.augment import audio as aug
from hftl.config import load_config
from hftl.errors import ConfigError, DataError
from hftl.modalities import get_modality
from hftl.modalities.audio import load_audio
from tests.helpers.audio_data import RATE, TONES, tone, write_tone_csv
from tests.helpers.run_model import torch_labels
from tests.helpers.tiny_models import tiny_audio_model


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    return tiny_audio_model(tmp_path_factory.mktemp("tiny_whisper"), num_labels=3, clip_seconds=1)


@pytest.fixture(scope="module")
def tone_csv(tmp_path_factory) -> Path:
    return write_tone_csv(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="module")
def audio_run(tiny_whisper, tone_csv, tmp_path_factory) -> tuple[Path, dict]:
    from hftl.recipe import run

    out = tmp_path_factory.mktemp("audio_run") / "run"
    cfg = load_config(None, [
        "modality=audio", f"model.source={tiny_whisper}", f"data.source={tone_csv}", "data.input_column=audio",
        "audio.clip_seconds=1", "audio.shift_seconds=0.1", "audio.gain_db=[-3, 3]", "audio.time_masks=1",
        "method.name=lora", "method.lora.r=4", "training.epochs=6", "training.batch_size=8",
        "training.learning_rate=5e-3", "training.warmup_ratio=0.0", "training.tracking=none",
        f"output.dir={out}",
    ])  # fmt: skip
    return out, run(cfg)


def test_lora_run_learns_tones_and_writes_the_run(audio_run):
    out, results = audio_run
    for name in ("config.yaml", "results.json", "adapter/adapter_config.json", "model/config.json",
                 "model/preprocessor_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert results["run"]["modality"] == "audio"
    assert results["data"]["labels"] == sorted(TONES)
    assert results["test"]["accuracy"] >= 0.8
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["max_source_positions"] == 50


def test_export_parity_and_predict_on_a_wav(audio_run, tmp_path):
    from hftl.deploy.export import export_run, predict

    out, _ = audio_run
    report = export_run(out, ["export.latency_repeats=2", "export.quantize=false"])
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
    wav = tmp_path / "high.wav"
    sf.write(wav, tone(TONES["high"], 0.6), RATE)
    [(label, score)] = predict(out / "onnx", [str(wav)])
    assert label == "high" == torch_labels(out, [str(wav)])[0] and 0.0 < score <= 1.0


def test_whisper_encoder_is_cut_to_the_clip(tiny_whisper, tone_csv):
    from hftl.run.models import build_model

    cfg = load_config(None, ["modality=audio", f"model.source={tiny_whisper}", f"data.source={tone_csv}",
                             "audio.clip_seconds=1"])  # fmt: skip
    tiny_long = tiny_audio_model(tone_csv.parent / "long", clip_seconds=2)
    cfg_long = load_config(None, ["modality=audio", f"model.source={tiny_long}", "audio.clip_seconds=1"])
    built = build_model(cfg_long, get_modality("audio"), ["a", "b", "c"])
    assert built.model.config.max_source_positions == 50
    assert built.model.encoder.embed_positions.num_embeddings == 50
    processor = get_modality("audio").load_processor(str(tiny_long), cfg_long)
    features = get_modality("audio").encode(processor, cfg, [str(tone_csv.parent / "wav" / "low_00.wav")])
    assert features["input_features"].shape == (1, 16, 100)


def test_audio_folder_source_gives_relative_paths_that_decode(tiny_whisper, tmp_path):
    from hftl.run.data import load_splits

    for label, freq in TONES.items():
        (tmp_path / "clips" / label).mkdir(parents=True)
        for i in range(5):
            sf.write(tmp_path / "clips" / label / f"{i}.wav", tone(freq, 0.4, phase=i), RATE)
    cfg = load_config(None, ["modality=audio", f"model.source={tiny_whisper}", f"data.source={tmp_path / 'clips'}",
                             "data.input_column=audio", "audio.clip_seconds=1"])  # fmt: skip
    splits, names = load_splits(cfg.data)
    assert names == sorted(TONES) and sum(len(s) for s in splits.values()) == 15
    assert not Path(splits["train"][0]["audio"]).is_absolute()
    modality = get_modality("audio")
    processor = modality.load_processor(str(tiny_whisper), cfg)
    batch = modality.collator(processor, cfg)(list(modality.prepare(splits["train"], processor, cfg, train=False)))
    assert tuple(batch["input_features"].shape) == (len(splits["train"]), 16, 100)


def test_stereo_44k_is_resampled_and_downmixed(tmp_path):
    left = tone(440.0, 0.5, rate=44_100)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, left], axis=1), 44_100)
    wave = load_audio(str(path), RATE)
    assert wave.ndim == 1 and wave.dtype == np.float32
    assert abs(wave.size - RATE // 2) <= 2
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)


def test_relative_path_resolves_against_the_data_folder(tone_csv):
    wave = load_audio("wav/low_00.wav", RATE, root=tone_csv.parent)
    assert wave.size > 0


@pytest.mark.parametrize("content", [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"not audio at all"])
def test_corrupt_or_empty_audio_is_a_data_error_naming_the_file(tmp_path, content):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="broken.wav"):
        load_audio(str(bad), RATE)


def test_zero_length_wav_is_a_data_error(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(DataError, match="empty.wav"):
        load_audio(str(empty), RATE)


def test_truncated_wav_in_a_dataset_is_a_data_error(tiny_whisper, tone_csv, tmp_path):
    good = tone(300.0, 0.5)
    path = tmp_path / "cut.wav"
    sf.write(path, good, RATE)
    path.write_bytes(path.read_bytes()[:30])  # header cut mid-way
    cfg = load_config(None, ["modality=audio", f"model.source={tiny_whisper}", "audio.clip_seconds=1"])
    modality = get_modality("audio")
    processor = modality.load_processor(str(tiny_whisper), cfg)
    with pytest.raises(DataError, match="cut.wav"):
        modality.encode(processor, cfg, [str(path)])


def test_audio_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="audio.clip_seconds"):
        load_config(None, ["audio.clip_seconds=0"])
    with pytest.raises(ConfigError, match="audio.gain_db"):
        load_config(None, ["audio.gain_db=[6, -6]"])


# --- augmentations ---------------------------------------------------------------------------------------------


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def wave() -> np.ndarray:
    w = np.zeros(RATE, dtype=np.float32)
    w[4000:6000] = tone(500.0, 2000 / RATE)
    return w


def test_time_shift(wave):
    assert aug.time_shift(wave, 0.0, RATE, _rng()) is wave
    out = aug.time_shift(wave, 0.1, RATE, _rng())
    assert out.shape == wave.shape
    np.testing.assert_array_equal(out, aug.time_shift(wave, 0.1, RATE, _rng()))
    onset = np.flatnonzero(out)[0] - np.flatnonzero(wave)[0]
    assert onset != 0 and abs(onset) <= 1600
    np.testing.assert_allclose(np.roll(wave, onset), out)  # the same sound, moved


def test_gain(wave):
    assert aug.gain(wave, None, _rng()) is wave
    out = aug.gain(wave, [6.0, 6.0], _rng())
    assert np.abs(out).max() == pytest.approx(np.abs(wave).max() * 10 ** (6 / 20), rel=1e-5)
    ratios = [np.abs(aug.gain(wave, [-6.0, 6.0], _rng(s))).max() / np.abs(wave).max() for s in range(20)]
    assert all(10 ** (-6 / 20) - 1e-6 <= r <= 10 ** (6 / 20) + 1e-6 for r in ratios)
    np.testing.assert_array_equal(aug.gain(wave, [-6.0, 6.0], _rng(3)), aug.gain(wave, [-6.0, 6.0], _rng(3)))


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_hits_the_snr(wave, snr):
    assert aug.add_noise(wave, None, _rng()) is wave
    out = aug.add_noise(wave, snr, _rng())
    noise = out - wave
    measured = 10 * np.log10(np.mean(wave**2) / np.mean(noise**2))
    assert abs(measured - snr) <= 0.5
    np.testing.assert_array_equal(out, aug.add_noise(wave, snr, _rng()))


def test_speed_perturb(wave):
    assert aug.speed_perturb(wave, None, _rng()) is wave
    faster = aug.speed_perturb(wave, [1.25, 1.25], _rng())
    slower = aug.speed_perturb(wave, [0.8, 0.8], _rng())
    assert abs(faster.size - wave.size / 1.25) <= 2 and abs(slower.size - wave.size / 0.8) <= 2
    np.testing.assert_array_equal(aug.speed_perturb(wave, [0.9, 1.1], _rng(1)), aug.speed_perturb(wave, [0.9, 1.1], _rng(1)))
    # the pitch moves with the speed: a 500 Hz tone played 1.25x faster peaks at 625 Hz
    played = aug.speed_perturb(tone(500.0, 1.0), [1.25, 1.25], _rng())
    peak_hz = np.argmax(np.abs(np.fft.rfft(played))) * RATE / played.size
    assert peak_hz == pytest.approx(625.0, abs=3.0)


@pytest.mark.parametrize("axis", [0, 1])
def test_spec_mask(axis):
    features = _rng(5).standard_normal((16, 100)).astype(np.float32)
    assert aug.spec_mask(features, 0, 8, axis, _rng()) is features
    out = aug.spec_mask(features, 2, 8, axis, _rng())
    assert out.shape == features.shape
    np.testing.assert_array_equal(out, aug.spec_mask(features, 2, 8, axis, _rng()))
    changed = np.any(out != features, axis=1 - axis)
    assert 1 <= changed.sum() <= 16
    assert np.allclose(out[changed] if axis == 0 else out[:, changed], features.mean())


@pytest.mark.slow
def test_speech_commands_set_is_split_by_voice_and_balanced():
    from collections import Counter

    from datasets import load_from_disk

    from hftl import zoo
    from hftl.zoo.speech_commands import WORDS

    root = zoo.prepare("speech-commands-tts")
    ds = load_from_disk(str(root))
    voices = {split: set(ds[split]["voice"]) for split in ("train", "validation", "test")}
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["validation"]
    assert not voices["validation"] & voices["test"] and len(set().union(*voices.values())) >= 12
    for split in ds:
        assert ds[split].features["label"].names == list(WORDS)
        counts = Counter(ds[split]["label"])
        assert len(counts) == 10 and len(set(counts.values())) == 1
        wave = load_audio(ds[split][0]["audio"], RATE, root=root)  # relative path, resolved under the entry
        assert 0.2 * RATE < wave.size < 2 * RATE
