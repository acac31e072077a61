"""Vision modality on a tiny DINOv2: image-folder data, train (LoRA / full), ONNX parity, predict, augmentations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hftl.augment import vision as aug
from hftl.config import load_config
from hftl.errors import ConfigError, DataError
from tests.helpers.run_model import torch_labels
from tests.helpers.tiny_models import tiny_vision_model
from tests.helpers.vision_data import CLASSES, vision_overrides, write_pattern_folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """An imagefolder of grey PNGs: a stand-in for a real small image set."""
    return write_pattern_folder(tmp_path_factory.mktemp("patterns"), per_class=20)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    return tiny_vision_model(tmp_path_factory.mktemp("tiny_dinov2"), num_labels=3, image_size=28)


@pytest.fixture(scope="module")
def lora_run(tiny_vit, image_folder, tmp_path_factory) -> tuple[Path, dict]:
    from hftl.recipe import run

    out = tmp_path_factory.mktemp("vision_runs") / "lora"
    results = run(load_config(None, vision_overrides(tiny_vit, image_folder, out, "method.name=lora", "method.lora.r=4")))
    return out, results


def test_image_folder_loads_with_class_names(image_folder):
    from hftl.run.data import load_splits

    splits, names = load_splits(load_config(None, [f"data.source={image_folder}", "data.input_column=image"]).data)
    assert names == list(CLASSES)
    assert sum(len(s) for s in splits.values()) == 60
    assert set(splits["train"].column_names) == {"image", "label"}


def test_lora_run_writes_adapter_model_and_sane_results(lora_run):
    out, results = lora_run
    for name in ("config.yaml", "results.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "model/config.json", "model/model.safetensors", "model/preprocessor_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["run"]["modality"] == "vision" and saved["data"]["labels"] == list(CLASSES)
    for section in ("eval", "test"):
        assert 0.0 <= saved[section]["accuracy"] <= 1.0 and np.isfinite(saved[section]["loss"])
    assert 0 < saved["params"]["trainable"] < saved["params"]["total"]
    assert saved["train"]["steps"] == 4 * 6  # 43 train rows / batch 8


def test_full_run_learns_the_patterns(tiny_vit, image_folder, tmp_path):
    from hftl.recipe import run

    results = run(load_config(None, vision_overrides(tiny_vit, image_folder, tmp_path / "full", "method.name=full")))
    assert results["params"]["trainable"] == results["params"]["total"]
    assert results["test"]["accuracy"] > 0.6  # chance is 0.33
    assert (tmp_path / "full" / "model" / "model.safetensors").is_file()


def test_export_parity_and_predict_on_a_png(lora_run, image_folder, tmp_path):
    from hftl.deploy.export import export_run, predict

    out, _ = lora_run
    report = export_run(out, ["export.quantize=false", "export.latency_repeats=2"])
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
    assert report["inputs"] == ["pixel_values"]
    images = [str(image_folder / kind / "00.png") for kind in CLASSES]
    labels = predict(out / "onnx", [images[0], Image.open(images[1]), images[2]])  # a path or a PIL image
    assert [label for label, _ in labels] == torch_labels(out, images)
    assert all(0.0 < score <= 1.0 for _, score in labels)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match="broken.png"):
        predict(out / "onnx", [str(bad)])


def test_corrupt_png_in_training_data_names_the_file(tiny_vit, image_folder, tmp_path):
    import shutil

    from hftl.modalities import get_modality
    from hftl.run.data import load_splits

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "dark" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cfg = load_config(None, vision_overrides(tiny_vit, data, tmp_path / "run"))
    splits, _ = load_splits(cfg.data)
    vision = get_modality("vision")
    processor = vision.load_processor(str(tiny_vit), cfg)
    with pytest.raises(DataError, match="00.png"):
        for split in splits.values():
            prepared = vision.prepare(split, processor, cfg, train=False)
            prepared[: len(prepared)]


def test_encode_is_deterministic_and_normalised(tiny_vit):
    from hftl.modalities import get_modality

    cfg = load_config(None, ["modality=vision", "vision.image_size=21"])
    vision = get_modality("vision")
    processor = vision.load_processor(str(tiny_vit), cfg)
    grey = Image.fromarray(np.full((40, 30), 128, np.uint8))  # grey, non-square: converted and centre-cropped
    first = vision.encode(processor, cfg, [grey, grey])["pixel_values"]
    assert first.shape == (2, 3, 21, 21) and first.dtype == np.float32
    np.testing.assert_allclose(first, (128 / 255 - 0.5) / 0.25, atol=1e-5)
    np.testing.assert_array_equal(first, vision.encode(processor, cfg, [grey, grey])["pixel_values"])



@pytest.mark.parametrize("size", [21, 35, 56])
def test_saved_processor_gives_the_same_view_as_hftl(tiny_vit, size):
    from hftl.modalities import get_modality

    cfg = load_config(None, ["modality=vision", f"vision.image_size={size}"])
    vision = get_modality("vision")
    processor = vision.load_processor(str(tiny_vit), cfg)  # saved with the model and the ONNX export
    assert processor.crop_size == {"height": size, "width": size}
    expected = processor(photo((40, 30)), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(vision.encode(processor, cfg, [photo((40, 30))])["pixel_values"], expected, atol=1e-6)


@pytest.mark.parametrize(
    "override",
    ["vision.image_size=4", "vision.augment.hflip_prob=1.5", "vision.augment.crop_scale_min=0",
     "vision.augment.mixup_alpha=-1", "vision.augment.mix_prob=2"],  # fmt: skip
)
def test_bad_vision_settings_name_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


# ---------------------------------------------------------------------------------------------------------------
# augmentations


def photo(size: tuple[int, int] = (32, 24)) -> Image.Image:
    """An RGB image with no symmetry (a gradient plus a bright corner), so every transform shows."""
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None].repeat(h, 0)
    y = np.linspace(0, 128, h)[:, None, None].repeat(w, 1)
    array = np.concatenate([x, y, 255 - x], axis=2)
    array[:4, :4] = 255
    return Image.fromarray(array.astype(np.uint8), "RGB")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


AUGMENTS = {
    "random_resized_crop": lambda im, r: aug.random_resized_crop(im, 16, (0.3, 1.0), r, Image.Resampling.BILINEAR),
    "horizontal_flip": lambda im, r: aug.horizontal_flip(im, 1.0, r),
    "rotate": lambda im, r: aug.rotate(im, 30, r),
    "color_jitter": lambda im, r: aug.color_jitter(im, 0.4, 0.4, 0.4, r),
    "rand_augment": lambda im, r: aug.rand_augment(im, 3, 15, r),
}


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_augmentation_is_a_seeded_uint8_image(name):
    fn = AUGMENTS[name]
    first = np.asarray(fn(photo(), rng(1)))
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    expected = (16, 16, 3) if name == "random_resized_crop" else (24, 32, 3)
    assert first.shape == expected
    np.testing.assert_array_equal(first, np.asarray(fn(photo(), rng(1))))
    changed = [not np.array_equal(np.asarray(fn(photo(), rng(s))), np.asarray(photo().resize(first.shape[1::-1])))
               for s in range(5)]  # fmt: skip
    assert any(changed), f"{name} left the image unchanged"


@pytest.mark.parametrize(
    "call",
    [
        lambda im: aug.horizontal_flip(im, 0.0, rng()),
        lambda im: aug.rotate(im, 0.0, rng()),
        lambda im: aug.color_jitter(im, 0.0, 0.0, 0.0, rng()),
        lambda im: aug.rand_augment(im, 0, 9, rng()),
    ],
    ids=["flip", "rotate", "jitter", "randaugment"],
)
def test_augmentation_off_is_identity(call):
    np.testing.assert_array_equal(np.asarray(call(photo())), np.asarray(photo()))


def test_flip_mirrors_and_rotate_keeps_size():
    np.testing.assert_array_equal(np.asarray(aug.horizontal_flip(photo(), 1.0, rng())), np.asarray(photo())[:, ::-1])
    rotated = aug.rotate(photo(), 45, rng())
    assert rotated.size == photo().size
    assert (np.asarray(rotated)[0, 0] == 0).all()  # a corner rotated out is filled black


def test_random_resized_crop_full_scale_is_a_resize_and_eval_crop_is_central():
    square = photo((24, 24))
    full = aug.random_resized_crop(square, 12, (1.0, 1.0), rng(), Image.Resampling.BILINEAR, ratio=(1.0, 1.0))
    np.testing.assert_array_equal(np.asarray(full), np.asarray(square.resize((12, 12), Image.Resampling.BILINEAR)))
    crop = aug.resize_center_crop(photo((32, 24)), 24, 1.0, Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(photo((32, 24)))[:, 4:28])


def test_color_jitter_moves_brightness_within_range():
    grey = Image.fromarray(np.full((8, 8, 3), 100, np.uint8))
    for seed in range(5):
        value = np.asarray(aug.color_jitter(grey, 0.5, 0.0, 0.0, rng(seed))).mean()
        assert 50 - 1 <= value <= 150 + 1


def test_training_view_is_augmented_and_eval_view_is_not(tiny_vit):
    from hftl.modalities import get_modality
    from hftl.modalities.vision import ImagePipeline

    cfg = load_config(None, ["modality=vision", "vision.image_size=14", "vision.augment.hflip_prob=1.0"])
    processor = get_modality("vision").load_processor(str(tiny_vit), cfg)
    image = photo((14, 14))
    train = ImagePipeline(processor, cfg, train=True)(image, rng())
    evaluation = ImagePipeline(processor, cfg, train=False)(image)
    np.testing.assert_allclose(train, evaluation[:, :, ::-1], atol=1e-6)


def test_augmentations_depend_on_row_and_epoch_not_on_workers(tiny_vit, image_folder):
    from torch.utils.data import DataLoader

    from hftl.augment import AugmentRng
    from hftl.modalities import get_modality
    from hftl.run.data import load_splits

    cfg = load_config(None, [f"data.source={image_folder}", "data.input_column=image", "modality=vision",
                             "vision.image_size=14", "vision.augment.rotation_degrees=30"])  # fmt: skip
    vision = get_modality("vision")
    processor = vision.load_processor(str(tiny_vit), cfg)
    train = load_splits(cfg.data)[0]["train"].select(range(4))
    rngs = AugmentRng(seed=7)
    prepared = vision.prepare(train, processor, cfg, train=True, augment_rng=rngs)

    def one_pass(workers: int) -> np.ndarray:
        loader = DataLoader(prepared, batch_size=2, num_workers=workers, collate_fn=vision.collator(None, cfg, train=True))
        return np.concatenate([b["pixel_values"].numpy() for b in loader])

    first = one_pass(0)
    np.testing.assert_array_equal(first, one_pass(2))  # forked workers draw what the main process draws
    assert all(not np.allclose(first[i], first[j]) for i in range(4) for j in range(i))  # rows differ
    rngs.set_epoch(1)
    second = one_pass(2)
    assert all(not np.allclose(first[i], second[i]) for i in range(4))  # a new draw each epoch
    plain = vision.prepare(train, processor, cfg, train=False)
    evaluation = vision.collator(None, cfg)([plain[i] for i in range(4)])["pixel_values"].numpy()
    assert not np.allclose(first, evaluation)


def test_mixup_run_trains_with_mixed_batches(tiny_vit, image_folder, tmp_path):
    from hftl.recipe import run

    out = tmp_path / "mix"
    results = run(load_config(None, vision_overrides(tiny_vit, image_folder, out, "method.name=full",
                                              "vision.augment.mixup_alpha=0.4", "vision.augment.cutmix_alpha=1.0")))  # fmt: skip
    assert np.isfinite(results["test"]["loss"]) and results["train"]["steps"] == 4 * 6


def test_load_image_accepts_what_datasets_and_users_give(image_folder):
    import io

    from hftl.modalities.vision import load_image

    path = image_folder / "dark" / "01.png"
    expected = np.asarray(Image.open(path).convert("RGB"))
    buf = io.BytesIO()
    Image.open(path).save(buf, format="PNG")
    for item in (path, str(path), {"bytes": None, "path": str(path)}, {"bytes": buf.getvalue(), "path": None},
                 np.asarray(Image.open(path)), Image.open(path)):  # fmt: skip
        image = load_image(item, "row 0")
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), expected)
    with pytest.raises(DataError, match="row 7.*expected an image"):
        load_image(3.5, "row 7")
    with pytest.raises(DataError, match="row 8: not a readable image"):
        load_image({"bytes": b"junk", "path": None}, "row 8")
