"""Image classification: PIL decoding, lazy per-batch preprocessing and augmentation, ViT-family LoRA targets.

Preprocessing is hftl's own (PIL + numpy), driven by the model's saved image processor for what the backbone
was trained with (mean, std, resample filter, resize-to-crop ratio, and its resolution) and by ``vision.image_size``
for the size, so one code path serves training, export and predict. The size belongs to the backbone: left unset,
each backbone runs at the resolution its image processor declares (EfficientNet-Lite0/1/2 at 224 / 240 / 260, as
published); ``vision.image_size`` overrides it for every backbone (e.g. lowered for CPU runs).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hftl.augment import ROW_COLUMN, AugmentRng, with_row_ids
from hftl.augment import vision as aug
from hftl.augment.mix import mix_batch
from hftl.errors import ConfigError, DataError, InputTooLarge
from hftl.modalities import Modality, register_modality, shifts

if TYPE_CHECKING:
    from datasets import Dataset
    from PIL import Image

    from hftl.config import Config

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass
class VisionAugmentConfig:
    """Training-time augmentation; every setting's default is off, so a run sees exactly the eval view unless asked."""

    crop_scale_min: float = field(
        default=1.0, metadata={"help": "random resized crop of [min, 1] of the area; 1.0 = off (resize + centre crop)"}
    )
    hflip_prob: float = field(default=0.0, metadata={"help": "probability of a left-right mirror"})
    rotation_degrees: float = field(default=0.0, metadata={"help": "random rotation in [-d, d] degrees; 0 = off"})
    brightness: float = field(default=0.0, metadata={"help": "brightness factor drawn from [1-b, 1+b]; 0 = off"})
    contrast: float = field(default=0.0, metadata={"help": "contrast factor drawn from [1-c, 1+c]; 0 = off"})
    saturation: float = field(default=0.0, metadata={"help": "saturation factor drawn from [1-s, 1+s]; 0 = off"})
    randaugment_ops: int = field(default=0, metadata={"help": "RandAugment: operations per image; 0 = off"})
    randaugment_magnitude: int = field(default=9, metadata={"help": "RandAugment: magnitude of each operation, 0..30"})
    mixup_alpha: float = field(default=0.0, metadata={"help": "mixup: Beta(a, a) blend of image pairs and their labels; 0 = off"})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "cutmix: Beta(a, a) share of an image pasted from another; 0 = off"})
    mix_prob: float = field(default=1.0, metadata={"help": "probability that a batch is mixed (mixup/cutmix on)"})
    mix_switch_prob: float = field(default=0.5, metadata={"help": "with both on: probability of cutmix rather than mixup"})

    def __post_init__(self) -> None:
        p = "vision.augment."
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ConfigError(f"{p}crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ConfigError(f"{p}hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if not 0.0 <= self.rotation_degrees <= 180.0:
            raise ConfigError(f"{p}rotation_degrees must be in [0, 180], got {self.rotation_degrees}")
        for key in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{p}{key} must be in [0, 1], got {getattr(self, key)}")
        if self.randaugment_ops < 0:
            raise ConfigError(f"{p}randaugment_ops must be >= 0, got {self.randaugment_ops}")
        for key in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{p}{key} must be >= 0, got {getattr(self, key)}")
        for key in ("mix_prob", "mix_switch_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{p}{key} must be in [0, 1], got {getattr(self, key)}")
        if not 0 <= self.randaugment_magnitude <= aug.MAX_MAGNITUDE:
            raise ConfigError(f"{p}randaugment_magnitude must be in [0, {aug.MAX_MAGNITUDE}], got {self.randaugment_magnitude}")


@dataclass
class VisionConfig:
    image_size: int | None = field(
        default=None,
        metadata={"help": "square input side in pixels; null: the backbone's own resolution (its image processor's crop "
                          "size: EfficientNet-Lite0/1/2 224/240/260); lower it for CPU runs (DINOv2 interpolates its "
                          "position embeddings)"},
    )
    augment: VisionAugmentConfig = field(
        default_factory=VisionAugmentConfig, metadata={"help": "training-time augmentation (off by default)"}
    )

    def __post_init__(self) -> None:
        if self.image_size is not None and not 8 <= self.image_size <= 4096:
            raise ConfigError(f"vision.image_size must be in [8, 4096], got {self.image_size}")


def load_image(item: Any, where: str) -> Image.Image:
    """An RGB PIL image from a PIL image, a path, a ``datasets`` Image dict ({'bytes', 'path'}) or a uint8 array.

    Raises:
        DataError: the input cannot be read as an image; the message names ``where`` (file or row).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(item, Image.Image):
            image = item
        elif isinstance(item, (str, Path)):
            where = str(item)
            image = Image.open(item)
        elif isinstance(item, dict) and (item.get("bytes") or item.get("path")):
            where = item.get("path") or where
            image = Image.open(io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"])
        elif isinstance(item, np.ndarray):
            image = Image.fromarray(item)
        else:
            raise DataError(f"{where}: expected an image (path, PIL image or bytes), got {type(item).__name__}")
        image.load()  # decode now, so a truncated file fails here and not inside the model
        return image.convert("RGB")  # grey (Fashion-MNIST) and RGBA inputs feed a 3-channel backbone
    except (OSError, UnidentifiedImageError, ValueError, TypeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{where}: not a readable image: {err}") from err


def _view_settings(processor: Any) -> tuple[list[float], list[float], int, float]:
    """(mean, std, resample, crop_pct) the backbone was trained with, read from its image processor."""
    from PIL import Image

    mean = list(getattr(processor, "image_mean", None) or [0.5, 0.5, 0.5])
    std = list(getattr(processor, "image_std", None) or [0.5, 0.5, 0.5])
    resample = int(getattr(processor, "resample", None) or Image.Resampling.BILINEAR)
    crop_pct = 1.0
    size, crop = getattr(processor, "size", None) or {}, getattr(processor, "crop_size", None) or {}
    # e.g. DINOv2: shortest edge 256 then a 224 crop keeps the central 87.5%
    if getattr(processor, "do_center_crop", False) and "shortest_edge" in size and "height" in crop:
        crop_pct = min(1.0, crop["height"] / size["shortest_edge"])
    return mean, std, resample, crop_pct


def native_size(processor: Any) -> int:
    """The square input side the backbone's image processor declares: its crop size, else its resize size.

    Raises:
        ConfigError: the processor declares neither (set vision.image_size).
    """
    size, crop = getattr(processor, "size", None) or {}, getattr(processor, "crop_size", None) or {}
    if getattr(processor, "do_center_crop", False) and "height" in crop:
        return int(crop["height"])
    for key in ("height", "shortest_edge"):
        if key in size:
            return int(size[key])
    raise ConfigError(
        f"vision.image_size is not set and the image processor ({type(processor).__name__}) declares no size "
        "(crop_size / size): set vision.image_size"
    )


def fit_processor_to_size(processor: Any, size: int | None) -> Any:
    """Set the processor's resize / crop to ``size`` (same crop ratio), in place; None keeps the backbone's own.

    The processor is saved with the model and the ONNX export, so that users of those folders without hftl
    feed the resolution the model was trained at.
    """
    if size is None:
        native_size(processor)  # a processor without a size is an error now, not at the first image
        return processor
    crop_pct = _view_settings(processor)[3]
    old_size, crop = getattr(processor, "size", None) or {}, getattr(processor, "crop_size", None) or {}
    if getattr(processor, "do_center_crop", False) and "shortest_edge" in old_size and "height" in crop:
        processor.size = {"shortest_edge": max(size, round(size / crop_pct))}
        processor.crop_size = {"height": size, "width": size}
    elif "height" in old_size:
        processor.size = {"height": size, "width": size}
    return processor


class ImagePipeline:
    """Image -> normalised CHW float32 array at ``vision.image_size`` (unset: the processor's own size); augmented only
    when ``train`` is true."""

    def __init__(self, processor: Any, cfg: Config, train: bool):
        self.size = cfg.vision.image_size or native_size(processor)
        self.augment = cfg.vision.augment if train else None
        mean, std, self.resample, self.crop_pct = _view_settings(processor)
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)

    def view(self, image: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        """The model's view of ``image``; augmented with draws from ``rng`` when training."""
        a = self.augment if rng is not None else None
        if a is not None and a.crop_scale_min < 1.0:
            image = aug.random_resized_crop(image, self.size, (a.crop_scale_min, 1.0), rng, self.resample)
        else:
            image = aug.resize_center_crop(image, self.size, self.crop_pct, self.resample)
        if a is not None:
            image = aug.horizontal_flip(image, a.hflip_prob, rng)
            image = aug.rotate(image, a.rotation_degrees, rng)
            image = aug.color_jitter(image, a.brightness, a.contrast, a.saturation, rng)
            image = aug.rand_augment(image, a.randaugment_ops, a.randaugment_magnitude, rng)
        return image

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        pixels = np.asarray(self.view(image, rng), np.float32).transpose(2, 0, 1) / 255.0
        return (pixels - self.mean) / self.std


def vision_variants(split: Dataset, cfg: Config, severities: list[int], seed: int) -> dict[str, Dataset]:
    """One copy of ``split`` per corruption and severity, the images corrupted and stored as PNG bytes."""
    from datasets import (
        Image as ImageFeature,  # datasets loads slowly; only shift measurements need its Image type
    )

    column = cfg.data.input_column
    raw = split.cast_column(column, ImageFeature(decode=False)) if isinstance(split.features[column], ImageFeature) else split
    images = [load_image(x, f"column '{column}' row {i} (shift)") for i, x in enumerate(raw[column])]
    out = {}
    for name, corrupt in shifts.CORRUPTIONS.items():
        for severity in severities:
            variant = shifts.corruption_name(name, severity)
            shifted = [shifts.png(corrupt(im, severity, shifts.row_rng(seed, variant, i))) for i, im in enumerate(images)]
            out[variant] = shifts.replace_column(raw, column, shifted)
    return out


class VisionModality(Modality):
    name = "vision"
    config_section = VisionConfig
    onnx_task = "image-classification"
    pooling = "cls"
    default_input_column = "image"
    forgetting_probe = ("zoo:digits", "image", "label")
    auto_model_name = "AutoModelForImageClassification"
    file_suffixes = IMAGE_SUFFIXES
    sample_file = "image.png"
    upload_types = "image/*"

    def check_served_input(self, value: Any, limits: Any) -> dict[str, bytes]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(value)) as image:  # reads the header only
                width, height = image.size
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"not a readable image ({len(value)} bytes): {err}") from err
        if width * height > limits.max_image_pixels:
            raise InputTooLarge(
                f"image of {width}x{height} = {width * height} pixels; "
                f"the limit is {limits.max_image_pixels} pixels (--max-image-pixels)"
            )
        return {"bytes": value}

    def card_onnx_inputs(self, config: dict[str, Any]) -> tuple[str, str]:
        size = (config.get("vision") or {}).get("image_size")
        at = f"{size}x{size} pixels" if size else "the resolution in `preprocessor_config.json`"
        return f'["{self.sample_file}"]', f"the image processor's `pixel_values` at {at}"

    def card_example(self, config: dict[str, Any]) -> list[str]:
        return [
            "from PIL import Image",
            'image = Image.new("RGB", (224, 224))  # your image: Image.open(PATH).convert("RGB")',
            'inputs = processor(images=[image], return_tensors="pt")',
        ]

    lora_targets = {
        "dinov2": ["query", "value"],
        "vit": ["query", "value"],
        "deit": ["query", "value"],
        "vit_msn": ["query", "value"],
        "beit": ["query", "value"],
        "data2vec-vision": ["query", "value"],
        "swin": ["query", "value"],
        # a CNN: the 1x1 expand / project convolutions of every block (peft adapts Conv2d)
        "efficientnet_lite": ["_expand_conv", "_project_conv"],
    }

    def load_processor(self, source: str, cfg: Config) -> Any:
        from transformers import AutoImageProcessor

        # use_fast=False: the fast processors need torchvision. hftl resizes itself; it reads mean/std/resample/crop.
        processor = AutoImageProcessor.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code, use_fast=False
        )
        return fit_processor_to_size(processor, cfg.vision.image_size)

    def shift_variants(self, split: Dataset, cfg: Config, processor: Any, seed: int) -> dict[str, Dataset]:
        return vision_variants(split, cfg, cfg.evaluation.shift_severities, seed)

    def check_input(self, value: Any, cfg: Config) -> None:
        load_image(value, "image")

    def prepare(
        self, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None = None
    ) -> Dataset:
        from datasets import Image

        column, label = cfg.data.input_column, cfg.data.label_column
        if isinstance(ds.features.get(column), Image):
            # Undecoded: we decode ourselves, so an unreadable file is a DataError naming it.
            ds = ds.cast_column(column, Image(decode=False))
        pipeline = ImagePipeline(processor, cfg, train)
        rngs = augment_rng or AugmentRng(cfg.training.seed)
        if train:
            ds = with_row_ids(ds)

        def transform(batch: dict[str, list]) -> dict[str, list]:
            where = f"column '{column}' ({'train' if train else 'eval'} split)"
            images = [load_image(x, where) for x in batch[column]]
            if not train:
                return {"pixel_values": [pipeline(im) for im in images], "labels": batch[label]}
            rows = batch[ROW_COLUMN]
            pixels = [pipeline(im, rngs.for_row(row)) for im, row in zip(images, rows, strict=True)]
            return {"pixel_values": pixels, "labels": batch[label], ROW_COLUMN: rows}

        # Lazy and per batch: augmentation draws fresh each epoch and nothing large is cached on disk.
        return ds.with_transform(transform)

    def collator(self, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None):
        a = cfg.vision.augment
        if not train or (a.mixup_alpha <= 0 and a.cutmix_alpha <= 0):
            return _stack
        rngs = augment_rng or AugmentRng(cfg.training.seed)

        def stack_and_mix(rows: list[dict]) -> dict:
            import torch

            batch = _stack(rows)
            rng = rngs.for_batch([r[ROW_COLUMN] for r in rows])
            pixels, partner, weight = mix_batch(
                batch["pixel_values"].numpy(), batch["labels"].numpy(), rng,
                a.mixup_alpha, a.cutmix_alpha, a.mix_prob, a.mix_switch_prob,
            )  # fmt: skip
            batch["pixel_values"] = torch.from_numpy(pixels)
            batch["mix_labels"] = torch.from_numpy(partner)
            batch["mix_weight"] = torch.full((len(rows),), weight)
            return batch

        return stack_and_mix

    def encode(self, processor: Any, cfg: Config, inputs: list[Any]) -> dict[str, np.ndarray]:
        pipeline = ImagePipeline(processor, cfg, train=False)
        pixels = [pipeline(load_image(x, f"input {i}")) for i, x in enumerate(inputs)]
        return {"pixel_values": np.stack(pixels).astype(np.float32)}


def _stack(rows: list[dict]) -> dict:
    import torch

    return {
        "pixel_values": torch.from_numpy(np.stack([r["pixel_values"] for r in rows])),
        "labels": torch.tensor([int(r["labels"]) for r in rows], dtype=torch.long),
    }


register_modality(VisionModality())
