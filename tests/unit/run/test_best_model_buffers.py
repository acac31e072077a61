"""The best checkpoint is weights AND batch-norm statistics: a run that stops past its best evaluation must score the
model exactly as it was at that evaluation, not the best step's weights with the last step's running statistics."""

from __future__ import annotations

import pytest
from transformers import BitImageProcessor

from hftl.config import load_config
from hftl.models.efficientnet_lite import EfficientNetLiteConfig, EfficientNetLiteForImageClassification
from hftl.recipe import run
from tests.helpers.vision_data import CLASSES, vision_overrides, write_pattern_folder


@pytest.fixture(scope="module")
def batch_norm_model(tmp_path_factory):
    """A tiny random EfficientNet-Lite (batch norm in every block) with fast-moving running statistics."""
    import torch

    path = tmp_path_factory.mktemp("lite")
    config = EfficientNetLiteConfig(
        width_coefficient=0.25, depth_coefficient=0.25, image_size=28, dropout_rate=0.0, num_hidden_layers=2,
        batch_norm_momentum=0.5, num_labels=len(CLASSES),
        id2label=dict(enumerate(CLASSES)), label2id={c: i for i, c in enumerate(CLASSES)},
    )  # fmt: skip
    torch.manual_seed(0)
    EfficientNetLiteForImageClassification(config).eval().save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, image_mean=[0.5] * 3,
                      image_std=[0.25] * 3).save_pretrained(path)  # fmt: skip
    return path


def test_best_model_keeps_its_batch_norm_statistics(batch_norm_model, tmp_path):
    data = write_pattern_folder(tmp_path / "data", per_class=12)

    def train(name: str, epochs: int) -> dict:
        # constant rate, no warm-up, no flips, no dropout: the first epoch is the same whatever the epoch count;
        # "best = the LARGEST loss" makes the first evaluation the best, so the 3-epoch run goes on past it
        return run(load_config(None, vision_overrides(
            batch_norm_model, data, tmp_path / name, f"training.epochs={epochs}", "training.lr_scheduler=constant",
            "vision.augment.hflip_prob=0.0", "method.name=full", "training.metric_for_best=loss",
            "training.greater_is_better=true", "output.save_merged=false",
        )))  # fmt: skip

    longer, first_epoch = train("three", 3), train("one", 1)
    assert longer["train"]["best_step"] == first_epoch["train"]["steps"] < longer["train"]["steps"]
    # the 3-epoch run's test scores are those of its best (first-epoch) model, statistics included
    assert longer["test"]["loss"] == pytest.approx(first_epoch["test"]["loss"], rel=1e-5)
    assert longer["test"]["accuracy"] == first_epoch["test"]["accuracy"]
