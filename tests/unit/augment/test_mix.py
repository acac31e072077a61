"""mixup / cutmix: what they do to a batch, and the loss the loop trains mixed batches with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hftl.augment.mix import cutmix_box, mix_batch
from hftl.run.training import training_loss


def batch(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([np.full((3, 8, 8), float(i), np.float32) for i in range(n)])  # row i is all i
    return images, np.arange(n)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_off_or_single_row_is_identity():
    images, labels = batch()
    out, partner, weight = mix_batch(images, labels, rng())
    assert out is images and weight == 1.0 and np.array_equal(partner, labels)
    out, _, weight = mix_batch(images[:1], labels[:1], rng(), mixup_alpha=1.0)
    assert out is images[:1].base or np.array_equal(out, images[:1])
    assert weight == 1.0
    out, _, weight = mix_batch(images, labels, rng(), mixup_alpha=1.0, prob=0.0)
    assert weight == 1.0 and np.array_equal(out, images)


def test_mixup_blends_each_row_with_its_flipped_partner():
    images, labels = batch()
    out, partner, weight = mix_batch(images, labels, rng(1), mixup_alpha=0.4)
    assert 0.0 <= weight <= 1.0 and out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(partner, labels[::-1])
    np.testing.assert_allclose(out, weight * images + (1 - weight) * images[::-1], rtol=1e-6)
    again = mix_batch(images, labels, rng(1), mixup_alpha=0.4)
    np.testing.assert_array_equal(out, again[0])  # seeded


def test_cutmix_pastes_a_box_and_weights_by_its_area():
    images, labels = batch()
    pasted = 0
    for seed in range(20):
        out, partner, weight = mix_batch(images, labels, rng(seed), cutmix_alpha=1.0)
        from_partner = out[0] == images[3]  # row 0 (all 0) receives a box of row 3 (all 3)
        assert np.allclose(from_partner.mean(), 1.0 - weight)
        assert np.array_equal(out[0][~from_partner], images[0][~from_partner])
        ys, xs = np.nonzero(from_partner[0])
        if len(ys) == 0:  # a box clipped to nothing at the border: the own label keeps full weight
            assert weight == 1.0
            continue
        pasted += 1  # one axis-aligned rectangle, the same on every channel, its area the partner's weight
        assert from_partner[0].sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert np.array_equal(from_partner[0], from_partner[1])
        assert 0.0 < weight < 1.0
    assert pasted >= 15  # Beta(1, 1) boxes are rarely empty: a cutmix that never pastes fails here


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.75, 1.0])
def test_cutmix_box_area(lam):
    top, bottom, left, right = cutmix_box(100, 100, lam, rng())
    assert 0 <= top <= bottom <= 100 and 0 <= left <= right <= 100
    assert (bottom - top) * (right - left) <= (1 - lam) * 100 * 100 + 200
    if lam in (0.0, 1.0):  # the whole image (always clipped at a border) or nothing
        return
    # A box whose centre lies far enough from the borders is not clipped: its area is (1 - lam) of the image.
    side = int(100 * np.sqrt(1 - lam)) // 2 * 2
    for seed in range(200):
        top, bottom, left, right = cutmix_box(100, 100, lam, rng(seed))
        if bottom - top == side and right - left == side:
            assert abs((bottom - top) * (right - left) - (1 - lam) * 100 * 100) <= 4 * 100  # rounding: 2 rows, 2 columns
            return
    pytest.fail(f"no unclipped box of side {side} in 200 draws at lam={lam}")


def test_mixed_loss_is_cross_entropy_on_the_mixed_one_hot_target():
    class Logits(torch.nn.Module):
        def __init__(self, values):
            super().__init__()
            self.values = values

        def forward(self, pixel_values):
            return type("Out", (), {"logits": self.values})()

    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    labels, partner, w = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0]), 0.7
    loss = training_loss(Logits(logits), {"pixel_values": torch.zeros(4), "labels": labels,
                                          "mix_labels": partner, "mix_weight": torch.full((4,), w)})  # fmt: skip
    target = w * torch.nn.functional.one_hot(labels, 5) + (1 - w) * torch.nn.functional.one_hot(partner, 5)
    expected = -(target * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
