"""Text augmentation: what each knob does, determinism under a seed, identity when off, and use in training."""

from __future__ import annotations

import numpy as np
import pytest

from hftl.augment.text import word_dropout, word_swap
from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.recipe import run

TEXT = "the team won the cup final after a late goal in extra time"


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("fn", [word_dropout, word_swap])
def test_off_is_identity_and_seed_is_deterministic(fn):
    assert fn(TEXT, 0.0, rng()) == TEXT
    assert fn(TEXT, 0.3, rng(1)) == fn(TEXT, 0.3, rng(1))
    assert fn("word", 0.9, rng()) == "word"


def test_word_dropout_removes_words_in_order_and_never_empties():
    out = word_dropout(TEXT, 0.5, rng(3)).split()
    words = TEXT.split()
    assert 0 < len(out) < len(words)
    it = iter(words)
    assert all(w in it for w in out)  # a subsequence: order kept
    assert len(word_dropout("a b", 0.99, rng(0)).split()) == 1
    rate = np.mean([len(word_dropout(TEXT, 0.2, rng(s)).split()) for s in range(400)]) / len(words)
    assert rate == pytest.approx(0.8, abs=0.03)


def test_word_swap_permutes_neighbours_only():
    out = word_swap(TEXT, 0.5, rng(5)).split()
    words = TEXT.split()
    assert sorted(out) == sorted(words) and out != words
    moved = [i for i, (a, b) in enumerate(zip(out, words, strict=True)) if a != b]
    assert all(abs(out.index(words[i]) - i) <= 1 for i in moved if words.count(words[i]) == 1)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match=r"text\.word_dropout"):
        load_config(None, ["text.word_dropout=1.5"])


def test_training_with_text_augmentation(quick_overrides):
    results = run(load_config(None, [*quick_overrides, "method.name=full", "text.word_dropout=0.1", "text.word_swap=0.1"]))
    assert results["train"]["steps"] == 18
    assert results["test"]["accuracy"] > 0.5
