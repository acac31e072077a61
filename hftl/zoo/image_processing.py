"""The image processor saved beside a zoo vision backbone: what it was trained with, for users of the folder."""

from __future__ import annotations

from collections.abc import Sequence


def center_crop_processor(crop: int, shortest_edge: int, mean: Sequence[float], std: Sequence[float]):
    """Bicubic resize of the short side to ``shortest_edge``, centre crop ``crop`` x ``crop``, normalise."""
    from transformers import BitImageProcessor
    from transformers.image_utils import PILImageResampling

    return BitImageProcessor(
        do_resize=True,
        size={"shortest_edge": shortest_edge},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=True,
        crop_size={"height": crop, "width": crop},
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
        do_convert_rgb=True,
    )
