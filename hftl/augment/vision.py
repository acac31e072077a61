"""Image augmentations for classification, in PIL + numpy only (no torchvision).

Each function takes an RGB ``PIL.Image`` and a ``numpy.random.Generator`` and returns a new image; the same
generator state gives the same result, and a setting of zero (or a full crop scale) returns the input unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def resize_center_crop(image: Image.Image, size: int, crop_pct: float, resample: int) -> Image.Image:
    """Deterministic eval view: shorter edge to ``size / crop_pct``, then the central ``size`` x ``size`` square."""
    short = max(size, round(size / crop_pct))
    w, h = image.size
    # Same arithmetic as transformers' shortest-edge resize, so the saved image processor gives the same view.
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize((max(size, new_w), max(size, new_h)), resample)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def random_resized_crop(
    image: Image.Image,
    size: int,
    scale: tuple[float, float],
    rng: np.random.Generator,
    resample: int,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """A random box of ``scale`` share of the area and ``ratio`` aspect, resized to ``size`` x ``size``.

    Falls back to the whole image (then resized) when ten draws find no box that fits, as torchvision does.
    """
    w, h = image.size
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return image.resize((size, size), resample, box=(left, top, left + cw, top + ch))
    return image.resize((size, size), resample)


def horizontal_flip(image: Image.Image, prob: float, rng: np.random.Generator) -> Image.Image:
    """Mirror left-right with probability ``prob``."""
    if prob <= 0 or rng.random() >= prob:
        return image
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def rotate(image: Image.Image, degrees: float, rng: np.random.Generator, fill: tuple[int, ...] = (0, 0, 0)) -> Image.Image:
    """Rotate by an angle drawn from [-degrees, degrees] about the centre; size kept, corners filled with ``fill``."""
    if degrees <= 0:
        return image
    angle = float(rng.uniform(-degrees, degrees))
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=fill)


def color_jitter(
    image: Image.Image, brightness: float, contrast: float, saturation: float, rng: np.random.Generator
) -> Image.Image:
    """Scale brightness, contrast and saturation by factors drawn from [1 - s, 1 + s], in a random order."""
    ops = [(ImageEnhance.Brightness, brightness), (ImageEnhance.Contrast, contrast), (ImageEnhance.Color, saturation)]
    ops = [(op, s) for op, s in ops if s > 0]
    for i in rng.permutation(len(ops)):
        op, strength = ops[i]
        image = op(image).enhance(float(rng.uniform(max(0.0, 1 - strength), 1 + strength)))
    return image


def _signed(rng: np.random.Generator, value: float) -> float:
    return value if rng.random() < 0.5 else -value


def _affine(image: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


# RandAugment's operations; m is the magnitude in [0, 1] (the policy's magnitude / 30, as in the paper's scale).
_RANDAUGMENT_OPS = {
    "identity": lambda im, m, rng: im,
    "autocontrast": lambda im, m, rng: ImageOps.autocontrast(im),
    "equalize": lambda im, m, rng: ImageOps.equalize(im),
    "rotate": lambda im, m, rng: im.rotate(_signed(rng, 30 * m), resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)),
    "solarize": lambda im, m, rng: ImageOps.solarize(im, threshold=int(256 - 256 * m)),
    "posterize": lambda im, m, rng: ImageOps.posterize(im, bits=max(1, int(8 - 4 * m))),
    "brightness": lambda im, m, rng: ImageEnhance.Brightness(im).enhance(1 + _signed(rng, 0.9 * m)),
    "contrast": lambda im, m, rng: ImageEnhance.Contrast(im).enhance(1 + _signed(rng, 0.9 * m)),
    "color": lambda im, m, rng: ImageEnhance.Color(im).enhance(1 + _signed(rng, 0.9 * m)),
    "sharpness": lambda im, m, rng: ImageEnhance.Sharpness(im).enhance(1 + _signed(rng, 0.9 * m)),
    "shear_x": lambda im, m, rng: _affine(im, (1, _signed(rng, 0.3 * m), 0, 0, 1, 0)),
    "shear_y": lambda im, m, rng: _affine(im, (1, 0, 0, _signed(rng, 0.3 * m), 1, 0)),
    "translate_x": lambda im, m, rng: _affine(im, (1, 0, _signed(rng, 0.45 * m * im.size[0]), 0, 1, 0)),
    "translate_y": lambda im, m, rng: _affine(im, (1, 0, 0, 0, 1, _signed(rng, 0.45 * m * im.size[1]))),
}
RANDAUGMENT_OPS = tuple(_RANDAUGMENT_OPS)
MAX_MAGNITUDE = 30


def rand_augment(image: Image.Image, num_ops: int, magnitude: int, rng: np.random.Generator) -> Image.Image:
    """RandAugment: ``num_ops`` operations drawn uniformly (with replacement), each at ``magnitude`` (0..30)."""
    if num_ops <= 0:
        return image
    strength = min(max(magnitude, 0), MAX_MAGNITUDE) / MAX_MAGNITUDE
    for i in rng.integers(0, len(RANDAUGMENT_OPS), size=num_ops):
        image = _RANDAUGMENT_OPS[RANDAUGMENT_OPS[i]](image, strength, rng)
    return image
