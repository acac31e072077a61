"""evaluation.shift: which shifted copies are scored (evaluation.shift_variants) and the clean pass a run's test pass
already made (not repeated)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.evaluation import shift as shift_eval
from hftl.modalities import get_modality
from tests.unit.modalities.test_shifts import photo


def _images() -> Dataset:
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    return Dataset.from_dict({"image": [photo(seed=i) for i in range(3)], "label": [0, 1, 0]}, features=features)


def _vision(*overrides: str):
    return load_config(None, ["modality=vision", "data.input_column=image", "evaluation.shift_severities=[3]", *overrides])


def test_shift_variants_keeps_the_named_copies_in_their_order():
    cfg = _vision("evaluation.shift_variants=[contrast@3, gaussian_noise@3]")
    splits = shift_eval.shifted_splits(_images(), cfg, get_modality("vision"), None)
    assert list(splits) == ["contrast@3", "gaussian_noise@3"]
    every = shift_eval.shifted_splits(_images(), _vision(), get_modality("vision"), None)
    assert len(every) == 4 and "rotation_30deg (not CIFAR-10-C)" in every  # null: all of the modality's copies
    assert [x["bytes"] for x in splits["contrast@3"]["image"]] == [x["bytes"] for x in every["contrast@3"]["image"]]


def test_an_unknown_shift_name_is_an_error_listing_the_known_ones():
    cfg = _vision("evaluation.shift_variants=[gaussian_noise@5]")  # severity 5 is not among shift_severities
    with pytest.raises(ConfigError, match=r"shift_variants: \['gaussian_noise@5'\].*gaussian_noise@3.*contrast@3"):
        shift_eval.shifted_splits(_images(), cfg, get_modality("vision"), None)


@pytest.mark.parametrize("names", ["[]", "[contrast@3, contrast@3]"])
def test_shift_variants_must_be_distinct_names(names):
    with pytest.raises(ConfigError, match="evaluation.shift_variants"):
        _vision(f"evaluation.shift_variants={names}")


def test_a_run_scores_its_test_rows_once_and_each_shift_once(quick_overrides, monkeypatch):
    """The shift's clean accuracy is the run's test pass (same model, same rows), not a second pass over them."""
    from hftl.recipe import run

    passes: list[int] = []
    real = shift_eval.evaluate

    def counted(model, loader, *args, **kwargs):
        passes.append(len(loader.dataset))
        return real(model, loader, *args, **kwargs)

    monkeypatch.setattr(shift_eval, "evaluate", counted)
    results = run(load_config(None, [*quick_overrides, "evaluation.shift=true", "study.per_row=true"]))
    assert passes == [results["data"]["test"]]  # first_sentence only: the clean rows are not scored again
    s = results["shift"]
    assert s["clean_accuracy"] == results["test"]["accuracy"]
    assert list(s["variants"]) == ["first_sentence"]
    assert list(results["per_row"]["shift"]) == ["first_sentence"]
    assert len(results["per_row"]["shift"]["first_sentence"]) == len(results["per_row"]["test_correct"])


def test_a_shifted_copy_reaches_the_model_corrupted_at_the_raw_size_before_the_resize():
    """What the model sees under gaussian_noise@3 is the processor's view (resize to 56, normalise) of the raw 28 px
    image with CIFAR-10-C's noise added: every row changes, grey images stay grey."""
    from types import SimpleNamespace

    from hftl.modalities import shifts
    from hftl.modalities.vision import ImagePipeline, load_image

    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    grey = [photo((28, 28), seed=i).convert("L") for i in range(3)]
    split = Dataset.from_dict({"image": grey, "label": [0, 1, 0]}, features=features)
    cfg = _vision("vision.image_size=56", "evaluation.shift_variants=[gaussian_noise@3]")
    processor = SimpleNamespace(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])  # what the view reads
    vision = get_modality("vision")
    (shifted,) = shift_eval.shifted_splits(split, cfg, vision, processor).values()
    seen = [r["pixel_values"] for r in vision.prepare(shifted, processor, cfg, train=False)]
    clean = [r["pixel_values"] for r in vision.prepare(split, processor, cfg, train=False)]
    view = ImagePipeline(processor, cfg, train=False)
    for i, image in enumerate(grey):
        noisy = shifts.gaussian_noise(image.convert("RGB"), 3, shifts.row_rng(cfg.data.split_seed, "gaussian_noise@3", i))
        expected = view(load_image(shifts.png(noisy), "expected"))
        assert np.asarray(seen[i]).shape == (3, 56, 56) and np.allclose(seen[i], expected)
        assert np.abs(np.asarray(seen[i]) - np.asarray(clean[i])).mean() > 0.1  # noise std 0.08 / std 0.25, after resize
        assert np.array_equal(seen[i][0], seen[i][1]) and np.array_equal(seen[i][0], seen[i][2])  # grey noise
