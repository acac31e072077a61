"""Shifted test sets: each vision corruption (shape, range, determinism, stronger with severity), audio noise at a set
SNR, the first-sentence rule, and the variants built from a split."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from hftl.config import load_config
from hftl.modalities import shifts as shift
from hftl.modalities.audio import audio_variants
from hftl.modalities.text import text_variants
from hftl.modalities.vision import vision_variants


def photo(size: tuple[int, int] = (40, 32), seed: int = 0) -> Image.Image:
    """An RGB image with edges and texture (a smooth gradient plus blocks), so blur and rotation change it."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.zeros((h, w, 3))
    pixels[..., 0] = np.linspace(0, 255, w)[None, :]
    pixels[..., 1] = np.linspace(255, 0, h)[:, None]
    pixels[::8, :, 2] = 255
    pixels[h // 4 : h // 2, w // 4 : w // 2] = rng.uniform(0, 255, (h // 2 - h // 4, w // 2 - w // 4, 3))
    return Image.fromarray(pixels.astype(np.uint8))


def change(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


@pytest.mark.parametrize("name", sorted(shift.CORRUPTIONS))
def test_corruption_keeps_shape_and_range_and_is_deterministic(name):
    corrupt, image = shift.CORRUPTIONS[name], photo()
    out = corrupt(image, 3, shift.row_rng(0, name, 7))
    assert out.size == image.size and out.mode == "RGB"
    pixels = np.asarray(out)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 40, 3)
    assert np.array_equal(pixels, np.asarray(corrupt(image, 3, shift.row_rng(0, name, 7))))
    assert change(out, image) > 0.5


@pytest.mark.parametrize("name", sorted(shift.CORRUPTIONS))
def test_corruption_grows_with_severity(name):
    corrupt, image = shift.CORRUPTIONS[name], photo()
    changes = [change(corrupt(image, s, shift.row_rng(0, name, 1)), image) for s in (1, 3, 5)]
    assert changes[0] < changes[1] < changes[2], changes


def test_noise_draws_differ_by_row_and_seed_and_contrast_pulls_to_the_mean():
    image = photo()
    a = shift.gaussian_noise(image, 5, shift.row_rng(0, "gaussian_noise_s5", 0))
    b = shift.gaussian_noise(image, 5, shift.row_rng(0, "gaussian_noise_s5", 1))
    c = shift.gaussian_noise(image, 5, shift.row_rng(1, "gaussian_noise_s5", 0))
    assert change(a, b) > 1 and change(a, c) > 1
    low = np.asarray(shift.contrast(image, 5, shift.row_rng(0, "c", 0)), np.float64)
    original = np.asarray(image, np.float64)
    # Each channel keeps its mean and shrinks about it by CIFAR-10-C's severity-5 factor (up to uint8 rounding).
    assert np.allclose(low.std(axis=(0, 1)), shift.CONTRAST_FACTOR[4] * original.std(axis=(0, 1)), atol=0.5)
    assert np.allclose(low.mean(axis=(0, 1)), original.mean(axis=(0, 1)), atol=0.5)


def test_blur_is_relative_to_the_image_size():
    # The same picture at 2x the resolution, blurred, then downsized, matches the small picture blurred.
    small, big = photo((32, 32)), photo((32, 32)).resize((64, 64), Image.Resampling.NEAREST)
    blurred_small = shift.gaussian_blur(small, 5, shift.row_rng(0, "b", 0))
    blurred_big = shift.gaussian_blur(big, 5, shift.row_rng(0, "b", 0)).resize((32, 32), Image.Resampling.BOX)
    assert change(blurred_small, blurred_big) < 0.3 * change(blurred_small, small)


def test_severity_out_of_range_is_refused():
    with pytest.raises(ValueError, match="severity"):
        shift.gaussian_noise(photo(), 6, shift.row_rng(0, "x", 0))


@pytest.mark.parametrize(
    "text,first",
    [
        ("Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant TimeWarner jumped 76%.", "Ad sales boost Time Warner profit"),
        ("It rained. Then it stopped!", "It rained."),
        ('He said "no." Then he left.', 'He said "no."'),
        ("  \n\nNo break at all", "No break at all"),
        ("Is it? Yes.", "Is it?"),
    ],
)
def test_first_sentence(text, first):
    assert shift.first_sentence(text) == first


def test_vision_variants_corrupt_every_row_deterministically():
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    split = Dataset.from_dict({"image": [photo(seed=i) for i in range(4)], "label": [0, 1, 0, 1]}, features=features)
    cfg = load_config(None, ["modality=vision", "data.input_column=image"])
    variants = vision_variants(split, cfg, [1, 5], seed=3)
    assert sorted(variants) == sorted(f"{n}_s{s}" for n in shift.CORRUPTIONS for s in (1, 5))
    again = vision_variants(split, cfg, [1, 5], seed=3)
    for name, shifted in variants.items():
        assert shifted["label"] == [0, 1, 0, 1] and len(shifted) == 4
        assert [x["bytes"] for x in shifted["image"]] == [x["bytes"] for x in again[name]["image"]]


def test_audio_variants_hit_the_snr_over_the_clip(tmp_path):
    import soundfile as sf

    rate, paths = 16_000, []
    for i in range(3):
        t = np.arange(int(0.6 * rate)) / rate
        sf.write(tmp_path / f"{i}.wav", (0.3 * np.sin(2 * np.pi * 440 * (i + 1) * t)).astype(np.float32), rate)
        paths.append(str(tmp_path / f"{i}.wav"))
    split = Dataset.from_dict({"audio": paths, "label": [0, 1, 2]})
    cfg = load_config(None, ["modality=audio", "data.input_column=audio", "audio.clip_seconds=1", f"data.source={tmp_path}"])
    variants = audio_variants(split, cfg, rate, seed=0)
    assert sorted(variants) == ["noise_snr0db", "noise_snr5db"]
    from hftl.modalities.audio import fit_length, load_audio

    for name, snr in (("noise_snr5db", 5.0), ("noise_snr0db", 0.0)):
        for path, item in zip(paths, variants[name]["audio"], strict=True):
            clean = fit_length(load_audio(path, rate), rate)
            noisy = np.asarray(item["array"], np.float64)
            assert item["sampling_rate"] == rate and noisy.shape == (rate,)
            measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean) ** 2))
            assert measured == pytest.approx(snr, abs=1e-3)


def test_text_variant_keeps_labels_and_other_columns():
    split = Dataset.from_dict(
        {"text": ["One. Two.", "Title\nBody."], "label": [1, 0], "id": ["a", "b"]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=["x", "y"]), "id": Value("string")}),
    )
    cfg = load_config(None, [])
    out = text_variants(split, cfg)["first_sentence"]
    assert out["text"] == ["One.", "Title"] and out["label"] == [1, 0] and out["id"] == ["a", "b"]
