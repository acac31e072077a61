"""EfficientNet-Lite0/1/2 run at their own published resolutions (224 / 240 / 260) when a run leaves
vision.image_size unset: the size comes from the image processor the zoo entry saves beside the weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.modalities import get_modality
from hftl.zoo.efficientnet_lite import image_processor

PUBLISHED = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


@pytest.fixture(scope="module")
def lite_folders(tmp_path_factory):
    """Each variant's processor as the zoo entry writes it (build() saves image_processor(resolution))."""
    from hftl.models.efficientnet_lite import VARIANTS

    folders = {}
    for variant in PUBLISHED:
        folder = tmp_path_factory.mktemp(variant)
        image_processor(VARIANTS[variant][2]).save_pretrained(folder)
        folders[variant] = folder
    return folders


@pytest.mark.parametrize("variant", list(PUBLISHED))
def test_each_lite_runs_at_its_published_resolution(lite_folders, variant):
    vision = get_modality("vision")
    cfg = load_config(None, ["modality=vision"])  # vision.image_size unset: the backbone's own
    assert cfg.vision.image_size is None
    processor = vision.load_processor(str(lite_folders[variant]), cfg)
    pixels = vision.encode(processor, cfg, [Image.fromarray(np.full((28, 28), 200, np.uint8))])["pixel_values"]
    side = PUBLISHED[variant]
    assert pixels.shape == (1, 3, side, side)
    assert processor.crop_size == {"height": side, "width": side}  # what the run saves with its model


def test_an_explicit_size_still_overrides_every_backbone(lite_folders):
    vision = get_modality("vision")
    cfg = load_config(None, ["modality=vision", "vision.image_size=56"])
    for folder in lite_folders.values():
        processor = vision.load_processor(str(folder), cfg)
        assert vision.encode(processor, cfg, [Image.new("RGB", (40, 30))])["pixel_values"].shape == (1, 3, 56, 56)


def test_a_processor_without_a_size_is_a_clear_error():
    from transformers import BitImageProcessor

    from hftl.modalities.vision import native_size

    processor = BitImageProcessor(do_center_crop=False)
    processor.size = {}
    with pytest.raises(ConfigError, match="vision.image_size"):
        native_size(processor)
