"""Light text augmentation on whitespace-separated words: each a pure function of (text, setting, generator)."""

from __future__ import annotations

import numpy as np


def word_dropout(text: str, p: float, rng: np.random.Generator) -> str:
    """Drop each word with probability p; never returns an empty text (keeps one word)."""
    words = text.split()
    if p <= 0.0 or len(words) < 2:
        return text
    keep = rng.random(len(words)) >= p
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


def word_swap(text: str, p: float, rng: np.random.Generator) -> str:
    """Swap each word with its right neighbour with probability p (left to right, a word moves at most once)."""
    words = text.split()
    if p <= 0.0 or len(words) < 2:
        return text
    i = 0
    while i < len(words) - 1:
        if rng.random() < p:
            words[i], words[i + 1] = words[i + 1], words[i]
            i += 2
        else:
            i += 1
    return " ".join(words)
