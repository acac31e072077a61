"""Batch-level mixing (mixup, cutmix): inputs blended with a shuffled copy of the batch, labels mixed to match.

Zhang et al. 2018 (mixup) and Yun et al. 2019 (CutMix), as timm applies them: per batch, with probability
``prob`` mix at all; then cutmix with probability ``switch_prob`` when both are on, else mixup. The targets are
kept as (label, partner label, weight): the loss ``w * CE(y) + (1 - w) * CE(y_partner)`` equals cross-entropy on
the mixed one-hot target, without the batch having to know the number of classes.
"""

from __future__ import annotations

import numpy as np


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box covering about (1 - lam) of the image, centred uniformly, clipped at the borders: (top, bottom, left, right)."""
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([cy - ch // 2, cy + ch // 2], 0, height)
    left, right = np.clip([cx - cw // 2, cx + cw // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def mix_batch(
    inputs: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(mixed inputs (B, ..., H, W), partner labels, weight of the own label). Alphas of 0 turn a method off.

    The partner of row i is row B-1-i of the batch (timm's flip; the middle row of an odd batch keeps itself):
    the batch order is already random, so no permutation draw is needed.
    """
    use_mixup, use_cutmix = mixup_alpha > 0, cutmix_alpha > 0
    if not (use_mixup or use_cutmix) or len(inputs) < 2 or rng.random() >= prob:
        return inputs, labels, 1.0
    cutmix = use_cutmix and (not use_mixup or rng.random() < switch_prob)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if cutmix else rng.beta(mixup_alpha, mixup_alpha))
    partner = inputs[::-1]
    if cutmix:
        height, width = inputs.shape[-2:]
        top, bottom, left, right = cutmix_box(height, width, lam, rng)
        mixed = inputs.copy()
        mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)  # the area actually pasted
    else:
        mixed = lam * inputs + (1.0 - lam) * partner
    return mixed.astype(inputs.dtype, copy=False), labels[::-1].copy(), lam
