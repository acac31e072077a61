"""Shifts a reviewer can trust: grey noise for grey images, honest names, audio shifts built from signal processing
and from espeak-ng voices no split uses, and forgetting as a paired change."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hftl.evaluation.forgetting import paired_change_se
from hftl.modalities import shifts
from hftl.modalities.speech_shifts import HELDOUT_VARIANTS, respoken_plan, respoken_variants
from hftl.zoo.speech_commands import PITCHES, SPEEDS, VOICES

RATE = 16_000


def test_grey_images_take_grey_noise_and_colour_images_colour_noise():
    grey = Image.fromarray(np.full((16, 16), 128, np.uint8)).convert("RGB")
    noisy = np.asarray(shifts.gaussian_noise(grey, 5, np.random.default_rng(0)), np.int16)
    assert (noisy[..., 0] == noisy[..., 1]).all() and (noisy[..., 1] == noisy[..., 2]).all()
    assert noisy.std() > 5  # it is noisy
    colour = Image.fromarray(np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    noisy = np.asarray(shifts.gaussian_noise(colour, 5, np.random.default_rng(0)), np.int16)
    assert not shifts.is_grey(noisy)


def test_only_cifar_10_c_corruptions_carry_cifar_names():
    assert shifts.corruption_name("gaussian_noise", 3) == "gaussian_noise@3"
    assert shifts.corruption_name("contrast", 1) == "contrast@1"
    assert shifts.corruption_name("rotation", 3) == "rotation_30deg (not CIFAR-10-C)"


def _tone_mix(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.2 * np.sin(2 * np.pi * 500 * t) + 0.2 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)


def _band_power(wave: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


@pytest.mark.parametrize("shift", [shifts.lowpass, shifts.telephone])
def test_band_limits_remove_the_high_band_and_keep_the_power(shift):
    wave = _tone_mix()
    out = shift(wave, RATE)
    assert out.shape == wave.shape and out.dtype == np.float32
    assert _band_power(out, 4000, 8000) < 1e-3 * _band_power(wave, 4000, 8000)  # the 5 kHz tone is gone
    assert _band_power(out, 400, 600) > 0.3 * _band_power(wave, 400, 600)  # the 500 Hz one stays
    assert np.mean(out.astype(np.float64) ** 2) == pytest.approx(np.mean(wave.astype(np.float64) ** 2), rel=1e-3)


def test_reverb_adds_a_tail_and_is_deterministic_per_row():
    wave = np.zeros(RATE, np.float32)
    wave[:1600] = np.sin(np.arange(1600) / 3.0)
    a = shifts.reverb(wave, RATE, shifts.row_rng(0, "reverb", 0))
    b = shifts.reverb(wave, RATE, shifts.row_rng(0, "reverb", 0))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[4000:8000]).max() > 1e-3  # energy after the dry sound ended: the room's tail


def test_respoken_voices_and_styles_are_held_out_of_every_split():
    used_variants = {v.split("+", 1)[1] for voices in VOICES.values() for v in voices}
    assert not used_variants & set(HELDOUT_VARIANTS)
    plan = respoken_plan("en-us+m7", 160, 50)
    assert plan["voice_heldout_klatt"] == ("en-us+klatt", 160, 50)
    (fast_voice, fast_speed, _), (_, _, low_pitch) = plan["style_fast_260wpm"], plan["style_low_pitch_10"]
    assert fast_voice == "en-us+m7" and fast_speed > max(SPEEDS) and low_pitch < min(PITCHES)


def test_respoken_variants_speak_each_rows_word(tmp_path, monkeypatch):
    from datasets import ClassLabel, Dataset, Features, Value

    from hftl.config import load_config
    from hftl.zoo.espeak import espeak_binary

    try:
        espeak_binary()
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"espeak-ng is not installed here: {err}")
    monkeypatch.setenv("HFTL_HOME", str(tmp_path))
    features = Features(audio=Value("string"), label=ClassLabel(names=["yes", "no"]), voice=Value("string"),
                        speed=Value("int32"), pitch=Value("int32"))  # fmt: skip
    split = Dataset.from_dict({"audio": ["a.wav", "b.wav"], "label": [0, 1], "voice": ["en-us+m7", "en+Annie"],
                               "speed": [130, 160], "pitch": [50, 30]}, features=features)  # fmt: skip
    cfg = load_config(None, ["modality=audio", "data.input_column=audio"])
    out = respoken_variants(split, cfg, RATE, RATE)
    assert sorted(out) == sorted(respoken_plan("en-us+m7", 130, 50))
    for clips in out.values():
        assert len(clips) == 2 and all(c.shape == (RATE,) and np.abs(c).max() > 0 for c in clips)
    assert not np.allclose(out["voice_heldout_whisper"][0], out["voice_heldout_klatt"][0])
    assert list((tmp_path / "cache" / "espeak-shift").glob("*.npy"))  # cached for the next run of the study
    again = respoken_variants(split, cfg, RATE, RATE)
    np.testing.assert_array_equal(again["style_fast_260wpm"][1], out["style_fast_260wpm"][1])


def test_forgetting_standard_error_is_the_paired_one():
    before = [1, 1, 0, 1, 0, 1, 1, 0]
    after = [1, 0, 0, 1, 1, 0, 1, 0]
    diff = np.array(after) - np.array(before)  # [0,-1,0,0,1,-1,0,0]
    assert paired_change_se(before, after) == pytest.approx(diff.std(ddof=1) / np.sqrt(8))
    assert paired_change_se([1, 0, 1], [1, 0, 1]) == 0.0  # nothing changed: no uncertainty about the change
