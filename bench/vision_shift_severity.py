"""Do the vision shifts reach the pixels the model sees, and how much do they move accuracy per severity?

    OMP_NUM_THREADS=1 python bench/vision_shift_severity.py [--train 600] [--test 300] [--size 56] [--severities 1 3 5]

A logistic regression on frozen DINOv2-small features (the zoo's, at ``--size`` px as the default compare spec) is
fitted on ``--train`` Fashion-MNIST training rows, then scored on ``--test`` test rows, clean and under each
corruption of ``hftl.evaluation.shift`` (the copies a run's evaluation.shift scores). Every image goes through the
run's own path: corruption of the raw image (28 px), then the modality's prepare (resize, crop, normalisation).
Printed per variant: accuracy, the mean absolute change of the model's input (normalised units) against the clean
input, and the share of rows whose input did not change at all (0 = every row was shifted).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 3, 5])
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from hftl.config import load_config
    from hftl.evaluation.features import load_backbone, split_features
    from hftl.evaluation.shift import shifted_splits
    from hftl.modalities import get_modality
    from hftl.run.data import load_splits

    cfg = load_config("recipes/configs/vision/dinov2_lora.yaml",
                      [f"vision.image_size={args.size}", f"evaluation.shift_severities={args.severities}"])  # fmt: skip
    modality = get_modality("vision")
    splits, labels = load_splits(cfg.data)
    backbone, processor = load_backbone(cfg, modality, labels)
    train = splits["train"].shuffle(seed=0).select(range(args.train))
    test = splits["test"].shuffle(seed=0).select(range(args.test))

    def inputs_and_features(split):
        """The model's inputs (to measure the change) and the last layer's pooled features, in the split's order."""
        pixels = np.stack([np.asarray(r["pixel_values"]) for r in modality.prepare(split, processor, cfg, train=False)])
        features, _ = split_features(backbone, modality, processor, cfg, split)
        return pixels, features[max(features)]

    label = cfg.data.label_column
    _, train_features = inputs_and_features(train)
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(train_features, train[label])
    clean_pixels, clean_features = inputs_and_features(test)
    y = np.asarray(test[label])
    print(f"{'variant':36s} accuracy  mean|d input|  rows unchanged")
    print(f"{'clean':36s} {np.mean(probe.predict(clean_features) == y):.3f}")
    for name, split in shifted_splits(test, cfg, modality, processor).items():
        pixels, features = inputs_and_features(split)
        change = np.abs(pixels - clean_pixels).reshape(len(pixels), -1)
        print(f"{name:36s} {np.mean(probe.predict(features) == y):.3f}     {change.mean():.3f}          "
              f"{np.mean(change.max(axis=1) == 0):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
